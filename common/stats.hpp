// stats.hpp: how a group of counters is declared once (Envoy's X-macro stats). A group lists its
// counters in one macro of rows X(type, member, metric, json, help); CRUDCAST_STAT_MEMBER makes each row
// a member and CRUDCAST_STAT_VISIT hands each row's names and value to an exporter, so /metrics and
// /api/stats can neither miss a counter nor spell it differently. Relaxed atomics: counters feed logs
// and the admin listener, never decisions.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace crudcast::stats {

using counter = std::atomic<std::uint64_t>;  // only goes up: a Prometheus counter
using gauge = std::atomic<std::int64_t>;     // goes up and down: a Prometheus gauge

// The names of one counter, or of one labelled family (whose exporters write the labels themselves).
struct Info {
    std::string_view type;        // Prometheus TYPE: "counter", "gauge" or "histogram"
    std::string_view metric;      // Prometheus family name; "" when it is not in /metrics
    std::string_view help;        // Prometheus HELP
    std::string_view json;        // /api/stats key; "" when it is not in /api/stats
    std::string_view json_total;  // a labelled family's sum in /api/stats, "" when it has none
};

// Labels whose values come from outside (models from request paths, topics from subscribers) take at
// most this many distinct values in a family; the rest are counted under `other_label`, so a client
// requesting 10,000 different paths cannot make 10,000 series (or grow the map behind them).
inline constexpr std::size_t max_label_values = 100;
inline constexpr std::string_view other_label = "_other";

template <class Atomic>
auto load(const Atomic& value) {
    return value.load(std::memory_order_relaxed);
}

}  // namespace crudcast::stats

// A row as a member: `stats::counter bytes_in{0};`.
#define CRUDCAST_STAT_MEMBER(type, member, metric, json, help) ::crudcast::stats::type member{0};
// A row as a call `visit(info, value)`, in a member function whose visitor parameter is named `visit`.
#define CRUDCAST_STAT_VISIT(type, member, metric, json, help) \
    visit(::crudcast::stats::Info{#type, metric, help, json, {}}, ::crudcast::stats::load(member));
