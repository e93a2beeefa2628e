// counters.hpp: the proxy's counters, shared by all threads (relaxed atomics: they feed logs and
// /metrics, never decisions), each declared once with its names in /metrics and /api/stats
// (common/stats.hpp). Rendered by gateway/admin/metrics.cpp and gateway/admin/admin_api.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "common/stats.hpp"
#include "proxy/exchange_failure.hpp"

namespace crudcast::proxy {

// X(type, member, Prometheus name, /api/stats key, help), in the order both exporters write them.
#define CRUDCAST_PROXY_STATS(X)                                                                       \
    X(gauge, in_flight, "crudcast_http_requests_in_flight", "in_flight", "Requests being served now") \
    X(gauge, open_client_connections, "crudcast_client_connections", "client_connections",            \
      "Open client connections (HTTP, not WebSocket)")                                                \
    X(gauge, open_upstream_connections, "crudcast_upstream_connections", "upstream_connections",      \
      "Open connections to the upstream (busy and pooled)")                                           \
    X(counter, pool_hits, "crudcast_upstream_pool_hits_total", "upstream_pool_hits",                  \
      "Requests sent on a reused upstream connection")                                                \
    X(counter, pool_misses, "crudcast_upstream_pool_misses_total", "upstream_pool_misses",            \
      "Requests that needed a new upstream connection")                                               \
    X(counter, bad_gateway, "crudcast_bad_gateway_total", "bad_gateway",                              \
      "502 answers: upstream unreachable, refusing or broken")                                        \
    X(counter, gateway_timeout, "crudcast_gateway_timeout_total", "gateway_timeout",                  \
      "504 answers: no upstream answer in upstream-timeout")                                          \
    X(counter, client_closed, "crudcast_client_closed_total", "client_closed",                        \
      "Requests cancelled upstream because their client left before the response head")               \
    X(counter, bytes_in, "crudcast_request_body_bytes_total", "request_body_bytes",                   \
      "Request body bytes relayed to the upstream")                                                   \
    X(counter, bytes_out, "crudcast_response_body_bytes_total", "response_body_bytes",                \
      "Response body bytes relayed to clients")

struct ProxyCounters {
    static constexpr std::array<std::string_view, 8> methods{"GET",   "HEAD",   "POST",    "PUT",
                                                             "PATCH", "DELETE", "OPTIONS", "other"};
    // Status classes: 0 = no status (client gone), 1..5 = 1xx..5xx.
    static constexpr std::array<std::string_view, 6> status_classes{"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    // Upper bounds in seconds of the upstream latency histogram.
    static constexpr std::array<double, 11> latency_bounds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

    CRUDCAST_PROXY_STATS(CRUDCAST_STAT_MEMBER)

    // The labelled families: their exporters write the labels (responses: method and class; /api/stats
    // has them by class only, with their total).
    static constexpr stats::Info responses_info{
        "counter",
        "crudcast_http_requests_total",
        "Requests answered, by method and status class (none: the client left before a status)",
        "requests",
        {}};
    static constexpr stats::Info latency_info{"histogram",
                                              "crudcast_upstream_response_seconds",
                                              "Time from the request sent upstream to the response head received",
                                              {},
                                              {}};
    // Not a counter: the once-a-second limit on failure warn lines, shared by all threads like the counters.
    FailureWarnings failure_warnings;

    // [method][status class]
    std::array<std::array<stats::counter, status_classes.size()>, methods.size()> responses{};
    std::array<stats::counter, latency_bounds.size()> latency_le{};  // non-cumulative
    stats::counter latency_count{0};
    stats::counter latency_sum_us{0};

    // visit(const stats::Info&, value) for each counter of CRUDCAST_PROXY_STATS, in its order.
    template <class Visit>
    void for_each_stat(Visit&& visit) const {
        CRUDCAST_PROXY_STATS(CRUDCAST_STAT_VISIT)
    }

    void count_response(std::string_view method, unsigned status) {
        std::size_t m = methods.size() - 1;
        for (std::size_t i = 0; i + 1 < methods.size(); ++i) {
            if (methods[i] == method) {
                m = i;
                break;
            }
        }
        const unsigned cls = status >= 100 && status < 600 ? status / 100 : 0;
        responses[m][cls].fetch_add(1, std::memory_order_relaxed);
    }

    void observe_upstream(double ms) {
        const double s = ms / 1000.0;
        for (std::size_t i = 0; i < latency_bounds.size(); ++i) {
            if (s <= latency_bounds[i]) {
                latency_le[i].fetch_add(1, std::memory_order_relaxed);
                break;
            }
        }
        latency_count.fetch_add(1, std::memory_order_relaxed);
        latency_sum_us.fetch_add(static_cast<std::uint64_t>(ms * 1000.0), std::memory_order_relaxed);
    }
};

}  // namespace crudcast::proxy
