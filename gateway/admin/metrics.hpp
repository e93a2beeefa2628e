// metrics.hpp: crudcast's counters rendered in the Prometheus text exposition format (0.0.4).
#pragma once

#include <string>

#include "bus/in_memory_bus.hpp"
#include "gateway/events/event_counters.hpp"
#include "gateway/ws/ws_counters.hpp"
#include "proxy/counters.hpp"

namespace crudcast::gateway {

std::string render_metrics(const proxy::ProxyCounters& proxy, const WebSocketCounters& ws, const EventCounters& events,
                           const bus::InMemoryBus& bus, const bus::BusStatus& bus_status);

}  // namespace crudcast::gateway
