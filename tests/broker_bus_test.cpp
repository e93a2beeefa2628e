// broker_bus_test.cpp: the BrokerBus's own decisions, over a broker stand-in that keeps one stream
// in memory (the real brokers are in nats_broker_test, redis_broker_test and several_instances_test):
// every instance delivers only what it reads back, in the stream's order; a publish completes after
// its local delivery; a broker that goes away loses appends (counted) and ends in one `bus` gap for
// every subscriber; a new stream restarts the numbering; a foreign entry is passed over.
#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "bus/broker_bus.hpp"

namespace crudcast::bus {
namespace {

using namespace std::chrono_literals;

// One stream shared by every FakeClient; `up` false makes it unreachable.
struct FakeStream {
    std::mutex mutex;
    std::condition_variable changed;
    std::uint64_t offset = 1'000'000;
    std::vector<std::pair<std::string, std::string>> entries;  // model, text; seq = offset + index + 1
    bool up = true;
    std::uint64_t epoch = 0;  // bumped by every outage, so each client notices it

    void set_up(bool value) {
        std::lock_guard lock(mutex);
        up = value;
        ++epoch;
        changed.notify_all();
    }
};

class FakeClient : public BrokerClient {
public:
    explicit FakeClient(FakeStream& s) : s_(s) {}
    ~FakeClient() override { stop(); }
    void start(BrokerListener& listener, std::uint64_t after) override {
        listener_ = &listener;
        cursor_ = after;
        thread_ = std::thread([this] { run(); });
    }
    void append(std::string_view model, std::string event, AppendDone done) override {
        std::unique_lock lock(s_.mutex);
        if (!s_.up) {
            lock.unlock();
            done(std::nullopt, "fake: down");
            return;
        }
        s_.entries.emplace_back(std::string(model), std::move(event));
        const auto seq = s_.offset + s_.entries.size();
        s_.changed.notify_all();
        lock.unlock();
        done(seq, "");
    }
    void stop() override {
        {
            std::lock_guard lock(s_.mutex);
            stopping_ = true;
            s_.changed.notify_all();
        }
        if (thread_.joinable()) thread_.join();
    }
    std::string_view kind() const override { return "fake"; }

private:
    void run() {
        std::unique_lock lock(s_.mutex);
        std::uint64_t epoch = ~std::uint64_t{0};
        std::uint64_t offset = 0;
        while (!stopping_) {
            if (!s_.up) {
                if (epoch != s_.epoch) listener_->on_down("fake: gone");
                epoch = s_.epoch;
                s_.changed.wait(lock, [&] { return stopping_ || s_.up; });
                continue;
            }
            if (epoch != s_.epoch || offset != s_.offset) {
                if (offset != s_.offset && offset != 0) cursor_ = 0;  // a new stream: from its start
                epoch = s_.epoch;
                offset = s_.offset;
                StreamInfo info{s_.offset, s_.entries.empty() ? 0 : s_.offset + 1, s_.offset + s_.entries.size()};
                listener_->on_connected(info);
            }
            const auto next = cursor_ < s_.offset ? 0 : cursor_ - s_.offset;  // index of the next entry
            if (next < s_.entries.size()) {
                const auto [model, text] = s_.entries[next];
                cursor_ = s_.offset + next + 1;
                listener_->on_entry(cursor_, model, text);
                continue;
            }
            s_.changed.wait(lock);
        }
    }

    FakeStream& s_;
    BrokerListener* listener_ = nullptr;
    std::uint64_t cursor_ = 0;
    bool stopping_ = false;  // guarded by s_.mutex
    std::thread thread_;
};

// What one shard of one instance received.
struct Sink : ShardSink {
    std::mutex mutex;
    std::condition_variable grew;
    std::vector<Delivery> got;
    void on_events(const std::vector<Delivery>& events) override {
        std::lock_guard lock(mutex);
        got.insert(got.end(), events.begin(), events.end());
        grew.notify_all();
    }
    std::vector<Delivery> wait_for(std::size_t n) {
        std::unique_lock lock(mutex);
        EXPECT_TRUE(grew.wait_for(lock, 10s, [&] { return got.size() >= n; })) << got.size() << " of " << n;
        return got;
    }
};

// One crudcast instance: its local bus (one shard, delivered inline), its sink, its BrokerBus.
struct Instance {
    explicit Instance(FakeStream& s)
        : local(
              1, [](std::size_t, std::function<void()> fn) { fn(); }, 100, 1 << 20),
          broker(local, std::make_unique<FakeClient>(s)) {
        local.attach(0, &sink);
        local.subscribe(0, {"all"});
        broker.start(5s);
    }
    PublishResult publish_and_wait(const std::string& model, int id) {
        Event e;
        e.model = model;
        e.method = "POST";
        e.id_json = std::to_string(id);
        std::promise<PublishResult> result;
        broker.publish_async(e, [&](const PublishResult& r) {
            // Read-your-writes: when the publish completes, this instance delivered the event.
            if (r.appended) {
                EXPECT_GE(local.position().value_or(0), r.seq);
            }
            result.set_value(r);
        });
        return result.get_future().get();
    }
    Sink sink;
    InMemoryBus local;
    BrokerBus broker;
};

std::string text_of(const Delivery& d) { return d.frame->substr(d.frame->find('{')); }

TEST(BrokerBus, EveryInstanceDeliversTheStreamsOrderAndAPublishCompletesAfterItsLocalDelivery) {
    FakeStream stream;
    Instance a(stream), b(stream);
    std::thread ta([&] {
        for (int i = 0; i < 200; ++i) EXPECT_TRUE(a.publish_and_wait("author", i).appended);
    });
    std::thread tb([&] {
        for (int i = 0; i < 200; ++i) EXPECT_TRUE(b.publish_and_wait("book", i).appended);
    });
    ta.join();
    tb.join();
    const auto got_a = a.sink.wait_for(400);
    const auto got_b = b.sink.wait_for(400);
    ASSERT_EQ(got_a.size(), 400u);
    ASSERT_EQ(got_b.size(), 400u);
    for (std::size_t i = 0; i < 400; ++i) {
        EXPECT_EQ(got_a[i].seq, stream.offset + i + 1);
        EXPECT_EQ(got_a[i].seq, got_b[i].seq);
        EXPECT_EQ(*got_a[i].frame, *got_b[i].frame) << "the same bytes on both instances";
        EXPECT_NE(text_of(got_a[i]).find(",\"seq\":" + std::to_string(got_a[i].seq) + "}"), std::string::npos);
    }
    EXPECT_EQ(a.broker.position(), stream.offset + 400);
    EXPECT_EQ(a.broker.status().lost, 0u);
}

TEST(BrokerBus, AStartingInstanceReadsTheRetainedStreamIntoItsHistory) {
    FakeStream stream;
    {
        Instance first(stream);
        for (int i = 0; i < 5; ++i) first.publish_and_wait("author", i);
    }
    Instance later(stream);  // start() returns once the stream's 5 entries are read
    EXPECT_EQ(later.broker.position(), stream.offset + 5);
    EXPECT_EQ(later.local.base(), stream.offset);
    std::vector<Delivery> replay;
    const auto plan = later.local.plan_resume(stream.offset + 2, *later.broker.position(), {"all"});
    EXPECT_FALSE(plan.gap);
    later.local.read_history(plan.replay_after, {"all"}, 1 << 20, replay);
    ASSERT_EQ(replay.size(), 3u);
    EXPECT_EQ(replay.front().seq, stream.offset + 3);
}

TEST(BrokerBus, ABrokerThatGoesAwayLosesAppendsAndEndsInOneBusGapForEverySubscriber) {
    FakeStream stream;
    Instance a(stream);
    a.publish_and_wait("author", 1);
    stream.set_up(false);
    const auto lost = a.publish_and_wait("author", 2);
    EXPECT_FALSE(lost.appended);
    EXPECT_EQ(a.broker.status().lost, 1u);
    stream.set_up(true);
    const auto got = a.sink.wait_for(2);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[1].seq, 0u) << "a gap marker";
    EXPECT_EQ(*got[1].frame,
              R"({"type":"gap","reason":"bus","since":)" + std::to_string(stream.offset + 1) + R"(,"next":null})");
    EXPECT_EQ(a.broker.status().reconnects, 1u);
    EXPECT_EQ(a.publish_and_wait("author", 3).seq, stream.offset + 2) << "the lost event was never numbered";
    // A subscriber that was away during the outage and resumes from before it is told as well.
    for (const auto since : {stream.offset, stream.offset + 1}) {
        const auto plan = a.local.plan_resume(since, *a.broker.position(), {"all"});
        ASSERT_TRUE(plan.gap) << since;
        EXPECT_EQ(plan.gap->reason, GapReason::bus);
        EXPECT_EQ(plan.gap->since, stream.offset + 1);
        EXPECT_EQ(plan.gap->next, stream.offset + 2);
        EXPECT_EQ(plan.replay_after, since) << "what is retained is replayed";
    }
    EXPECT_FALSE(a.local.plan_resume(stream.offset + 2, *a.broker.position(), {"all"}).gap) << "after it: no gap";
}

TEST(BrokerBus, ANewStreamRestartsTheNumberingAboveTheOldOne) {
    FakeStream stream;
    Instance a(stream);
    a.publish_and_wait("author", 1);
    stream.set_up(false);
    {
        std::lock_guard lock(stream.mutex);
        stream.entries.clear();
        stream.offset = 5'000'000;
    }
    stream.set_up(true);
    const auto r = a.publish_and_wait("author", 2);
    EXPECT_EQ(r.seq, 5'000'001u);
    const auto got = a.sink.wait_for(3);
    EXPECT_EQ(got[1].seq, 0u) << "the gap of the outage";
    EXPECT_EQ(got[2].seq, 5'000'001u);
    EXPECT_EQ(a.local.base(), 5'000'000u);
    // A resume from the old stream's numbering is from before this stream: a restart gap.
    const auto plan = a.local.plan_resume(1'000'001, *a.broker.position(), {"all"});
    ASSERT_TRUE(plan.gap);
    EXPECT_EQ(plan.gap->reason, GapReason::restart);
}

TEST(BrokerBus, AForeignEntryIsPassedOverAndCounted) {
    FakeStream stream;
    Instance a(stream);
    {
        std::lock_guard lock(stream.mutex);
        stream.entries.emplace_back("author", "not json");
        stream.entries.emplace_back("author", R"({"ts":1,"model":"author")"
                                              "\xff");
        stream.changed.notify_all();
    }
    const auto r = a.publish_and_wait("author", 1);
    EXPECT_EQ(r.seq, stream.offset + 3);
    const auto got = a.sink.wait_for(1);
    EXPECT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].seq, stream.offset + 3);
    EXPECT_EQ(a.broker.status().invalid, 2u);
}

TEST(BrokerBus, ADeeplyNestedForeignEntryIsPassedOverWithoutExhaustingTheReadersStack) {
    // Anyone who can write to a shared broker can append this; a recursive parse of it would
    // overflow the client thread's stack and take every instance down at once.
    FakeStream stream;
    Instance a(stream);
    {
        std::lock_guard lock(stream.mutex);
        stream.entries.emplace_back("author", "{\"ts\":" + std::string(1'000'000, '['));
        stream.changed.notify_all();
    }
    const auto r = a.publish_and_wait("author", 1);
    EXPECT_EQ(r.seq, stream.offset + 2);
    EXPECT_EQ(a.sink.wait_for(1)[0].seq, stream.offset + 2);
    EXPECT_EQ(a.broker.status().invalid, 1u);
}

TEST(BrokerBus, AForeignEntryAtTheEndOfTheStreamDoesNotHoldTheStart) {
    FakeStream stream;
    {
        Instance first(stream);
        first.publish_and_wait("author", 1);
    }
    {
        std::lock_guard lock(stream.mutex);
        stream.entries.emplace_back("author", "not json");
    }
    // start() returns once the stream up to its last entry is read, the foreign one included: not
    // after waiting out its catch-up time with the position still unknown.
    Instance later(stream);
    EXPECT_EQ(later.broker.position(), stream.offset + 2);
}

TEST(BrokerBus, AModelNameNoReaderWouldTakeIsNotAppended) {
    // Every reader passes over an entry with a model this long, so appending it would lose the
    // event silently while the write's response named its seq.
    FakeStream stream;
    Instance a(stream);
    const auto r = a.publish_and_wait(std::string(1025, 'm'), 1);
    EXPECT_FALSE(r.appended);
    EXPECT_EQ(a.broker.status().lost, 1u);
    std::lock_guard lock(stream.mutex);
    EXPECT_TRUE(stream.entries.empty());
}

TEST(BrokerBus, APositionAnotherInstanceGaveOutIsWaitedForNotCalledARestart) {
    FakeStream stream;
    Instance a(stream);
    a.publish_and_wait("author", 1);
    const auto position = *a.broker.position();
    const auto plan = a.local.plan_resume(position + 3, position, {"all"});
    EXPECT_FALSE(plan.gap);
    EXPECT_EQ(plan.replay_after, position + 3);
}

}  // namespace
}  // namespace crudcast::bus
