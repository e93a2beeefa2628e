// bus.hpp: the event bus crudcast publishes to and WebSocket sessions subscribe to. The in-memory
// bus (bus/in_memory_bus.hpp) is the embedded default; broker-backed buses (NATS, Redis) implement
// the same interface for several crudcast instances.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bus/event.hpp"

namespace crudcast::bus {

// A frame shared by every subscriber of one event: one allocation per event, never copied.
using Frame = std::shared_ptr<const std::string>;

// A subscriber lives on one shard (one worker thread) and is only ever called on that thread.
class Subscriber {
public:
    virtual ~Subscriber() = default;
    // The complete WebSocket text frame of the event with sequence number `seq`. Must not
    // unsubscribe synchronously (the bus is iterating its subscriber list): a subscriber that
    // decides to leave (overflow) starts closing and unsubscribes when its session ends.
    virtual void deliver(const Frame& frame, std::uint64_t seq) = 0;
};

struct PublishResult {
    std::uint64_t seq = 0;
    std::size_t subscribers = 0;  // subscribers of the event's model or of "all" at publish time
};

class Bus {
public:
    virtual ~Bus() = default;
    // Thread-safe. Stamps ts and seq, serializes the event once and hands the frame to every
    // subscriber of event.model or "all" (each exactly once), in seq order. Never blocks on a
    // subscriber and never fails.
    virtual PublishResult publish(Event event) = 0;
};

// Topics a subscriber asked for, normalised: lower-case, deduplicated; "all" alone when asked.
std::vector<std::string> normalize_topics(const std::vector<std::string>& topics);

}  // namespace crudcast::bus
