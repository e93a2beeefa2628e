// in_memory_bus.hpp: the embedded bus for one process. One shard per worker thread holds that
// thread's subscribers by topic; publish stamps seq under one short lock and posts the one shared
// frame to each shard, in seq order, so no lock is ever held while a socket is written.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "bus/bus.hpp"

namespace crudcast::bus {

class InMemoryBus : public Bus {
public:
    // `post_to_shard(i, fn)` must run fn on shard i's thread (asio::post to its io_context).
    using PostFn = std::function<void(std::size_t shard, std::function<void()> fn)>;
    InMemoryBus(std::size_t shards, PostFn post_to_shard);

    // Called on shard `shard`'s thread. `topics` as returned by normalize_topics.
    void subscribe(std::size_t shard, Subscriber* subscriber, const std::vector<std::string>& topics);
    void unsubscribe(std::size_t shard, Subscriber* subscriber, const std::vector<std::string>& topics);

    PublishResult publish(Event event) override;

    // Subscribers per topic ("all" included), for metrics and logs.
    std::vector<std::pair<std::string, std::size_t>> subscriber_counts() const;

private:
    struct Pending {
        std::string model;
        Frame frame;
        std::uint64_t seq;
    };
    struct Shard {
        // Owned by the shard's thread.
        std::unordered_map<std::string, std::vector<Subscriber*>> by_topic;
        std::vector<Subscriber*> all;
        // The inbox is filled in seq order under the publish lock and emptied by the shard's
        // thread. (Posting each event as its own handler is not enough: Asio runs handlers a
        // thread posted to itself after those other threads posted meanwhile, which reorders.)
        std::mutex inbox_mutex;
        std::vector<Pending> inbox;
        bool drain_posted = false;
    };
    void drain(std::size_t shard);

    std::vector<std::unique_ptr<Shard>> shards_;
    PostFn post_;
    mutable std::mutex mutex_;   // orders publications; guards counts_
    std::unordered_map<std::string, std::size_t> counts_;
    std::uint64_t seq_ = 0;      // guarded by mutex_
};

}  // namespace crudcast::bus
