// ws_counters.hpp: the WebSocket side's counters, shared by every worker thread and read by the
// admin endpoints (metrics, stats).
#pragma once

#include <atomic>
#include <cstdint>

namespace crudcast::gateway {

struct WebSocketCounters {
    std::atomic<std::uint64_t> connections{0};
    std::atomic<std::int64_t> open{0};
    std::atomic<std::uint64_t> frames_sent{0};
    std::atomic<std::uint64_t> slow_closes{0};
};

}  // namespace crudcast::gateway
