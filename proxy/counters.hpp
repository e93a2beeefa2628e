// counters.hpp: the proxy's counters, shared by all threads (relaxed atomics: they feed logs and
// /metrics, never decisions). Rendered as Prometheus text by gateway/admin/metrics.cpp.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace crudcast::proxy {

struct ProxyCounters {
    static constexpr std::array<std::string_view, 8> methods{"GET", "HEAD", "POST", "PUT",
                                                             "PATCH", "DELETE", "OPTIONS", "other"};
    // Upper bounds in seconds of the upstream latency histogram.
    static constexpr std::array<double, 11> latency_bounds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                           0.5,   1,    2.5,   5,    10};

    std::atomic<std::int64_t> in_flight{0};
    std::atomic<std::int64_t> open_client_connections{0};
    std::atomic<std::int64_t> open_upstream_connections{0};
    std::atomic<std::uint64_t> bad_gateway{0};
    std::atomic<std::uint64_t> gateway_timeout{0};
    std::atomic<std::uint64_t> pool_hits{0};
    std::atomic<std::uint64_t> pool_misses{0};
    std::atomic<std::uint64_t> bytes_in{0};   // request body bytes relayed to the upstream
    std::atomic<std::uint64_t> bytes_out{0};  // response body bytes relayed to clients
    // [method][status class]: class 0 = no status (client gone), 1..5 = 1xx..5xx.
    std::array<std::array<std::atomic<std::uint64_t>, 6>, methods.size()> responses{};
    std::array<std::atomic<std::uint64_t>, latency_bounds.size()> latency_le{};  // non-cumulative
    std::atomic<std::uint64_t> latency_count{0};
    std::atomic<std::uint64_t> latency_sum_us{0};

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
