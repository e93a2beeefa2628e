// bus.hpp: the event bus crudcast publishes to and WebSocket sessions subscribe to. The in-memory
// bus (bus/in_memory_bus.hpp) is the embedded default; broker-backed buses (NATS, Redis) implement
// the same interface for several crudcast instances.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/event.hpp"
#include "common/stats.hpp"

namespace crudcast::bus {

// A frame shared by every subscriber of one event: one allocation per event, never copied.
using Frame = std::shared_ptr<const std::string>;

// One published event as a worker thread receives it. seq 0 (and no model) is a gap marker of a
// broker bus: `frame` then holds a gap message's JSON for every subscriber (InMemoryBus::broadcast_gap).
struct Delivery {
    std::string model;
    Frame frame;
    std::uint64_t seq;
};

// What a bus hands events to: one sink per worker thread (shard), which fans each event out to
// that thread's WebSocket subscribers. Called only on the shard's own thread.
class ShardSink {
public:
    virtual ~ShardSink() = default;
    // Every event published since the previous call that a subscriber of this shard may want,
    // in seq order. Must not block.
    virtual void on_events(const std::vector<Delivery>& events) = 0;
};

// Why positions before a subscriber's next event are lost, told to it in a gap message.
enum class GapReason : std::uint8_t {
    history,  // older than the retained history
    restart,  // from before this process started (or not issued by it)
    bus,      // lost while the broker was unreachable
};
std::string_view gap_reason_name(GapReason reason);

// `{"type":"gap","reason":R,"since":S,"next":N}`: positions after `since` and before `next` are lost;
// `next` is the seq of the next event the subscriber receives (null while none is retained).
struct Gap {
    GapReason reason = GapReason::history;
    std::uint64_t since = 0;
    std::optional<std::uint64_t> next;
};
std::string gap_json(const Gap& gap);

struct PublishResult {
    std::uint64_t seq = 0;
    std::size_t subscribers = 0;  // subscribers of the event's model or of "all" at publish time
    bool appended = true;         // false: a broker bus could not append it (lost; seq is 0)
};

// Runs once per publish_async, on a bus thread.
using PublishDone = std::function<void(const PublishResult&)>;

enum class BusState : std::uint8_t { connecting, up, down };
std::string_view bus_state_name(BusState state);

// What /readyz, /metrics and /api/stats say about the bus.
struct BusStatus {
    std::string kind;  // "memory", "nats", "redis"
    BusState state = BusState::up;
    std::uint64_t lag = 0;         // entries known to be in the stream and not yet delivered here
    std::uint64_t lost = 0;        // events that could not be appended
    std::uint64_t late = 0;        // responses that left before their event was delivered here
    std::uint64_t reconnects = 0;  // connections after the first
    std::uint64_t invalid = 0;     // stream entries passed over (not crudcast's)

    // /metrics families; /api/stats has them all in one "bus" object.
    static constexpr stats::Info state_info{"gauge", "crudcast_bus_state",
                                            "The bus's state, 1 for the current one (memory: always up)", "bus", ""};
    static constexpr stats::Info lag_info{"gauge", "crudcast_bus_lag_events",
                                          "Stream entries known to this instance and not yet delivered here", "", ""};
    static constexpr stats::Info lost_info{"counter", "crudcast_bus_lost_events_total",
                                           "Events the broker did not take (lost)", "", ""};
    static constexpr stats::Info late_info{
        "counter", "crudcast_bus_late_events_total",
        "Responses that left before their event reached this instance (bus-publish-timeout)", "", ""};
    static constexpr stats::Info reconnects_info{"counter", "crudcast_bus_reconnects_total",
                                                 "Connections to the broker after the first", "", ""};
    static constexpr stats::Info invalid_info{"counter", "crudcast_bus_invalid_entries_total",
                                              "Stream entries passed over: not crudcast events", "", ""};
};

class Bus {
public:
    virtual ~Bus() = default;
    // Thread-safe. Stamps ts and seq, serializes the event once and hands the frame to the sink
    // of every shard with a subscriber of event.model or "all", in seq order. Never blocks on a
    // subscriber and never fails.
    virtual PublishResult publish(Event event) = 0;
    // The seq of the last event published (this process's base before any): what X-Crudcast-Seq
    // says for a response that made no event. nullopt while a broker bus has not read its stream yet.
    virtual std::optional<std::uint64_t> position() const = 0;

    // Broker buses append through the broker and deliver only what they read back from it, so a
    // publish completes later: publish_async calls `done` once this process delivered the event to
    // its own subscribers, or when the broker could not append it. Never blocks.
    virtual bool asynchronous() const { return false; }
    virtual void publish_async(Event event, PublishDone done) { done(publish(std::move(event))); }
    // A response left before its event was delivered here (bus-publish-timeout): for the metrics.
    virtual void count_late() {}
};

// Topics a subscriber asked for, normalised: lower-case, deduplicated; "all" alone when asked.
std::vector<std::string> normalize_topics(const std::vector<std::string>& topics);

}  // namespace crudcast::bus
