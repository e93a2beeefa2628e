// nats_broker_test.cpp: the NATS JetStream broker client (bus/nats_broker.*) against a real
// nats-server with JetStream on a free loopback port, one per suite (a store dir of its own): seqs,
// order across two clients, `after`, retention, a stream deleted and created again, the server killed,
// paused and restarted on the same store, user/password, token and TLS. The naming rules are
// table-tested without a server. `ctest -L nats` runs them all.
#include "bus/nats_broker.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bus/broker.hpp"
#include "tests/broker_client_support.hpp"

namespace {

using namespace crudcast::bus;
using crudcast::testkit::append_and_wait;
using crudcast::testkit::AppendResult;
using crudcast::testkit::free_loopback_port;
using namespace std::chrono_literals;

// ---- the naming rules ----

TEST(NatsNaming, StreamNameIsThePrefixUpperCasedWithForeignBytesMadeUnderscores) {
    EXPECT_EQ(nats::stream_name("crudcast"), "CRUDCAST");
    EXPECT_EQ(nats::stream_name("team.a-b_c9"), "TEAM_A-B_C9");
    EXPECT_EQ(nats::stream_name("x y*>\xc3\xa9"), "X_Y____");
}

TEST(NatsNaming, HostileModelsBecomeOneValidTokenAndComeBackUnchanged) {
    const std::vector<std::pair<std::string, std::string>> rows = {
        {"author", "author"},
        {"a.b", "a%2Eb"},
        {"*", "%2A"},
        {">", "%3E"},
        {"a b", "a%20b"},
        {"100%", "100%25"},
        {"", "%"},
        {"\xc3\xbc", "%C3%BC"},
        {"x\ty\n", "x%09y%0A"},
        {std::string("a\0b", 3), "a%00b"},
        {"%41", "%2541"},
        {"$JS", "$JS"},
    };
    for (const auto& [model, token] : rows) {
        EXPECT_EQ(nats::subject_token(model), token) << model;
        EXPECT_EQ(nats::model_from_token(token), model) << token;
    }
}

TEST(NatsNaming, TokensNoModelGivesAreRefused) {
    for (const std::string token : {"", "%4", "%zz", "%2e", "%41", "a.b", "a b", "%2"})
        EXPECT_EQ(nats::model_from_token(token), std::nullopt) << token;
}

TEST(NatsNaming, PrefixMustBeSubjectTokens) {
    EXPECT_TRUE(nats::valid_subject_prefix("crudcast"));
    EXPECT_TRUE(nats::valid_subject_prefix("team.crudcast"));
    for (const std::string prefix : {"", ".a", "a.", "a..b", "a b", "a*", "a.>"})
        EXPECT_FALSE(nats::valid_subject_prefix(prefix)) << prefix;
    BrokerOptions options;
    options.url = "nats://127.0.0.1:4222";
    options.prefix = "a b";
    EXPECT_THROW(make_nats_client(options), std::invalid_argument);
    options.prefix = "crudcast";
    options.url = "http://127.0.0.1:4222";
    EXPECT_THROW(make_nats_client(options), std::invalid_argument);
}

// ---- a real nats-server ----

bool port_accepts(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

// `nats-server -js` on a free port with a store dir of its own; restart() keeps both.
class NatsServer {
public:
    explicit NatsServer(std::vector<std::string> extra = {}) : port_(free_loopback_port()), extra_(std::move(extra)) {
        char pattern[] = "/tmp/crudcast-nats-test-XXXXXX";
        dir_ = ::mkdtemp(pattern);
        start();
    }
    ~NatsServer() {
        kill();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

    void start() {
        const auto port = std::to_string(port_);
        const auto store = dir_ + "/store";
        const auto log = dir_ + "/server.log";
        std::vector<std::string> args = {"nats-server", "-js", "-a", "127.0.0.1", "-p", port, "-sd", store};
        args.insert(args.end(), extra_.begin(), extra_.end());
        std::vector<char*> argv;
        argv.reserve(args.size() + 1);
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        ASSERT_GE(log_fd, 0);
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ == 0) {
            // Only async-signal-safe calls until exec. The server dies with this test process, also
            // when a test crashes or is killed before its teardown.
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);
            ::dup2(log_fd, 1);
            ::dup2(log_fd, 2);
            ::execvp(argv[0], argv.data());
            ::_exit(127);
        }
        ::close(log_fd);
        ASSERT_GT(pid_, 0) << "nats-server could not be started";
        // The server gives no signal a test could wait on but its port: poll it, bounded.
        const auto deadline = std::chrono::steady_clock::now() + 15s;
        while (!port_accepts(port_)) {
            ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "nats-server did not listen";
            std::this_thread::sleep_for(10ms);
        }
    }
    void kill() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    // A server that hangs: its socket stays open and answers nothing.
    // SIGSTOP takes effect asynchronously (a server thread may still answer after kill returns):
    // waitpid with WUNTRACED returns once the whole child has stopped.
    void pause() {
        ::kill(pid_, SIGSTOP);
        int status = 0;
        ::waitpid(pid_, &status, WUNTRACED);
    }
    void resume() { ::kill(pid_, SIGCONT); }

private:
    std::uint16_t port_;
    std::vector<std::string> extra_;
    std::string dir_;
    pid_t pid_ = -1;
};

struct Entry {
    std::uint64_t seq;
    std::string model;
    std::string event;
};

// Records every listener call; tests wait on its condition variable, never on a clock.
class Recorder : public BrokerListener {
public:
    void on_connected(const StreamInfo& info) override {
        enter();
        std::lock_guard lock(mutex_);
        connected.push_back(info);
        calls += 'c';
        leave();
    }
    void on_entry(std::uint64_t seq, std::string_view model, std::string_view event) override {
        enter();
        std::lock_guard lock(mutex_);
        entries.push_back({seq, std::string(model), std::string(event)});
        calls += 'e';
        leave();
    }
    void on_down(std::string_view why) override {
        enter();
        std::lock_guard lock(mutex_);
        downs.emplace_back(why);
        calls += 'd';
        leave();
    }
    template <class Pred>
    bool wait(Pred pred, std::chrono::milliseconds limit = 15s) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, limit, [&] { return pred(); });
    }
    template <class Fn>
    auto read(Fn fn) {
        std::lock_guard lock(mutex_);
        return fn();
    }

    std::vector<StreamInfo> connected;
    std::vector<Entry> entries;
    std::vector<std::string> downs;
    std::string calls;  // 'c', 'e', 'd' in the order they came
    bool overlapped = false;

private:
    void enter() {
        if (inside_.fetch_add(1) != 0) overlapped = true;
    }
    void leave() {
        inside_.fetch_sub(1);
        changed_.notify_all();
    }
    std::mutex mutex_;
    std::condition_variable changed_;
    std::atomic<int> inside_{0};
};

class NatsBroker : public ::testing::Test {
protected:
    static void SetUpTestSuite() { server_ = new NatsServer(); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    // Each test has a stream of its own on the suite's server.
    BrokerOptions options() const {
        BrokerOptions o;
        o.url = server_->url();
        o.prefix = std::string("t_") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
        o.reconnect_min = 20ms;
        o.reconnect_max = 200ms;
        return o;
    }
    static StreamInfo connect(BrokerClient& client, Recorder& recorder, std::uint64_t after = 0) {
        client.start(recorder, after);
        EXPECT_TRUE(recorder.wait([&] { return !recorder.connected.empty(); }));
        return recorder.read([&] { return recorder.connected.empty() ? StreamInfo{} : recorder.connected.back(); });
    }
    static NatsServer* server_;
};

NatsServer* NatsBroker::server_ = nullptr;

TEST_F(NatsBroker, AppendsGetSeqsThatCountUpFromTheStreamOffset) {
    Recorder recorder;
    auto client = make_nats_client(options());
    const auto info = connect(*client, recorder);
    EXPECT_GT(info.offset, 1'700'000'000'000'000u);  // microseconds since the epoch
    EXPECT_LT(info.offset, 1ull << 53);
    EXPECT_EQ(info.first, 0u);
    EXPECT_EQ(info.last, info.offset);
    for (std::uint64_t i = 1; i <= 5; ++i) {
        const auto r = append_and_wait(*client, "author", "{\"n\":" + std::to_string(i) + "}");
        ASSERT_TRUE(r.seq) << r.error;
        EXPECT_EQ(*r.seq, info.offset + i);
    }
    ASSERT_TRUE(recorder.wait([&] { return recorder.entries.size() == 5; }));
    client->stop();
    EXPECT_EQ(recorder.calls, "ceeeee");
    EXPECT_FALSE(recorder.overlapped);
}

TEST_F(NatsBroker, ReaderGetsEveryEntryInOrderWithHostileModelsIntact) {
    const std::vector<std::string> models = {
        "a.b", "*",    ">",   "a b",     "100%",  "\xc3\xbc" + std::string("ber.\xe2\x9c\x93"),
        "",    "x\ty", "%41", "$JS.API", "author"};
    Recorder recorder;
    auto client = make_nats_client(options());
    const auto info = connect(*client, recorder);
    std::vector<std::uint64_t> seqs;
    for (std::size_t i = 0; i < models.size(); ++i) {
        const auto r = append_and_wait(*client, models[i], "{\"i\":" + std::to_string(i) + ",\"t\":\"\xc3\xa9 \\n\"}");
        ASSERT_TRUE(r.seq) << r.error;
        seqs.push_back(*r.seq);
    }
    ASSERT_TRUE(recorder.wait([&] { return recorder.entries.size() == models.size(); }));
    const auto entries = recorder.read([&] { return recorder.entries; });
    for (std::size_t i = 0; i < models.size(); ++i) {
        EXPECT_EQ(entries[i].seq, info.offset + i + 1);
        EXPECT_EQ(entries[i].seq, seqs[i]);
        EXPECT_EQ(entries[i].model, models[i]);
        EXPECT_EQ(entries[i].event, "{\"i\":" + std::to_string(i) + ",\"t\":\"\xc3\xa9 \\n\"}");
    }
    client->stop();
}

TEST_F(NatsBroker, TwoClientsReadTheSameSeqsInTheSameOrderUnderConcurrentAppends) {
    // This is about order, not speed: under the sanitizers a burst of 1,000 appends outlasts 250 ms.
    auto o = options();
    o.timeout = 10s;
    constexpr std::size_t kEach = 500;
    // Declared before the clients, so they outlive them: the clients call into them until stopped.
    Recorder ra, rb;
    std::mutex m;
    std::condition_variable cv;
    std::set<std::uint64_t> acked;
    int failed = 0;
    auto a = make_nats_client(o);
    auto b = make_nats_client(o);
    const auto ia = connect(*a, ra);
    const auto ib = connect(*b, rb);
    EXPECT_EQ(ia.offset, ib.offset);
    auto writer = [&](BrokerClient& client, const std::string& who) {
        for (std::size_t i = 0; i < kEach; ++i)
            client.append(who, "{\"who\":\"" + who + "\",\"i\":" + std::to_string(i) + "}",
                          [&](std::optional<std::uint64_t> seq, std::string_view) {
                              std::lock_guard lock(m);
                              if (seq) acked.insert(*seq);
                              else ++failed;
                              cv.notify_all();
                          });
    };
    std::thread ta(writer, std::ref(*a), "a");
    std::thread tb(writer, std::ref(*b), "b");
    ta.join();
    tb.join();
    {
        std::unique_lock lock(m);
        ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return acked.size() + failed == 2 * kEach; }));
        ASSERT_EQ(failed, 0);
    }
    ASSERT_TRUE(ra.wait([&] { return ra.entries.size() >= 2 * kEach; }, 30s));
    ASSERT_TRUE(rb.wait([&] { return rb.entries.size() >= 2 * kEach; }, 30s));
    a->stop();
    b->stop();
    ASSERT_EQ(ra.entries.size(), 2u * kEach);
    ASSERT_EQ(rb.entries.size(), 2u * kEach);
    for (std::size_t i = 0; i < ra.entries.size(); ++i) {
        EXPECT_EQ(ra.entries[i].seq, ia.offset + i + 1);
        EXPECT_EQ(ra.entries[i].seq, rb.entries[i].seq);
        EXPECT_EQ(ra.entries[i].event, rb.entries[i].event);
        EXPECT_EQ(ra.entries[i].model, rb.entries[i].model);
        EXPECT_TRUE(acked.contains(ra.entries[i].seq));
    }
}

TEST_F(NatsBroker, AClientStartedAfterASeqReadsFromTheNextOne) {
    Recorder rw;
    auto writer = make_nats_client(options());
    const auto info = connect(*writer, rw);
    for (int i = 1; i <= 5; ++i) ASSERT_TRUE(append_and_wait(*writer, "m", std::to_string(i)).seq);
    Recorder rr;
    auto reader = make_nats_client(options());
    const auto seen = connect(*reader, rr, info.offset + 3);
    EXPECT_EQ(seen.offset, info.offset);
    EXPECT_EQ(seen.first, info.offset + 1);
    EXPECT_EQ(seen.last, info.offset + 5);
    ASSERT_TRUE(rr.wait([&] { return rr.entries.size() == 2; }));
    ASSERT_TRUE(append_and_wait(*writer, "m", "6").seq);
    ASSERT_TRUE(rr.wait([&] { return rr.entries.size() == 3; }));
    reader->stop();
    writer->stop();
    EXPECT_EQ(rr.entries[0].seq, info.offset + 4);
    EXPECT_EQ(rr.entries[0].event, "4");
    EXPECT_EQ(rr.entries[2].seq, info.offset + 6);
}

TEST_F(NatsBroker, RetentionKeepsTheLastHistoryEvents) {
    auto o = options();
    o.history_events = 5;
    Recorder rw;
    auto writer = make_nats_client(o);
    const auto info = connect(*writer, rw);
    for (int i = 1; i <= 8; ++i) ASSERT_TRUE(append_and_wait(*writer, "m", std::to_string(i)).seq);
    Recorder rr;
    auto reader = make_nats_client(o);
    const auto seen = connect(*reader, rr);
    EXPECT_EQ(seen.first, info.offset + 4);
    EXPECT_EQ(seen.last, info.offset + 8);
    ASSERT_TRUE(rr.wait([&] { return rr.entries.size() == 5; }));
    // A reader that last got offset + 1 fell behind the retention: it goes on from what is there.
    Recorder rb;
    auto behind = make_nats_client(o);
    connect(*behind, rb, info.offset + 1);
    ASSERT_TRUE(rb.wait([&] { return rb.entries.size() == 5; }));
    behind->stop();
    EXPECT_EQ(rb.entries.front().seq, info.offset + 4);
    reader->stop();
    writer->stop();
    EXPECT_EQ(rr.entries.front().seq, info.offset + 4);
    EXPECT_EQ(rr.entries.front().event, "4");
    EXPECT_EQ(rr.entries.back().seq, info.offset + 8);
}

// The test's own libnats connection, as an operator's tool would be.
void delete_stream(const std::string& url, const std::string& stream) {
    natsConnection* nc = nullptr;
    ASSERT_EQ(natsConnection_ConnectTo(&nc, url.c_str()), NATS_OK);
    jsCtx* js = nullptr;
    ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
    EXPECT_EQ(js_DeleteStream(js, stream.c_str(), nullptr, nullptr), NATS_OK);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

TEST_F(NatsBroker, AStreamDeletedAndCreatedAgainNumbersAboveEveryOldSeq) {
    Recorder recorder;
    auto client = make_nats_client(options());
    const auto before = connect(*client, recorder);
    std::uint64_t old_last = 0;
    for (int i = 1; i <= 3; ++i) old_last = append_and_wait(*client, "m", std::to_string(i)).seq.value_or(0);
    ASSERT_TRUE(recorder.wait([&] { return recorder.entries.size() == 3; }));
    delete_stream(server_->url(), nats::stream_name(options().prefix));
    // The client finds the stream gone, starts over and creates it again.
    ASSERT_TRUE(recorder.wait([&] { return recorder.connected.size() == 2; }));
    const auto after = recorder.read([&] { return recorder.connected.back(); });
    EXPECT_GT(after.offset, old_last);
    EXPECT_EQ(after.first, 0u);
    const auto r = append_and_wait(*client, "m", "new");
    ASSERT_TRUE(r.seq) << r.error;
    EXPECT_EQ(*r.seq, after.offset + 1);
    ASSERT_TRUE(recorder.wait([&] { return recorder.entries.size() == 4; }));
    client->stop();
    EXPECT_EQ(recorder.entries.back().seq, after.offset + 1);
    EXPECT_EQ(recorder.entries.back().event, "new");
    EXPECT_EQ(recorder.calls, "ceeedce");
    EXPECT_NE(before.offset, after.offset);
}

TEST_F(NatsBroker, AnAppendToAStreamCreatedAgainThatTheClientHasNotSeenNeverRepeatsASeq) {
    Recorder ra;
    auto a = make_nats_client(options());
    connect(*a, ra);
    std::uint64_t old_last = 0;
    for (int i = 1; i <= 3; ++i) old_last = append_and_wait(*a, "m", std::to_string(i)).seq.value_or(0);
    ASSERT_TRUE(ra.wait([&] { return ra.entries.size() == 3; }));
    delete_stream(server_->url(), nats::stream_name(options().prefix));
    // Another instance creates it again and appends before `a` looks at the stream (once a second).
    Recorder rb;
    auto b = make_nats_client(options());
    const auto info = connect(*b, rb);
    ASSERT_TRUE(append_and_wait(*b, "m", "b").seq);
    const auto r = append_and_wait(*a, "m", "a");
    if (r.seq) {
        EXPECT_GT(*r.seq, info.offset) << "a seq of the old numbering: " << *r.seq << " (old last " << old_last << ")";
    }
    ASSERT_TRUE(ra.wait([&] { return ra.connected.size() == 2; }));
    EXPECT_EQ(ra.read([&] { return ra.connected.back().offset; }), info.offset);
    a->stop();
    b->stop();
}

TEST_F(NatsBroker, AppendsBeforeStartOrAfterStopAreRefusedAtOnce) {
    Recorder recorder;
    auto client = make_nats_client(options());
    auto r = append_and_wait(*client, "m", "x");
    EXPECT_FALSE(r.seq);
    EXPECT_EQ(r.error, "nats: not started");
    connect(*client, recorder);
    client->stop();
    r = append_and_wait(*client, "m", "x");
    EXPECT_FALSE(r.seq);
    EXPECT_EQ(r.error, "stopping");
}

// Its own server: this suite kills it.
class NatsBrokerRestart : public NatsBroker {
protected:
    static void SetUpTestSuite() { server_ = new NatsServer(); }
};

TEST_F(NatsBrokerRestart, AServerRestartedOnItsStoreIsReadOnWithoutLossOrDuplicate) {
    Recorder recorder;
    auto client = make_nats_client(options());
    const auto info = connect(*client, recorder);
    for (int i = 1; i <= 3; ++i) ASSERT_TRUE(append_and_wait(*client, "m", std::to_string(i)).seq);
    ASSERT_TRUE(recorder.wait([&] { return recorder.entries.size() == 3; }));

    server_->kill();
    ASSERT_TRUE(recorder.wait([&] { return recorder.downs.size() == 1; }));
    for (int i = 0; i < 10; ++i) {
        const auto started = std::chrono::steady_clock::now();
        const auto r = append_and_wait(*client, "m", "lost");
        EXPECT_LT(std::chrono::steady_clock::now() - started, 50ms);
        EXPECT_FALSE(r.seq);
        EXPECT_EQ(r.error, "nats: not connected");
    }

    server_->start();
    ASSERT_TRUE(recorder.wait([&] { return recorder.connected.size() == 2; }));
    const auto again = recorder.read([&] { return recorder.connected.back(); });
    EXPECT_EQ(again.offset, info.offset);  // the stream and its creation time survived
    EXPECT_EQ(again.first, info.offset + 1);
    EXPECT_EQ(again.last, info.offset + 3);
    const auto r = append_and_wait(*client, "m", "4");
    ASSERT_TRUE(r.seq) << r.error;
    EXPECT_EQ(*r.seq, info.offset + 4);
    ASSERT_TRUE(recorder.wait([&] { return recorder.entries.size() >= 4; }));
    client->stop();
    EXPECT_EQ(recorder.downs.size(), 1u);
    EXPECT_EQ(recorder.calls, "ceeedce");
    for (std::size_t i = 0; i < recorder.entries.size(); ++i) EXPECT_EQ(recorder.entries[i].seq, info.offset + i + 1);
    EXPECT_FALSE(recorder.overlapped);
}

TEST_F(NatsBrokerRestart, StopWhileTheServerIsDownReturnsPromptly) {
    Recorder recorder;
    auto client = make_nats_client(options());
    connect(*client, recorder);
    server_->kill();
    ASSERT_TRUE(recorder.wait([&] { return recorder.downs.size() == 1; }));
    const auto started = std::chrono::steady_clock::now();
    client->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - started, 500ms);
    server_->start();  // for the next test of the suite
}

TEST(NatsBrokerNoServer, AClientThatNeverConnectsSaysSoOnceFailsAppendsAtOnceAndStopsPromptly) {
    BrokerOptions o;
    o.url = "nats://127.0.0.1:" + std::to_string(free_loopback_port());
    o.reconnect_min = 10ms;
    o.reconnect_max = 40ms;
    Recorder recorder;
    auto client = make_nats_client(o);
    client->start(recorder, 0);
    ASSERT_TRUE(recorder.wait([&] { return recorder.downs.size() == 1; }));
    // Some eight more attempts fail in this window (backoff 10, 20, 40, 40... ms): none is told again.
    EXPECT_FALSE(recorder.wait([&] { return recorder.downs.size() > 1; }, 300ms));
    const auto started = std::chrono::steady_clock::now();
    const auto r = append_and_wait(*client, "m", "x");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 50ms);
    EXPECT_FALSE(r.seq);
    EXPECT_EQ(r.error, "nats: not connected");
    const auto stopping = std::chrono::steady_clock::now();
    client->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - stopping, 500ms);
    EXPECT_EQ(recorder.calls, "d");  // told once, however many attempts failed
}

TEST_F(NatsBrokerRestart, StopAnswersEveryPendingAppendBeforeItReturns) {
    constexpr int kAppends = 100;
    std::mutex m;
    int done = 0;
    int failed_without_why = 0;
    Recorder recorder;
    auto client = make_nats_client(options());
    connect(*client, recorder);
    server_->pause();
    // A server that does not answer: the append fails at its timeout (250 ms), not later.
    const auto sent = std::chrono::steady_clock::now();
    const auto r = append_and_wait(*client, "m", "x");
    EXPECT_FALSE(r.seq);
    EXPECT_LT(std::chrono::steady_clock::now() - sent, 1s) << r.error;
    for (int i = 0; i < kAppends; ++i)
        client->append("m", "x", [&](std::optional<std::uint64_t> seq, std::string_view error) {
            std::lock_guard lock(m);
            ++done;
            if (!seq && error.empty()) ++failed_without_why;
        });
    const auto started = std::chrono::steady_clock::now();
    client->stop();
    const auto took = std::chrono::steady_clock::now() - started;
    server_->resume();
    std::lock_guard lock(m);
    // Queued ones are told "stopping", those libnats holds that the connection closed under them.
    EXPECT_EQ(done, kAppends);
    EXPECT_EQ(failed_without_why, 0);
    // libnats' close waits up to 0.5 s to flush what it buffered to a server that reads nothing.
    EXPECT_LT(took, 1s);
}

// A server that wants a user and password: the password option overrides the URL's, and no `why`
// ever holds either secret.
TEST(NatsBrokerAuth, ThePasswordOptionOverridesTheUrlsAndNoSecretReachesWhy) {
    NatsServer server({"--user", "crud", "--pass", "s3cret-pw"});
    const auto port = server.url().substr(std::string("nats://").size());
    BrokerOptions o;
    o.prefix = "auth";
    o.url = "nats://crud:wrong-pw@" + port;
    o.reconnect_min = 10ms;
    {
        Recorder recorder;
        auto refused = make_nats_client(o);
        refused->start(recorder, 0);
        ASSERT_TRUE(recorder.wait([&] { return recorder.downs.size() == 1; }));
        refused->stop();
        EXPECT_EQ(recorder.downs[0].find("wrong-pw"), std::string::npos) << recorder.downs[0];
        EXPECT_EQ(recorder.downs[0].find("crud:"), std::string::npos) << recorder.downs[0];
        EXPECT_TRUE(recorder.connected.empty());
    }
    o.password = "s3cret-pw";
    Recorder recorder;
    auto client = make_nats_client(o);
    client->start(recorder, 0);
    ASSERT_TRUE(recorder.wait([&] { return !recorder.connected.empty(); })) << recorder.downs.size();
    EXPECT_TRUE(append_and_wait(*client, "m", "x").seq);
    client->stop();
}

TEST(NatsBrokerAuth, ATokenInTheUrlOrTheTokenOptionAuthenticates) {
    NatsServer server({"--auth", "t0ken-value"});
    const auto port = server.url().substr(std::string("nats://").size());
    for (const bool in_url : {true, false}) {
        BrokerOptions o;
        o.prefix = "token";
        o.url = in_url ? "nats://t0ken-value@" + port : "nats://" + port;
        if (!in_url) o.token = "t0ken-value";
        Recorder recorder;
        auto client = make_nats_client(o);
        client->start(recorder, 0);
        ASSERT_TRUE(recorder.wait([&] { return !recorder.connected.empty(); })) << in_url;
        EXPECT_TRUE(append_and_wait(*client, "m", "x").seq);
        client->stop();
    }
    BrokerOptions o;
    o.url = "nats://wrong-token@" + port;
    Recorder recorder;
    auto refused = make_nats_client(o);
    refused->start(recorder, 0);
    ASSERT_TRUE(recorder.wait([&] { return recorder.downs.size() == 1; }));
    refused->stop();
    EXPECT_EQ(recorder.downs[0].find("wrong-token"), std::string::npos) << recorder.downs[0];
}

// A test CA and a server certificate for localhost, made with the openssl command line.
std::string make_certificates() {
    char pattern[] = "/tmp/crudcast-nats-tls-XXXXXX";
    std::string dir = ::mkdtemp(pattern);
    const std::string script = "(cd '" + dir +
                               "' && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
                               "-subj '/CN=crudcast test ca' && openssl req -newkey rsa:2048 -nodes -keyout "
                               "server.key -out server.csr -subj '/CN=localhost' && printf "
                               "'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && openssl x509 -req -in "
                               "server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
                               "-extfile ext.cnf) >/dev/null 2>&1";
    EXPECT_EQ(std::system(script.c_str()), 0);
    return dir;
}

TEST(NatsBrokerTls, ConnectsOverTlsWithTheCaFileAndRefusesAServerItCannotVerify) {
    const auto certs = make_certificates();
    NatsServer server({"--tls", "--tlscert", certs + "/server.pem", "--tlskey", certs + "/server.key"});
    const auto port = server.url().substr(server.url().rfind(':') + 1);
    // tls:// with the CA; and nats:// with the CA, which asks for TLS as well.
    for (const std::string scheme : {"tls://", "nats://"}) {
        BrokerOptions o;
        o.prefix = "tls";
        o.url = scheme;
        o.url += "localhost:" + port;
        o.tls_ca_file = certs + "/ca.pem";
        Recorder recorder;
        auto client = make_nats_client(o);
        client->start(recorder, 0);
        ASSERT_TRUE(recorder.wait([&] { return !recorder.connected.empty(); }))
            << scheme << " " << recorder.read([&] { return recorder.downs.empty() ? "" : recorder.downs[0]; });
        EXPECT_TRUE(append_and_wait(*client, "m", "x").seq) << scheme;
        client->stop();
    }
    BrokerOptions o;
    o.url = "tls://localhost:" + port;  // no CA: the test CA is trusted by nobody
    Recorder recorder;
    auto refused = make_nats_client(o);
    refused->start(recorder, 0);
    ASSERT_TRUE(recorder.wait([&] { return recorder.downs.size() == 1; }));
    refused->stop();
    EXPECT_TRUE(recorder.connected.empty());
    std::error_code ec;
    std::filesystem::remove_all(certs, ec);
}

}  // namespace
