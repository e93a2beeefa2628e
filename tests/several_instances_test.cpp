// several_instances_test.cpp: two crudcast instances on one real broker (nats-server with JetStream,
// redis-server), over real sockets: writes through both reach the subscribers of both exactly once,
// in one order, with one seq; `since` on one instance replays what the other wrote; a broker killed
// mid-stream never fails a request and ends in a `bus` gap message, never a silent hole; an instance
// restarted resumes its subscribers from the broker's history.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "testkit.hpp"
#include "tests/broker_servers.hpp"
#include "tests/ws_subscriber.hpp"

namespace crudcast {
namespace {

using namespace testkit;
using Kind = BrokerServer::Kind;

// One event as a subscriber saw it.
struct Seen {
    std::uint64_t seq = 0;
    std::string model;
    std::int64_t id = 0;
    bool operator==(const Seen&) const = default;
};

Seen seen(const rapidjson::Document& doc) {
    EXPECT_TRUE(doc.IsObject() && doc.HasMember("seq") && doc.HasMember("model") && doc.HasMember("id"));
    return {doc["seq"].GetUint64(), doc["model"].GetString(), doc["id"].GetInt64()};
}

std::vector<Seen> take(Subscriber& s, std::size_t n) {
    std::vector<Seen> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(seen(s.next()));
    return out;
}

double metric(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

class SeveralInstances : public ::testing::TestWithParam<Kind> {
protected:
    void SetUp() override {
        broker_ = std::make_unique<BrokerServer>(GetParam());
        upstream_ = std::make_unique<RawUpstream>(echo_created);
        prefix_ = "t" + std::to_string(::getpid()) + "_" + std::to_string(next_prefix_++);
    }

    std::unique_ptr<gateway::Gateway> instance(std::chrono::milliseconds publish_timeout = std::chrono::seconds(5)) {
        auto cfg = test_config(upstream_->port());
        cfg.bus = broker_->url();
        cfg.bus_prefix = prefix_;
        cfg.bus_publish_timeout = publish_timeout;
        cfg.admin_listen = config::Endpoint{"127.0.0.1", 0};
        return start_gateway(cfg);
    }

    // POSTs `n` events of `model` through `port` (ids from `first`); each response's X-Crudcast-Seq.
    static std::map<std::uint64_t, Seen> write(std::uint16_t port, const std::string& model, int first, int n,
                                               const gateway::Gateway* check_delivered = nullptr) {
        std::map<std::uint64_t, Seen> by_seq;
        Client client(port);
        for (int id = first; id < first + n; ++id) {
            const auto r = client.roundtrip(json_post("/api/" + model + "s", R"({"id":)" + std::to_string(id) + "}"));
            EXPECT_EQ(r.status, 201u);
            const auto header = r.headers.get("X-Crudcast-Seq");
            EXPECT_FALSE(header.empty()) << "a write's response carries its event's seq";
            if (header.empty()) continue;
            const auto seq = std::stoull(header);
            // Read-your-writes: the instance delivered the event before its response left.
            if (check_delivered != nullptr) {
                EXPECT_GE(check_delivered->stream_position(), seq);
            }
            by_seq[seq] = Seen{seq, model, id};
        }
        return by_seq;
    }

    std::unique_ptr<BrokerServer> broker_;
    std::unique_ptr<RawUpstream> upstream_;
    std::string prefix_;
    static inline int next_prefix_ = 0;
};

TEST_P(SeveralInstances, WritesThroughBothReachEverySubscriberOnceInOneOrderWithOneSeq) {
    auto a = instance();
    auto b = instance();
    Subscriber on_a(a->port(), "/ws");
    Subscriber on_b(b->port(), "/ws");
    Subscriber books_on_b(b->port(), "/ws?topic=book");
    constexpr int n = 150;
    std::map<std::uint64_t, Seen> from_a, from_b;
    std::thread writer_a([&] { from_a = write(a->port(), "author", 1, n, a.get()); });
    std::thread writer_b([&] { from_b = write(b->port(), "book", 1, n, b.get()); });
    writer_a.join();
    writer_b.join();

    const auto all_a = take(on_a, 2 * n);
    const auto all_b = take(on_b, 2 * n);
    EXPECT_EQ(all_a, all_b) << "both instances deliver the same events in the same order with the same seq";
    std::set<std::pair<std::string, std::int64_t>> distinct;
    for (std::size_t i = 0; i < all_a.size(); ++i) {
        distinct.emplace(all_a[i].model, all_a[i].id);
        if (i > 0) {
            EXPECT_EQ(all_a[i].seq, all_a[i - 1].seq + 1) << "one stream, consecutive positions";
        }
        const auto& writes = all_a[i].model == "author" ? from_a : from_b;
        const auto it = writes.find(all_a[i].seq);
        ASSERT_NE(it, writes.end()) << "every event's seq was its write's X-Crudcast-Seq";
        EXPECT_EQ(it->second, all_a[i]);
    }
    EXPECT_EQ(distinct.size(), 2u * n) << "exactly once";
    std::vector<Seen> books;
    for (const auto& e : all_b)
        if (e.model == "book") books.push_back(e);
    EXPECT_EQ(take(books_on_b, n), books);

    // A subscriber resuming on B gets what was written through A as well, from the broker's history.
    Subscriber resumed(b->port(), "/ws?since=" + std::to_string(all_a.front().seq - 1));
    EXPECT_EQ(take(resumed, 2 * n), all_a);
}

TEST_P(SeveralInstances, ABrokerKilledMidStreamFailsNoRequestAndEndsInABusGap) {
    auto a = instance(std::chrono::milliseconds(250));
    Subscriber on_a(a->port(), "/ws");
    const auto before = write(a->port(), "author", 1, 3);
    const auto seqs = take(on_a, 3);
    ASSERT_EQ(seqs.back().seq, before.rbegin()->first);

    broker_->kill();
    Client client(a->port());
    for (int id = 10; id < 15; ++id) {
        const auto start = std::chrono::steady_clock::now();
        const auto r = client.roundtrip(json_post("/api/authors", R"({"id":)" + std::to_string(id) + "}"));
        EXPECT_EQ(r.status, 201u) << "the write itself succeeded upstream: its answer goes through";
        EXPECT_FALSE(r.headers.has("X-Crudcast-Seq")) << "its event is not in the stream";
        EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    }
    EXPECT_EQ(client.roundtrip(get_request("/api/authors")).status, 201u);  // reads are proxied as ever
    const auto metrics = exchange(a->admin_port(), admin_request("/metrics")).body;
    EXPECT_GE(metric(metrics, "crudcast_bus_lost_events_total") + metric(metrics, "crudcast_bus_late_events_total"), 5);
    const auto ready = exchange(a->admin_port(), admin_request("/readyz"));
    EXPECT_NE(ready.body.find("bus: " + std::string(broker_->name()) + " down"), std::string::npos) << ready.body;

    broker_->start();
    // The next message the subscriber gets is the gap: nothing after its last event reached it.
    rapidjson::Document gap;
    for (int tries = 0; tries < 3; ++tries) {  // reconnect backoff is at most 5 s; each read waits 10 s
        gap = on_a.next();
        if (gap.IsObject() && gap.HasMember("type")) break;
    }
    ASSERT_TRUE(gap.IsObject() && gap.HasMember("type")) << "a gap message, not an event";
    EXPECT_STREQ(gap["type"].GetString(), "gap");
    EXPECT_STREQ(gap["reason"].GetString(), "bus");
    EXPECT_EQ(gap["since"].GetUint64(), seqs.back().seq);

    // Events flow again, numbered above everything before (Redis restarted empty: a new offset).
    std::map<std::uint64_t, Seen> after;
    for (int attempt = 0; attempt < 50 && after.empty(); ++attempt) after = write(a->port(), "author", 100, 1);
    ASSERT_EQ(after.size(), 1u);
    const auto next = seen(on_a.next());
    EXPECT_EQ(next, after.begin()->second);
    EXPECT_GT(next.seq, seqs.back().seq);

    // A subscriber that was away during the outage and resumes from before it is told too, then
    // gets what the stream holds (Redis restarted empty: its old entries are gone, a restart gap).
    Subscriber resumed(a->port(), "/ws?since=" + std::to_string(seqs.front().seq));
    const auto told = resumed.next();
    ASSERT_TRUE(told.IsObject() && told.HasMember("type"));
    if (GetParam() == Kind::nats) {
        EXPECT_STREQ(told["reason"].GetString(), "bus");
        EXPECT_EQ(told["since"].GetUint64(), seqs.back().seq);
        EXPECT_EQ(told["next"].GetUint64(), next.seq);
        EXPECT_EQ(take(resumed, 3), (std::vector<Seen>{seqs[1], seqs[2], next}));
    } else {
        EXPECT_STREQ(told["reason"].GetString(), "restart");
        EXPECT_EQ(seen(resumed.next()), next);
    }
}

TEST_P(SeveralInstances, ARestartedInstanceResumesItsSubscribersFromTheBrokersHistory) {
    auto a = instance();
    auto b = instance();
    std::uint64_t last = 0;
    {
        Subscriber on_a(a->port(), "/ws?topic=author");
        write(b->port(), "author", 1, 3);
        last = take(on_a, 3).back().seq;
    }
    a.reset();  // drained and stopped
    const auto meanwhile = write(b->port(), "author", 10, 5);
    a = instance();
    Subscriber resumed(a->port(), "/ws?topic=author&since=" + std::to_string(last));
    std::vector<Seen> want;
    for (const auto& [seq, e] : meanwhile) want.push_back(e);
    EXPECT_EQ(take(resumed, 5), want) << "no loss, no duplicate, no gap message";
    const auto live = write(a->port(), "author", 20, 1);
    EXPECT_EQ(seen(resumed.next()), live.begin()->second);
}

INSTANTIATE_TEST_SUITE_P(Brokers, SeveralInstances, ::testing::Values(Kind::nats, Kind::redis),
                         [](const auto& info) { return info.param == Kind::nats ? "nats" : "redis"; });

}  // namespace
}  // namespace crudcast
