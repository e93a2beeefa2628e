// metrics.cpp: see metrics.hpp. The names come from where each counter is declared (common/stats.hpp);
// they follow Prometheus conventions (crudcast_ prefix, _total for counters, base units: seconds and bytes).
#include "gateway/admin/metrics.hpp"

#include <cstdio>
#include <map>
#include <string>

#include "common/json_text.hpp"

namespace crudcast::gateway {

namespace {

void header(std::string& out, const stats::Info& info) {
    out += "# HELP ";
    out += info.metric;
    out += ' ';
    out += info.help;
    out += "\n# TYPE ";
    out += info.metric;
    out += ' ';
    out += info.type;
    out += '\n';
}

void sample(std::string& out, std::string_view name_and_labels, double value) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", value);
    out += name_and_labels;
    out += ' ';
    out += buf;
    out += '\n';
}

// A label value as the exposition format wants it: UTF-8 (a byte that does not start well-formed
// UTF-8 becomes U+FFFD), with backslash, quote and newline escaped.
std::string label(std::string_view v) {
    std::string out;
    for (char c : valid_utf8(v)) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

// Samples keyed by their rendered name and labels: values that render alike (two byte strings
// that differ only in invalid UTF-8) are added up, so a family never repeats a series.
using Series = std::map<std::string, double>;

void samples(std::string& out, const Series& series) {
    for (const auto& [name_and_labels, value] : series) sample(out, name_and_labels, value);
}

// One family with a single unlabelled sample for each declared counter that has a Prometheus name.
template <class Counters>
void scalars(std::string& out, const Counters& counters) {
    counters.for_each_stat([&](const stats::Info& info, auto value) {
        if (info.metric.empty()) return;
        header(out, info);
        sample(out, info.metric, static_cast<double>(value));
    });
}

void responses(std::string& out, const proxy::ProxyCounters& p) {
    const auto& info = p.responses_info;
    header(out, info);
    for (std::size_t m = 0; m < p.methods.size(); ++m) {
        for (std::size_t c = 0; c < p.status_classes.size(); ++c) {
            sample(out,
                   std::string(info.metric) + "{method=\"" + std::string(p.methods[m]) + "\",class=\"" +
                       std::string(p.status_classes[c]) + "\"}",
                   static_cast<double>(stats::load(p.responses[m][c])));
        }
    }
}

void latency(std::string& out, const proxy::ProxyCounters& p) {
    const std::string name(p.latency_info.metric);
    header(out, p.latency_info);
    double cumulative = 0;
    for (std::size_t i = 0; i < p.latency_bounds.size(); ++i) {
        cumulative += static_cast<double>(stats::load(p.latency_le[i]));
        char le[32];
        std::snprintf(le, sizeof le, "%g", p.latency_bounds[i]);
        sample(out, name + "_bucket{le=\"" + le + "\"}", cumulative);
    }
    const auto count = static_cast<double>(stats::load(p.latency_count));
    sample(out, name + "_bucket{le=\"+Inf\"}", count);
    sample(out, name + "_sum", static_cast<double>(stats::load(p.latency_sum_us)) / 1e6);
    sample(out, name + "_count", count);
}

void events(std::string& out, const EventCounters& ev) {
    const std::string published(ev.published_info.metric);
    header(out, ev.published_info);
    Series series;
    {
        // Models are already folded at counting time (EventCounters::count_published).
        std::lock_guard lock(ev.mutex);
        for (const auto& [key, n] : ev.published_by) {
            const auto tab = key.find('\t');
            series[published + "{model=\"" + label(key.substr(0, tab)) + "\",method=\"" + label(key.substr(tab + 1)) +
                   "\"}"] += static_cast<double>(n);
        }
    }
    samples(out, series);
    header(out, ev.skipped_info);
    for (const auto& row : no_event_reasons) {
        sample(out, std::string(ev.skipped_info.metric) + "{reason=\"" + std::string(row.name) + "\"}",
               static_cast<double>(stats::load(ev.skipped_by[index_of(row.reason)])));
    }
}

// Subscribers of the stats::max_label_values most subscribed topics by name, the others' summed
// under stats::other_label (a gauge may move between series; the total stays right).
void subscribers(std::string& out, const bus::InMemoryBus& bus) {
    const auto& info = WebSocketCounters::by_topic_info;
    header(out, info);
    Series series;
    for (const auto& [topic, n] : bus.top_subscriber_counts(stats::max_label_values, stats::other_label))
        series[std::string(info.metric) + "{topic=\"" + label(topic) + "\"}"] += static_cast<double>(n);
    samples(out, series);
}

template <std::size_t N>
void by_reason(std::string& out, const stats::Info& info, const std::array<std::string_view, N>& reasons,
               const std::array<std::atomic<std::uint64_t>, N>& values) {
    header(out, info);
    for (std::size_t i = 0; i < N; ++i) {
        sample(out, std::string(info.metric) + "{reason=\"" + std::string(reasons[i]) + "\"}",
               static_cast<double>(stats::load(values[i])));
    }
}

void history(std::string& out, const bus::InMemoryBus& bus) {
    const auto [events, bytes] = bus.history_usage();
    const auto& events_info = WebSocketCounters::history_events_info;
    const auto& bytes_info = WebSocketCounters::history_bytes_info;
    const auto& position_info = WebSocketCounters::position_info;
    header(out, events_info);
    sample(out, events_info.metric, static_cast<double>(events));
    header(out, bytes_info);
    sample(out, bytes_info.metric, static_cast<double>(bytes));
    header(out, position_info);
    sample(out, position_info.metric, static_cast<double>(bus.position().value_or(0)));
}

// The bus: which state it is in (one series per state, 1 for the current), and what it lost.
void bus_metrics(std::string& out, const bus::BusStatus& b) {
    using S = bus::BusStatus;
    header(out, S::state_info);
    for (const auto st : {bus::BusState::connecting, bus::BusState::up, bus::BusState::down}) {
        sample(out,
               std::string(S::state_info.metric) + "{bus=\"" + b.kind + "\",state=\"" +
                   std::string(bus::bus_state_name(st)) + "\"}",
               b.state == st ? 1 : 0);
    }
    const std::pair<const stats::Info&, std::uint64_t> rows[] = {{S::lag_info, b.lag},
                                                                 {S::lost_info, b.lost},
                                                                 {S::late_info, b.late},
                                                                 {S::reconnects_info, b.reconnects},
                                                                 {S::invalid_info, b.invalid}};
    for (const auto& [info, value] : rows) {
        header(out, info);
        sample(out, info.metric, static_cast<double>(value));
    }
}

}  // namespace

std::string render_metrics(const proxy::ProxyCounters& p, const WebSocketCounters& ws, const EventCounters& ev,
                           const bus::InMemoryBus& bus, const bus::BusStatus& bus_status) {
    std::string out;
    out.reserve(8192);
    responses(out, p);
    scalars(out, p);
    latency(out, p);
    events(out, ev);
    subscribers(out, bus);
    scalars(out, ws);
    by_reason(out, WebSocketCounters::denied_info, ws_deny_reasons, ws.denied_by);
    by_reason(out, WebSocketCounters::gaps_info, gap_reasons, ws.gaps);
    history(out, bus);
    bus_metrics(out, bus_status);
    return out;
}

}  // namespace crudcast::gateway
