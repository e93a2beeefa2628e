// redis_broker_test: the Redis Streams broker client against a real redis-server on a free loopback
// port (one per suite; the restart and password cases start their own). The URL and entry id
// readers are table-tested without a server.
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bus/broker.hpp"
#include "bus/redis_broker.hpp"
#include "tests/broker_client_support.hpp"

namespace {

using namespace std::chrono_literals;
using crudcast::bus::BrokerClient;
using crudcast::bus::BrokerListener;
using crudcast::bus::BrokerOptions;
using crudcast::bus::StreamInfo;
using Clock = std::chrono::steady_clock;
using crudcast::testkit::append_and_wait;
using crudcast::testkit::AppendResult;
using crudcast::testkit::free_loopback_port;

// One redis-server child on a loopback port, without persistence (a restart empties it).
class RedisServer {
public:
    explicit RedisServer(std::vector<std::string> extra = {}) : port_(free_loopback_port()), extra_(std::move(extra)) {
        start();
    }
    ~RedisServer() { kill(); }

    void start() {
        std::vector<std::string> args = {"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                         "--save",       "",       "--appendonly",        "no",     "--logfile",
                                         "/dev/null"};
        args.insert(args.end(), extra_.begin(), extra_.end());
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("cannot fork for redis-server");
        if (pid_ == 0) {
            // The server dies with the test, even when a crash skips the destructor, and keeps no
            // copy of the test's output pipe (a reader would wait for it forever).
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            int null = ::open("/dev/null", O_RDWR);
            ::dup2(null, STDOUT_FILENO);
            ::dup2(null, STDERR_FILENO);
            ::execvp("redis-server", argv.data());
            ::_exit(127);
        }
        // Readiness has no signal but the server answering: poll PING until it does.
        auto deadline = Clock::now() + 10s;
        while (Clock::now() < deadline) {
            if (auto* c = redisConnect("127.0.0.1", port_)) {
                bool up = false;
                if (!c->err) {
                    auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
                    up = r && (r->type == REDIS_REPLY_STATUS ||
                               (r->type == REDIS_REPLY_ERROR && std::string(r->str).starts_with("NOAUTH")));
                    if (r) freeReplyObject(r);
                }
                redisFree(c);
                if (up) return;
            }
            std::this_thread::sleep_for(20ms);
        }
        throw std::runtime_error("redis-server did not answer PING");
    }

    void kill() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

    int port() const { return port_; }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

    // One command on a fresh connection (for the test's own writes and reads of the keys).
    std::vector<std::string> run(std::vector<std::string> args, const std::string& password = "") {
        redisContext* c = redisConnect("127.0.0.1", port_);
        if (!password.empty()) freeReplyObject(redisCommand(c, "AUTH %s", password.c_str()));
        std::vector<const char*> argv;
        std::vector<std::size_t> lengths;
        for (auto& a : args) {
            argv.push_back(a.data());
            lengths.push_back(a.size());
        }
        auto* r =
            static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lengths.data()));
        std::vector<std::string> out;
        if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR))
            out.emplace_back(r->str, r->len);
        if (r && r->type == REDIS_REPLY_INTEGER) out.push_back(std::to_string(r->integer));
        if (r) freeReplyObject(r);
        redisFree(c);
        return out;
    }

private:
    pid_t pid_ = -1;
    int port_;
    std::vector<std::string> extra_;
};

struct Entry {
    std::uint64_t seq;
    std::string model;
    std::string event;
    bool operator==(const Entry&) const = default;
};

// Records every listener call; tests wait on the condition variable, never on a sleep.
class Recorder : public BrokerListener {
public:
    void on_connected(const StreamInfo& info) override {
        std::lock_guard lock(mutex_);
        connected.push_back(info);
        calls.push_back('c');
        changed_.notify_all();
    }
    void on_entry(std::uint64_t seq, std::string_view model, std::string_view event) override {
        std::lock_guard lock(mutex_);
        entries.push_back({seq, std::string(model), std::string(event)});
        calls.push_back('e');
        changed_.notify_all();
    }
    void on_down(std::string_view why) override {
        std::lock_guard lock(mutex_);
        downs.emplace_back(why);
        calls.push_back('d');
        changed_.notify_all();
    }
    template <class Predicate>
    bool wait(Predicate done, std::chrono::milliseconds timeout = 10s) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return done(*this); });
    }
    template <class F>
    auto read(F f) {
        std::lock_guard lock(mutex_);
        return f(*this);
    }

    std::vector<StreamInfo> connected;
    std::vector<Entry> entries;
    std::vector<std::string> downs;
    std::string calls;

private:
    std::mutex mutex_;
    std::condition_variable changed_;
};

class RedisBrokerTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { server_ = new RedisServer(); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }

    BrokerOptions options() const {
        BrokerOptions o;
        o.url = server_->url();
        o.prefix = ::testing::UnitTest::GetInstance()->current_test_info()->name();
        o.reconnect_min = 20ms;
        o.reconnect_max = 200ms;
        return o;
    }

    // A started client whose reader has connected once.
    std::unique_ptr<BrokerClient> started(Recorder& recorder, const BrokerOptions& o, std::uint64_t after = 0) {
        auto client = crudcast::bus::make_redis_client(o);
        client->start(recorder, after);
        // Thrown, not expected: every caller reads the first StreamInfo next.
        if (!recorder.wait([](auto& r) { return !r.connected.empty(); }))
            throw std::runtime_error("the client never connected");
        return client;
    }

    static RedisServer* server_;
};
RedisServer* RedisBrokerTest::server_ = nullptr;

}  // namespace

namespace {

using crudcast::bus::redis::entry_seq;
using crudcast::bus::redis::parse_endpoint;
using crudcast::bus::redis::parse_entry_id;

TEST(RedisEndpoint, ReadsHostPortUserPasswordAndDatabase) {
    struct Row {
        std::string url, password_option, host, user, password;
        int port, db;
    };
    const Row rows[] = {
        {"redis://127.0.0.1:6380", "", "127.0.0.1", "", "", 6380, 0},
        {"redis://cache", "", "cache", "", "", 6379, 0},
        {"redis://:s3cret@cache:7000/3", "", "cache", "", "s3cret", 7000, 3},
        {"redis://alice:pa%3Ass@cache:7000", "", "cache", "alice", "pa:ss", 7000, 0},
        {"redis://:fromurl@cache:7000", "fromfile", "cache", "", "fromfile", 7000, 0},
        {"redis://[::1]:7000/", "", "::1", "", "", 7000, 0},
    };
    for (const auto& row : rows) {
        BrokerOptions o;
        o.url = row.url;
        o.password = row.password_option;
        auto e = parse_endpoint(o);
        EXPECT_EQ(e.host, row.host) << row.url;
        EXPECT_EQ(e.port, row.port) << row.url;
        EXPECT_EQ(e.user, row.user) << row.url;
        EXPECT_EQ(e.password, row.password) << row.url;
        EXPECT_EQ(e.db, row.db) << row.url;
    }
}

TEST(RedisEndpoint, RefusesBadUrlsAndTlsWithoutQuotingThePassword) {
    for (std::string url : {"redis://", "http://cache:6379", "redis://cache:0", "redis://cache:99999",
                            "redis://cache:6379/x", "redis://cache:6379/1/2", "redis://alice@cache:6379",
                            "redis://:hunter2@cache:6379?db=1", "redis://:hunter2@cache:6379/-1"}) {
        BrokerOptions o;
        o.url = url;
        try {
            parse_endpoint(o);
            ADD_FAILURE() << url << " was accepted";
        } catch (const std::invalid_argument& e) {
            EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
        }
    }
    BrokerOptions tls;
    tls.url = "redis://cache:6379";
    tls.tls_ca_file = "/etc/ssl/ca.pem";
    EXPECT_THROW(parse_endpoint(tls), std::invalid_argument);
    EXPECT_THROW(crudcast::bus::make_redis_client(tls), std::invalid_argument);
}

TEST(RedisEntryId, ReadsOnlyDigitsDashDigitsWithoutOverflow) {
    EXPECT_EQ(parse_entry_id("1733169126000123-0"), (std::pair<std::uint64_t, std::uint64_t>{1733169126000123, 0}));
    EXPECT_EQ(parse_entry_id("5-7"), (std::pair<std::uint64_t, std::uint64_t>{5, 7}));
    EXPECT_EQ(parse_entry_id("18446744073709551615-0")->first, 18446744073709551615u);
    for (std::string_view bad : {"", "-", "5", "5-", "-5", "+5-0", "5-+0", " 5-0", "5-0 ", "5--0", "5-0-0", "0x5-0",
                                 "18446744073709551616-0", "5-18446744073709551616", "1.8e+15-0"})
        EXPECT_EQ(parse_entry_id(bad), std::nullopt) << bad;
    EXPECT_EQ(entry_seq("1733169126000123-0"), 1733169126000123u);
    EXPECT_EQ(entry_seq("5-1"), std::nullopt);
    EXPECT_EQ(entry_seq("0-0"), std::nullopt);
    EXPECT_EQ(entry_seq("9007199254740992-0"), std::nullopt);  // 2^53: JavaScript could not read it
    EXPECT_EQ(entry_seq("9007199254740991-0"), 9007199254740991u);
}

TEST_F(RedisBrokerTest, AppendsAreNumberedOffsetPlusOneTwoThree) {
    Recorder recorder;
    auto client = started(recorder, options());
    auto info = recorder.read([](auto& r) { return r.connected.front(); });
    EXPECT_EQ(info.first, 0u);
    EXPECT_EQ(info.last, info.offset);
    // The offset is the server's time in microseconds: above 2020-01-01, below 2^53.
    EXPECT_GT(info.offset, 1'577'836'800'000'000u);
    EXPECT_LT(info.offset, std::uint64_t{1} << 53);
    for (std::uint64_t i = 1; i <= 5; ++i) {
        auto result = append_and_wait(*client, "author", R"({"ts":1,"model":"author")");
        ASSERT_TRUE(result.seq) << result.error;
        EXPECT_EQ(*result.seq, info.offset + i);
    }
    // Each seq is stored as every digit (Lua would print 1.7e+15 if the script used tostring).
    EXPECT_EQ(server_->run({"GET", options().prefix + ":seq"}),
              std::vector<std::string>{std::to_string(info.offset + 5)});
    client->stop();
}

TEST_F(RedisBrokerTest, ReaderGetsEveryEntryInOrderWithModelAndTextIntact) {
    Recorder recorder;
    auto client = started(recorder, options());
    std::vector<Entry> sent;
    const std::string big(100 * 1024, 'x');
    const std::vector<std::pair<std::string, std::string>> rows = {
        {"author", R"({"ts":1,"model":"author","payload":null)"},
        {"a b\r\n*3\r\n$3\r\nDEL", "\r\n$-1\r\n"},
        {std::string("nul\0byte", 8), std::string("{\"x\":\"\0\"", 8)},
        {"\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80", "\xe2\x80\xae right-to-left \xef\xbf\xbd"},
        {"", ""},
        {"m", "e"},
        {"big", "{\"payload\":\"" + big + "\""},
    };
    for (const auto& [model, event] : rows) {
        auto result = append_and_wait(*client, model, event);
        ASSERT_TRUE(result.seq) << result.error;
        sent.push_back({*result.seq, model, event});
    }
    ASSERT_TRUE(recorder.wait([&](auto& r) { return r.entries.size() >= sent.size(); }));
    EXPECT_EQ(recorder.read([](auto& r) { return r.entries; }), sent);
    client->stop();
    EXPECT_EQ(recorder.read([](auto& r) { return r.calls; }), "c" + std::string(sent.size(), 'e'));
}

TEST_F(RedisBrokerTest, TwoClientsAppendingAtOnceGiveBothReadersTheSameOrder) {
    Recorder first_recorder, second_recorder;
    auto first = started(first_recorder, options());
    auto second = started(second_recorder, options());
    constexpr int per_client = 500;
    std::mutex mutex;
    std::condition_variable all_done;
    std::set<std::uint64_t> seqs;
    int answered = 0, failed = 0;
    auto done = [&](std::optional<std::uint64_t> seq, std::string_view) {
        std::lock_guard lock(mutex);
        if (seq) seqs.insert(*seq);
        else ++failed;
        ++answered;
        all_done.notify_all();
    };
    auto write = [&](BrokerClient& client, std::string model) {
        for (int i = 0; i < per_client; ++i) client.append(model, model + "#" + std::to_string(i), done);
    };
    std::thread a(write, std::ref(*first), "a"), b(write, std::ref(*second), "b");
    a.join();
    b.join();
    {
        std::unique_lock lock(mutex);
        ASSERT_TRUE(all_done.wait_for(lock, 20s, [&] { return answered == 2 * per_client; }));
        EXPECT_EQ(failed, 0);
        EXPECT_EQ(seqs.size(), 2u * per_client);
    }
    auto all_read = [](auto& r) { return r.entries.size() >= 2 * per_client; };
    ASSERT_TRUE(first_recorder.wait(all_read, 20s));
    ASSERT_TRUE(second_recorder.wait(all_read, 20s));
    auto read_by_first = first_recorder.read([](auto& r) { return r.entries; });
    EXPECT_EQ(read_by_first, second_recorder.read([](auto& r) { return r.entries; }));
    std::vector<std::uint64_t> order;
    for (auto& e : read_by_first) order.push_back(e.seq);
    EXPECT_EQ(order, std::vector<std::uint64_t>(seqs.begin(), seqs.end()));  // ascending, each once
    // Numbering has no holes: seq = offset + position.
    EXPECT_EQ(order.back() - order.front(), 2u * per_client - 1);
    first->stop();
    second->stop();
}

TEST_F(RedisBrokerTest, ReaderStartsAfterTheGivenSeq) {
    Recorder writer_recorder;
    auto writer = started(writer_recorder, options());
    std::vector<std::uint64_t> seqs;
    for (int i = 0; i < 10; ++i) seqs.push_back(append_and_wait(*writer, "m", std::to_string(i)).seq.value());
    Recorder recorder;
    auto reader = started(recorder, options(), seqs[4]);
    ASSERT_TRUE(recorder.wait([](auto& r) { return r.entries.size() >= 5; }));
    auto last = append_and_wait(*writer, "m", "10").seq.value();
    ASSERT_TRUE(recorder.wait([&](auto& r) { return !r.entries.empty() && r.entries.back().seq == last; }));
    std::vector<std::uint64_t> got;
    for (auto& e : recorder.read([](auto& r) { return r.entries; })) got.push_back(e.seq);
    EXPECT_EQ(got, (std::vector<std::uint64_t>{seqs[5], seqs[6], seqs[7], seqs[8], seqs[9], last}));
    reader->stop();
    writer->stop();
}

TEST_F(RedisBrokerTest, StreamKeepsExactlyHistoryEventsEntries) {
    auto o = options();
    o.history_events = 20;
    Recorder writer_recorder;
    auto writer = started(writer_recorder, o);
    std::vector<std::uint64_t> seqs;
    for (int i = 0; i < 50; ++i) seqs.push_back(append_and_wait(*writer, "m", std::to_string(i)).seq.value());
    EXPECT_EQ(server_->run({"XLEN", o.prefix + ":events"}), std::vector<std::string>{"20"});
    Recorder recorder;
    auto reader = started(recorder, o);
    auto info = recorder.read([](auto& r) { return r.connected.front(); });
    EXPECT_EQ(info.first, seqs[30]);
    EXPECT_EQ(info.last, seqs[49]);
    ASSERT_TRUE(recorder.wait([](auto& r) { return r.entries.size() >= 20; }));
    auto entries = recorder.read([](auto& r) { return r.entries; });
    EXPECT_EQ(entries.front().seq, seqs[30]);
    EXPECT_EQ(entries.back().seq, seqs[49]);
    reader->stop();
    writer->stop();
}

TEST_F(RedisBrokerTest, DeletedStreamAndCounterNumberAboveEveryOldSeq) {
    auto o = options();
    Recorder recorder;
    auto client = started(recorder, o);
    // Each entry is read before the next deletion: a deleted entry the reader had not reached yet
    // is gone for every reader (what the deletions must not break is the numbering and the reading).
    const auto read_up_to = [&](std::size_t n) {
        return recorder.wait([&](auto& r) { return r.entries.size() >= n; });
    };
    auto before = append_and_wait(*client, "m", "before").seq.value();
    ASSERT_TRUE(read_up_to(1));
    server_->run({"DEL", o.prefix + ":events", o.prefix + ":seq", o.prefix + ":offset"});
    auto after_del = append_and_wait(*client, "m", "after DEL");
    ASSERT_TRUE(after_del.seq) << after_del.error;
    EXPECT_GT(*after_del.seq, before);
    ASSERT_TRUE(read_up_to(2));
    server_->run({"DEL", o.prefix + ":seq"});  // the counter alone: continue above the stream
    auto after_counter = append_and_wait(*client, "m", "after counter").seq.value();
    EXPECT_GT(after_counter, *after_del.seq);
    ASSERT_TRUE(read_up_to(3));
    server_->run({"FLUSHALL"});
    auto after_flush = append_and_wait(*client, "m", "after FLUSHALL").seq.value();
    EXPECT_GT(after_flush, after_counter);
    ASSERT_TRUE(read_up_to(4));
    std::vector<std::uint64_t> got;
    for (auto& e : recorder.read([](auto& r) { return r.entries; })) got.push_back(e.seq);
    EXPECT_EQ(got, (std::vector<std::uint64_t>{before, *after_del.seq, after_counter, after_flush}));
    client->stop();
}

// A server whose clock was set back creates the stream again with seqs below the ones given:
// simulated by numbering from 1000. The reader's reconnect raises the counter above what it gave.
TEST_F(RedisBrokerTest, StreamCreatedAgainBelowTheLastSeqGivenNumbersAboveIt) {
    auto o = options();
    Recorder recorder;
    auto client = started(recorder, o);
    auto old_seq = append_and_wait(*client, "m", "old").seq.value();
    ASSERT_TRUE(recorder.wait([](auto& r) { return r.entries.size() == 1; }));
    server_->run({"DEL", o.prefix + ":events"});
    server_->run({"SET", o.prefix + ":seq", "1000"});
    server_->run({"SET", o.prefix + ":offset", "1000"});
    server_->run({"CLIENT", "KILL", "TYPE", "normal"});
    ASSERT_TRUE(recorder.wait([](auto& r) { return r.connected.size() == 2; }));
    EXPECT_EQ(recorder.read([](auto& r) { return r.connected.back().offset; }), 1000u);
    auto next = append_and_wait(*client, "m", "new");
    ASSERT_TRUE(next.seq) << next.error;
    EXPECT_EQ(*next.seq, old_seq + 1);
    ASSERT_TRUE(recorder.wait([](auto& r) { return r.entries.size() == 2; }));
    EXPECT_EQ(recorder.read([](auto& r) { return r.entries.back().seq; }), old_seq + 1);
    client->stop();
}

TEST_F(RedisBrokerTest, MalformedEntriesArePassedOverAndNumberingGoesAboveThem) {
    auto o = options();
    Recorder recorder;
    auto client = started(recorder, o);
    auto first = append_and_wait(*client, "m", "first").seq.value();
    const auto stream = o.prefix + ":events";
    server_->run({"XADD", stream, "*", "m", "x", "e", "{}"});  // id <first>-1: not crudcast's
    server_->run({"XADD", stream, std::to_string(first + 1) + "-0", "m", "no event field"});
    server_->run({"XADD", stream, std::to_string(first + 2) + "-0", "junk", "x"});
    server_->run({"XADD", stream, std::to_string(first + 5) + "-0", "e", "{}", "m", "hand"});  // well-formed
    auto next = append_and_wait(*client, "m", "next");
    ASSERT_TRUE(next.seq) << next.error;
    EXPECT_EQ(*next.seq, first + 6);  // above the hand-added entry, not refused
    ASSERT_TRUE(recorder.wait([&](auto& r) { return !r.entries.empty() && r.entries.back().seq == *next.seq; }));
    std::vector<Entry> expected = {{first, "m", "first"}, {first + 5, "hand", "{}"}, {*next.seq, "m", "next"}};
    EXPECT_EQ(recorder.read([](auto& r) { return r.entries; }), expected);
    client->stop();
}

TEST_F(RedisBrokerTest, AppendsSurviveAFlushedScriptCache) {
    Recorder recorder;
    auto client = started(recorder, options());
    auto first = append_and_wait(*client, "m", "before").seq.value();
    server_->run({"SCRIPT", "FLUSH"});
    auto result = append_and_wait(*client, "m", "after");
    ASSERT_TRUE(result.seq) << result.error;
    EXPECT_EQ(*result.seq, first + 1);
    EXPECT_EQ(append_and_wait(*client, "m", "cached again").seq, first + 2);
    client->stop();
}

TEST_F(RedisBrokerTest, StopReturnsPromptlyAndLateAppendsFailOnce) {
    Recorder recorder;
    auto client = started(recorder, options());
    auto started_at = Clock::now();
    client->stop();
    EXPECT_LT(Clock::now() - started_at, 500ms);
    auto result = append_and_wait(*client, "m", "late");
    EXPECT_FALSE(result.seq);
    EXPECT_EQ(result.error, "stopping");
}

// A server of its own: killed and started again on the same port, empty (no persistence).
TEST(RedisBrokerRestart, ServerRestartIsOneDownFastFailuresThenConnectedAgain) {
    RedisServer server;
    BrokerOptions o;
    o.url = server.url();
    o.reconnect_min = 20ms;
    o.reconnect_max = 100ms;
    Recorder recorder;
    auto client = crudcast::bus::make_redis_client(o);
    client->start(recorder, 0);
    ASSERT_TRUE(recorder.wait([](auto& r) { return !r.connected.empty(); }));
    auto old_seq = append_and_wait(*client, "m", "before").seq.value();
    ASSERT_TRUE(recorder.wait([](auto& r) { return r.entries.size() == 1; }));

    server.kill();
    ASSERT_TRUE(recorder.wait([](auto& r) { return r.downs.size() == 1; }));
    for (int i = 0; i < 5; ++i) {
        auto result = append_and_wait(*client, "m", "while down");
        EXPECT_FALSE(result.seq);
        EXPECT_LT(result.took, 50ms) << result.error;
    }
    server.start();
    ASSERT_TRUE(recorder.wait([](auto& r) { return r.connected.size() == 2; }));
    auto info = recorder.read([](auto& r) { return r.connected.back(); });
    EXPECT_GT(info.offset, old_seq);
    EXPECT_EQ(info.first, 0u);
    auto result = append_and_wait(*client, "m", "after");
    ASSERT_TRUE(result.seq) << result.error;
    EXPECT_EQ(*result.seq, info.offset + 1);
    ASSERT_TRUE(recorder.wait([](auto& r) { return r.entries.size() == 2; }));

    // Again with no append while down: the first append after the recovery must not be the one
    // that finds the writer's connection dead.
    server.kill();
    ASSERT_TRUE(recorder.wait([](auto& r) { return r.downs.size() == 2; }));
    server.start();
    ASSERT_TRUE(recorder.wait([](auto& r) { return r.connected.size() == 3; }));
    auto again = append_and_wait(*client, "m", "after the second restart");
    ASSERT_TRUE(again.seq) << again.error;
    ASSERT_TRUE(recorder.wait([](auto& r) { return r.entries.size() == 3; }));
    client->stop();
    EXPECT_EQ(recorder.read([](auto& r) { return r.calls; }), "cedcedce");
}

TEST(RedisBrokerAuth, PasswordAndAclUserAuthenticateAndAWrongPasswordIsNotLogged) {
    RedisServer server({"--requirepass", "s3cret-pw"});
    server.run({"ACL", "SETUSER", "alice", "on", ">alice-pw", "~*", "+@all"}, "s3cret-pw");
    for (auto [url, password] :
         {std::pair{"redis://:s3cret-pw@127.0.0.1:", ""}, std::pair{"redis://:wrong@127.0.0.1:", "s3cret-pw"},
          std::pair{"redis://alice:alice-pw@127.0.0.1:", ""}}) {
        BrokerOptions o;
        o.url = url + std::to_string(server.port()) + "/2";
        o.password = password;
        Recorder recorder;
        auto client = crudcast::bus::make_redis_client(o);
        client->start(recorder, 0);
        ASSERT_TRUE(recorder.wait([](auto& r) { return !r.connected.empty(); })) << url;
        auto result = append_and_wait(*client, "m", "x");
        EXPECT_TRUE(result.seq) << url << " " << result.error;
        client->stop();
    }
    // Database 2 holds the stream: SELECT was sent.
    EXPECT_EQ(server.run({"EXISTS", "crudcast:events"}, "s3cret-pw"), std::vector<std::string>{"0"});

    BrokerOptions wrong;
    wrong.url = "redis://:hunter2@127.0.0.1:" + std::to_string(server.port());
    wrong.reconnect_min = 5ms;
    wrong.reconnect_max = 10ms;
    Recorder recorder;
    auto client = crudcast::bus::make_redis_client(wrong);
    client->start(recorder, 0);
    ASSERT_TRUE(recorder.wait([](auto& r) { return !r.downs.empty(); }));
    auto why = recorder.read([](auto& r) { return r.downs.front(); });
    EXPECT_NE(why.find("AUTH"), std::string::npos) << why;
    EXPECT_EQ(why.find("hunter2"), std::string::npos) << why;
    auto result = append_and_wait(*client, "m", "x");
    EXPECT_FALSE(result.seq);
    // Several refused attempts (each a new connection the server counts; nothing signals them
    // here), and still one on_down.
    auto refused = [&] {
        auto info = server.run({"INFO", "stats"}, "s3cret-pw").at(0);
        auto at = info.find("total_connections_received:");
        return at == std::string::npos ? 0 : std::stoi(info.substr(at + 27));
    };
    const int before = refused();
    for (auto deadline = Clock::now() + 10s; refused() < before + 10 && Clock::now() < deadline;)
        std::this_thread::sleep_for(10ms);
    EXPECT_GE(refused(), before + 10);
    client->stop();
    EXPECT_EQ(recorder.read([](auto& r) { return r.calls; }), "d");  // once, not per attempt
}

}  // namespace
