// bus_test.cpp: the in-memory bus with fake shard sinks: routing by topic, seq order across
// concurrent publishers, subscriber counts. (The WebSocket side is in events_test.)
#include "bus/in_memory_bus.hpp"

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
