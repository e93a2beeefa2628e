// ws_counters.hpp: the WebSocket subscribers' counters, shared by all worker threads, each declared
// once with its names in /metrics and /api/stats (common/stats.hpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/stats.hpp"

namespace crudcast::gateway {

// X(type, member, Prometheus name, /api/stats key, help), in the order both exporters write them.
// `open` is in /api/stats only: /metrics has the subscribers by topic (by_topic_info), and one family
// cannot have a series without the topic label beside those with it.
#define CRUDCAST_WEBSOCKET_STATS(X)                                                                   \
    X(gauge, open, "", "websocket_subscribers", "WebSocket subscribers connected now")                \
    X(counter, connections, "crudcast_websocket_connections_total", "websocket_connections_total",    \
      "WebSocket subscribers ever connected")                                                         \
    X(counter, frames_sent, "crudcast_websocket_frames_sent_total", "websocket_frames_sent",          \
      "Event frames written to subscribers")                                                          \
    X(counter, slow_closes, "crudcast_websocket_slow_closes_total", "websocket_slow_closes",          \
      "Subscribers closed with 1013 because their queue overflowed")                                  \
    X(counter, write_timeouts, "crudcast_websocket_write_timeouts_total", "websocket_write_timeouts", \
      "Subscribers dropped because a write made no progress within ws-write-timeout")

struct WebSocketCounters {
    CRUDCAST_WEBSOCKET_STATS(CRUDCAST_STAT_MEMBER)

    // Subscribers by topic: the bus counts them (bus::InMemoryBus::subscriber_counts), these are their names.
    static constexpr stats::Info by_topic_info{"gauge",
                                               "crudcast_websocket_subscribers",
                                               "WebSocket subscribers, by topic",
                                               "websocket_subscribers_by_topic",
                                               {}};

    // Takes one of `max` subscriber places (ws-max-subscribers): false when all are taken. The
    // session created for it gives the place back when it ends (it owns one unit of `open`).
    bool reserve_subscriber(std::size_t max) {
        auto n = open.load(std::memory_order_relaxed);
        do {
            if (n >= static_cast<std::int64_t>(max)) return false;
        } while (!open.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
        return true;
    }

    // visit(const stats::Info&, value) for each counter of CRUDCAST_WEBSOCKET_STATS, in its order.
    template <class Visit>
    void for_each_stat(Visit&& visit) const {
        CRUDCAST_WEBSOCKET_STATS(CRUDCAST_STAT_VISIT)
    }
};

}  // namespace crudcast::gateway
