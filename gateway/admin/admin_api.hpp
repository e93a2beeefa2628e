// admin_api.hpp: the JSON the admin live page reads (GET /api/stats, /api/requests, /api/info).
// /api/stats is the same counters as /metrics, as one object a page can read without parsing the
// Prometheus text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bus/in_memory_bus.hpp"
#include "gateway/events/event_counters.hpp"
#include "gateway/ws/ws_counters.hpp"
#include "proxy/counters.hpp"
#include "proxy/recent_requests.hpp"

namespace crudcast::gateway {

// What the page needs to build the events WebSocket URL and to say what it is looking at.
struct ServiceInfo {
    std::string version;
    std::string upstream;          // as configured, e.g. "http://127.0.0.1:3000"
    std::string listen;            // the proxy listen host as configured ("0.0.0.0", "::", "127.0.0.1")
    std::uint16_t proxy_port = 0;  // bound
    std::string ws_path;
};

std::string render_stats_json(const proxy::ProxyCounters& proxy, const WebSocketCounters& ws,
                              const EventCounters& events, const bus::InMemoryBus& bus,
                              const bus::BusStatus& bus_status);
// Records as given (the caller merges and orders them): {"requests":[{...}, ...]}.
std::string render_requests_json(const std::vector<proxy::RequestRecord>& records);
std::string render_info_json(const ServiceInfo& info);

}  // namespace crudcast::gateway
