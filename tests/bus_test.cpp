// bus_test.cpp: the in-memory bus with fake shard sinks: routing by topic, seq order across
// concurrent publishers, subscriber counts. (The WebSocket side is in events_test.)
#include "bus/in_memory_bus.hpp"

#include <optional>

#include <algorithm>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace crudcast::bus;

struct RecordingSink : ShardSink {
    std::vector<Delivery> got;
    std::size_t batches = 0;
    void on_events(const std::vector<Delivery>& events) override {
        ++batches;
        got.insert(got.end(), events.begin(), events.end());
    }
};

// Posted drains wait in a queue per shard until the test runs them (as the shard's thread would).
struct Harness {
    explicit Harness(std::size_t shards) : posted(shards), sinks(shards) {
        bus = std::make_unique<InMemoryBus>(shards, [this](std::size_t shard, std::function<void()> fn) {
            std::lock_guard lock(mutex);
            posted[shard].push_back(std::move(fn));
        });
        for (std::size_t i = 0; i < shards; ++i) bus->attach(i, &sinks[i]);
    }
    std::size_t run(std::size_t shard) {
        std::vector<std::function<void()>> fns;
        {
            std::lock_guard lock(mutex);
            fns.swap(posted[shard]);
        }
        for (auto& fn : fns) fn();
        return fns.size();
    }
    static Event event(std::string model) {
        Event e;
        e.model = std::move(model);
        e.method = "POST";
        return e;
    }
    std::mutex mutex;
    std::vector<std::vector<std::function<void()>>> posted;
    std::vector<RecordingSink> sinks;
    std::unique_ptr<InMemoryBus> bus;
};

TEST(InMemoryBus, AnEventGoesOnlyToShardsWithASubscriberOfItsModelOrAll) {
    Harness h(3);
    h.bus->subscribe(0, {"author"});
    h.bus->subscribe(1, {"all"});
    EXPECT_EQ(h.bus->publish(Harness::event("author")).subscribers, 2u);
    EXPECT_EQ(h.bus->publish(Harness::event("book")).subscribers, 1u);
    EXPECT_EQ(h.run(0), 1u);
    EXPECT_EQ(h.run(1), 1u);  // one drain for both events
    EXPECT_EQ(h.run(2), 0u);  // nobody there: never posted to
    ASSERT_EQ(h.sinks[0].got.size(), 1u);
    EXPECT_EQ(h.sinks[0].got[0].model, "author");
    ASSERT_EQ(h.sinks[1].got.size(), 2u);
    EXPECT_EQ(h.sinks[1].got[0].seq + 1, h.sinks[1].got[1].seq);
    EXPECT_EQ(h.sinks[1].got[0].frame, h.sinks[0].got[0].frame);  // the same shared frame
}

TEST(InMemoryBus, WithoutSubscribersPublishingStillNumbersEventsButPostsNothing) {
    Harness h(2);
    const auto a = h.bus->publish(Harness::event("author"));
    const auto b = h.bus->publish(Harness::event("author"));
    EXPECT_EQ(a.subscribers, 0u);
    EXPECT_EQ(b.seq, a.seq + 1);
    EXPECT_EQ(h.run(0) + h.run(1), 0u);
}

TEST(InMemoryBus, UnsubscribingStopsDeliveryAndCountsFollow) {
    Harness h(2);
    h.bus->subscribe(0, {"author", "book"});
    h.bus->subscribe(1, {"author"});
    auto counts = h.bus->subscriber_counts();
    std::sort(counts.begin(), counts.end());
    EXPECT_EQ(counts, (std::vector<std::pair<std::string, std::size_t>>{{"author", 2}, {"book", 1}}));
    h.bus->unsubscribe(0, {"author", "book"});
    EXPECT_EQ(h.bus->publish(Harness::event("author")).subscribers, 1u);
    EXPECT_EQ(h.run(0), 0u);
    EXPECT_EQ(h.run(1), 1u);
    EXPECT_EQ(h.bus->subscriber_counts(), (std::vector<std::pair<std::string, std::size_t>>{{"author", 1}}));
}

TEST(InMemoryBus, ConcurrentPublishersGiveEveryShardOneGapFreeSeqOrder) {
    Harness h(2);
    h.bus->subscribe(0, {"all"});
    h.bus->subscribe(1, {"all"});
    constexpr int writers = 8, each = 2000;
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
        threads.emplace_back([&h, w] {
            for (int i = 0; i < each; ++i) h.bus->publish(Harness::event(w % 2 ? "author" : "book"));
        });
    }
    // Drain while publishing goes on, as the shard threads would.
    std::thread drainer([&h] {
        for (int i = 0; i < 200; ++i) h.run(i % 2);
    });
    for (auto& t : threads) t.join();
    drainer.join();
    h.run(0);
    h.run(1);
    for (const auto& sink : h.sinks) {
        ASSERT_EQ(sink.got.size(), static_cast<std::size_t>(writers * each));
        for (std::size_t i = 0; i < sink.got.size(); ++i)
            ASSERT_EQ(sink.got[i].seq, h.bus->base() + i + 1) << "at " << i;
    }
}

TEST(Bus, TopSubscriberCountsKeepsTheMostSubscribedAndSumsTheRest) {
    crudcast::bus::InMemoryBus bus(1, [](std::size_t, std::function<void()>) {});
    bus.subscribe(0, {"b", "c", "d", "_other"});
    bus.subscribe(0, {"c", "d"});
    bus.subscribe(0, {"d"});
    using Counts = std::vector<std::pair<std::string, std::size_t>>;
    EXPECT_EQ(bus.top_subscriber_counts(2, "_other"), (Counts{{"d", 3}, {"c", 2}, {"_other", 2}}));
    EXPECT_EQ(bus.top_subscriber_counts(3, "_other"), (Counts{{"d", 3}, {"c", 2}, {"b", 1}, {"_other", 1}}));
    bus.unsubscribe(0, {"b", "c", "d", "_other"});
    EXPECT_EQ(bus.top_subscriber_counts(2, "_other"), (Counts{{"d", 2}, {"c", 1}}));
}

}  // namespace

// --- History and the resume plan (bus/history.hpp) ---

namespace history_rows {

Frame frame_of(std::size_t bytes) { return std::make_shared<const std::string>(bytes, 'x'); }

// seqs 101.. with models from `models`, each frame 10 bytes.
EventHistory filled(std::size_t max_events, std::size_t max_bytes, const std::vector<std::string>& models) {
    EventHistory h(max_events, max_bytes);
    std::uint64_t seq = 100;
    for (const auto& m : models) h.append(++seq, m, frame_of(10));
    return h;
}

std::vector<std::uint64_t> seqs(const std::vector<Delivery>& out) {
    std::vector<std::uint64_t> s;
    for (const auto& d : out) s.push_back(d.seq);
    return s;
}

}  // namespace history_rows

TEST(EventHistory, KeepsTheNewestWithinBothBounds) {
    using namespace history_rows;
    auto by_count = filled(3, 1000, {"a", "b", "a", "b", "a"});
    EXPECT_EQ(by_count.size(), 3u);
    EXPECT_EQ(by_count.first_seq(), 103u);
    auto by_bytes = filled(100, 25, {"a", "b", "a", "b", "a"});
    EXPECT_EQ(by_bytes.size(), 2u);
    EXPECT_EQ(by_bytes.bytes(), 20u);
    EXPECT_EQ(by_bytes.first_seq(), 104u);
    auto off = filled(0, 1000, {"a"});
    EXPECT_TRUE(off.empty());
    EXPECT_FALSE(off.enabled());
}

TEST(EventHistory, ReadsTheWantedEventsInOrderWithinItsLimits) {
    using namespace history_rows;
    const auto h = filled(10, 1000, {"a", "b", "a", "b", "a"});  // 101..105
    std::vector<Delivery> out;
    EXPECT_EQ(h.read(100, {"a"}, 1000, 100, out), 105u);
    EXPECT_EQ(seqs(out), (std::vector<std::uint64_t>{101, 103, 105}));
    out.clear();
    EXPECT_EQ(h.read(101, {"all"}, 1000, 100, out), 105u);
    EXPECT_EQ(seqs(out), (std::vector<std::uint64_t>{102, 103, 104, 105}));
    out.clear();
    EXPECT_EQ(h.read(100, {"all"}, 25, 100, out), 102u);  // 2 frames fit in 25 bytes
    EXPECT_EQ(seqs(out), (std::vector<std::uint64_t>{101, 102}));
    out.clear();
    EXPECT_EQ(h.read(100, {"all"}, 5, 100, out), 101u);  // at least one, however large
    out.clear();
    EXPECT_EQ(h.read(100, {"c"}, 1000, 2, out), 102u);  // the scan is bounded too
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(h.read(105, {"all"}, 1000, 100, out), 105u);  // nothing newer: caught up
    EXPECT_TRUE(out.empty());
}

TEST(EventHistory, OnlyTheDroppedEventsOfTheReadersTopicsAreALoss) {
    using namespace history_rows;
    const auto h = filled(3, 1000, {"a", "b", "a", "b", "b"});  // 103..105 retained; dropped a@101, b@102
    std::vector<Delivery> out;
    EXPECT_EQ(h.read(101, {"all"}, 1000, 100, out), std::nullopt);  // 102 is gone
    EXPECT_EQ(h.read(101, {"a"}, 1000, 100, out), 105u);            // 102 was not an `a`
    EXPECT_EQ(seqs(out), (std::vector<std::uint64_t>{103}));
    EXPECT_EQ(h.read(101, {"b"}, 1000, 100, out), std::nullopt);
    EXPECT_FALSE(h.lost_after(102, {"all"}));
    EXPECT_TRUE(h.lost_after(100, {"a"}));
    EXPECT_FALSE(h.lost_after(100, {"c"}));  // never published
}

TEST(EventHistory, ResumePlanNamesTheGapAndWhereTheReplayStarts) {
    using namespace history_rows;
    const auto h = filled(3, 1000, {"a", "b", "a", "b", "a"});  // base 100; retains 103..105
    struct Row {
        std::uint64_t since;
        std::vector<std::string> topics;
        std::uint64_t replay_after;
        std::optional<GapReason> reason;
        std::optional<std::uint64_t> next;
    };
    const Row rows[] = {
        {105, {"all"}, 105, {}, {}},                   // up to date
        {102, {"all"}, 102, {}, {}},                   // everything after 102 is retained
        {101, {"all"}, 102, GapReason::history, 103},  // 102 is lost
        {101, {"a"}, 101, {}, {}},                     // ... but it was a `b`
        {100, {"b"}, 102, GapReason::history, 104},    // the next event of its topic
        {100, {"c"}, 100, {}, {}},                     // nothing of its topic was ever dropped
        {99, {"all"}, 102, GapReason::restart, 103},   // before this process
        {106, {"all"}, 102, GapReason::restart, 103},  // not given out by this process
    };
    for (const auto& row : rows) {
        const auto plan = plan_resume(row.since, 100, 105, h, row.topics);
        EXPECT_EQ(plan.replay_after, row.replay_after) << row.since << " " << row.topics[0];
        EXPECT_EQ(plan.gap.has_value(), row.reason.has_value()) << row.since << " " << row.topics[0];
        if (plan.gap && row.reason) {
            EXPECT_EQ(plan.gap->reason, *row.reason) << row.since;
            EXPECT_EQ(plan.gap->since, row.since);
            EXPECT_EQ(plan.gap->next, row.next) << row.since;
        }
    }
    const auto none = filled(0, 0, {"a"});
    const auto plan = plan_resume(100, 100, 101, none, {"all"});
    ASSERT_TRUE(plan.gap);
    EXPECT_EQ(gap_json(*plan.gap), R"({"type":"gap","reason":"history","since":100,"next":null})");
    EXPECT_EQ(plan.replay_after, 101u);
    EXPECT_FALSE(filled(10, 0, {"a"}).enabled());  // no bytes: no history either
}

TEST(InMemoryBus, PositionsStartAfterTheBaseAndSurviveNoSubscriber) {
    InMemoryBus bus(
        1, [](std::size_t, std::function<void()>) {}, 10, 1 << 20, 5000);
    EXPECT_EQ(bus.position(), 5000u);
    EXPECT_EQ(bus.publish(Harness::event("a")).seq, 5001u);
    EXPECT_EQ(bus.position(), 5001u);
    EXPECT_EQ(bus.history_usage().first, 1u);  // kept for a later resume though nobody listened
    // The default base is the start time in microseconds: below 2^53, above any earlier start.
    InMemoryBus now(1, [](std::size_t, std::function<void()>) {});
    EXPECT_LT(*now.position(), std::uint64_t{1} << 53);
    EXPECT_GT(*now.position(), std::uint64_t{1'700'000'000'000'000});
}
