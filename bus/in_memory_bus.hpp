// in_memory_bus.hpp: the embedded bus for one process. One shard per worker thread; publish
// stamps seq under one short lock and queues the one shared frame for each shard that has a
// subscriber of the event's model or of "all", in seq order. The shard's sink (its thread's
// WebSocket fan-out) takes the queue on its own thread, so no lock is held while a socket is written.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bus/bus.hpp"
#include "bus/history.hpp"

namespace crudcast::bus {

class InMemoryBus : public Bus {
public:
    // `post_to_shard(i, fn)` must run fn on shard i's thread (asio::post to its io_context).
    using PostFn = std::function<void(std::size_t shard, std::function<void()> fn)>;
    // Positions start after `base`: by default the start time in microseconds since the epoch, so a
    // position from an earlier process is always below this one's (while it published fewer than a
    // million events a second on average) and stays below 2^53, which JavaScript reads exactly.
    // The history keeps `history_events` / `history_bytes` for resuming subscribers (0: none).
    InMemoryBus(std::size_t shards, PostFn post_to_shard, std::size_t history_events = 0, std::size_t history_bytes = 0,
                std::optional<std::uint64_t> base = std::nullopt);

    // Before any publish: the sink that receives shard `shard`'s events.
    void attach(std::size_t shard, ShardSink* sink);
    // A subscriber of `topics` (as returned by normalize_topics) joined or left shard `shard`:
    // from the next publish on, its events are (or are no longer) queued for that shard. Returns the
    // position then: every later event reaches the shard; earlier ones come from the history.
    std::uint64_t subscribe(std::size_t shard, const std::vector<std::string>& topics);
    void unsubscribe(std::size_t shard, const std::vector<std::string>& topics);

    PublishResult publish(Event event) override;

    // A broker bus's reader (bus/broker_bus.hpp): the broker numbers events, this bus fans them
    // out. deliver() takes an event the broker numbered `seq`, in the broker's order: a seq at or
    // below the position is passed over (returns false); one past position + 1 drops the history
    // (restart_after: the events between are not known here).
    // `live` false: into the history only (the stream's backlog read at start, which nobody
    // subscribed here before has missed).
    bool deliver(std::uint64_t seq, const std::string& model, Frame frame, bool live = true);
    // A stream position that holds no event (an entry passed over): the position moves past it.
    void skip(std::uint64_t seq);
    // The stream numbers from `base` on (a stream found or created again): what was kept of another
    // numbering goes, and the position becomes `base`.
    void restart(std::uint64_t base);
    // Tells every subscriber of every shard `gap_json` (a `bus` gap), after the events delivered before.
    void broadcast_gap(std::string gap_json);
    // EventHistory::mark_bus_loss under the history's lock.
    void mark_bus_loss(std::uint64_t after);
    // A resume position this far ahead of the position is taken as one this process has not read yet
    // (another instance gave it out): nothing is replayed and live events up to it are passed over.
    void accept_ahead(std::uint64_t distance) { ahead_ = distance; }
    std::optional<std::uint64_t> position() const override { return last_.load(std::memory_order_acquire); }
    // No event of this process has a seq at or below this.
    std::uint64_t base() const { return base_.load(std::memory_order_acquire); }

    // What a subscriber resuming after `since` replays and is told first; `position` is what
    // subscribe() returned for it.
    ResumePlan plan_resume(std::uint64_t since, std::uint64_t position, const std::vector<std::string>& topics) const;
    // EventHistory::read under the history's lock.
    std::optional<std::uint64_t> read_history(std::uint64_t after, const std::vector<std::string>& topics,
                                              std::size_t max_bytes, std::vector<Delivery>& out) const;
    // Events and bytes retained, for /metrics and /api/stats.
    std::pair<std::size_t, std::size_t> history_usage() const;

    // Subscribers of `model` or of "all" (what PublishResult::subscribers says).
    std::size_t subscribers_of(const std::string& model) const;
    // Subscribers per topic ("all" included), for metrics and logs.
    std::vector<std::pair<std::string, std::size_t>> subscriber_counts() const;
    // The same for the `max` most subscribed topics (ties by name), most subscribed first; the other
    // topics' subscribers summed under `other` (last, when there are any). Topics are named by
    // clients: this bounds what /metrics and /api/stats list.
    std::vector<std::pair<std::string, std::size_t>> top_subscriber_counts(std::size_t max,
                                                                           std::string_view other) const;

private:
    struct Shard {
        ShardSink* sink = nullptr;
        std::unordered_map<std::string, std::size_t> counts;  // guarded by mutex_
        // The inbox is filled in seq order under the publish lock and emptied by the shard's
        // thread. (Posting each event as its own handler is not enough: Asio runs handlers a
        // thread posted to itself after those other threads posted meanwhile, which reorders.)
        std::mutex inbox_mutex;
        std::vector<Delivery> inbox;
        bool drain_posted = false;
    };
    void drain(std::size_t shard);
    // Under mutex_: history and every shard with a subscriber of `model` (or "all"; every shard when
    // `model` is empty: a gap marker).
    void fan_out(std::uint64_t seq, const std::string& model, const Frame& frame, bool live = true);

    std::vector<std::unique_ptr<Shard>> shards_;
    PostFn post_;
    mutable std::mutex mutex_;  // orders publications; guards counts_ and every shard's counts
    std::unordered_map<std::string, std::size_t> counts_;  // over all shards
    std::atomic<std::uint64_t> base_;                      // written by restart under mutex_ and history_mutex_
    std::uint64_t ahead_ = 0;
    std::uint64_t seq_;                 // guarded by mutex_
    std::atomic<std::uint64_t> last_;   // seq_, for readers that take no lock
    mutable std::mutex history_mutex_;  // taken inside mutex_ by publish, alone by readers
    EventHistory history_;
};

}  // namespace crudcast::bus
