// history.hpp: the events a process keeps so that a subscriber can resume after a position
// (?since=, Last-Event-ID), and the one decision a resume needs: what to replay and which gap, if
// any, to report first. Not thread-safe: the bus guards it.
//
// What was dropped is remembered per model (the newest dropped seq), so a subscriber of a quiet topic
// is not told of a gap because other topics' events went: only the events it would have received count.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bus/bus.hpp"

namespace crudcast::bus {

class EventHistory {
public:
    // Keeps at most `max_events` events and `max_bytes` of their frames; 0 events keeps none.
    EventHistory(std::size_t max_events, std::size_t max_bytes) : max_events_(max_events), max_bytes_(max_bytes) {}

    bool enabled() const { return max_events_ > 0 && max_bytes_ > 0; }
    // Appends the event numbered `seq` (above the previous), dropping the oldest past the bounds.
    void append(std::uint64_t seq, std::string model, Frame frame);

    // The next event is numbered after `last`, not after the last appended (a broker's stream was
    // recreated, or this reader missed entries): everything retained is dropped and counts as lost
    // for every topic, so a resume from before it reports the gap.
    void restart_after(std::uint64_t last);

    // A broker bus lost events between the event numbered `after` and the next (the broker was
    // unreachable: those events were never numbered). A resume from before it is told, with a `bus` gap.
    void mark_bus_loss(std::uint64_t after);
    // The first such mark at or after `since`.
    std::optional<std::uint64_t> bus_loss_after(std::uint64_t since) const;

    bool empty() const { return entries_.empty(); }
    std::uint64_t first_seq() const { return entries_.empty() ? 0 : entries_.front().seq; }
    std::size_t size() const { return entries_.size(); }
    std::size_t bytes() const { return bytes_; }

    // The retained events after `after` that `topics` want ("all": every one), in order, appended
    // to `out` until `max_bytes` of frames (at least one event) or `max_scan` events examined.
    // Returns the seq up to which the history was read (the next read starts after it; `after` when
    // nothing newer is retained), or nullopt when an event after `after` that `topics` want was
    // dropped (the reader fell behind).
    std::optional<std::uint64_t> read(std::uint64_t after, const std::vector<std::string>& topics,
                                      std::size_t max_bytes, std::size_t max_scan, std::vector<Delivery>& out) const;

    // Whether an event after `after` that `topics` want was dropped.
    bool lost_after(std::uint64_t after, const std::vector<std::string>& topics) const;
    // The seq of the first retained event after `after` that `topics` want.
    std::optional<std::uint64_t> next_wanted(std::uint64_t after, const std::vector<std::string>& topics) const;

private:
    std::size_t index_after(std::uint64_t after) const;

    std::size_t max_events_;
    std::size_t max_bytes_;
    std::deque<Delivery> entries_;
    std::size_t bytes_ = 0;
    // The newest dropped seq, of any model and per model. Model names come from request paths, so
    // the table is bounded: past it, a model not in it counts as having lost `dropped_any_`.
    static constexpr std::size_t max_models = 4096;
    std::uint64_t dropped_any_ = 0;
    std::unordered_map<std::string, std::uint64_t> dropped_;
    bool dropped_overflow_ = false;
    std::deque<std::uint64_t> bus_losses_;  // ascending, at most max_bus_losses
    static constexpr std::size_t max_bus_losses = 64;
};

// Whether `topics` (normalised) want an event of `model`.
bool topics_want(const std::vector<std::string>& topics, std::string_view model);

// Where a subscriber that resumes after `since` starts, given this process's first position
// `base` (no event of this process has seq <= base), the position when it subscribed (`position`:
// every later event reaches it live), and the history.
struct ResumePlan {
    std::uint64_t replay_after = 0;  // replay the retained events after this
    std::optional<Gap> gap;          // sent first, when events after `since` are lost
};
ResumePlan plan_resume(std::uint64_t since, std::uint64_t base, std::uint64_t position, const EventHistory& history,
                       const std::vector<std::string>& topics);

}  // namespace crudcast::bus
