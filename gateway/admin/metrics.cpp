// metrics.cpp: see metrics.hpp. Names follow Prometheus conventions (crudcast_ prefix, _total for
// counters, base units: seconds and bytes).
#include "gateway/admin/metrics.hpp"

#include <cstdio>

namespace crudcast::gateway {

namespace {

void header(std::string& out, const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

void sample(std::string& out, const std::string& name_and_labels, double value) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", value);
    out += name_and_labels;
    out += ' ';
    out += buf;
    out += '\n';
}

// A family with a single unlabelled sample.
void scalar(std::string& out, const char* name, const char* type, const char* help, double value) {
    header(out, name, type, help);
    sample(out, name, value);
}

// Label values escaped per the exposition format: backslash, quote, newline.
std::string label(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

template <class Atomic>
double load(const Atomic& a) {
    return static_cast<double>(a.load(std::memory_order_relaxed));
}

}  // namespace

std::string render_metrics(const proxy::ProxyCounters& p, const WebSocketCounters& ws, const EventCounters& ev,
                           const bus::InMemoryBus& bus) {
    std::string out;
    out.reserve(8192);
    static constexpr const char* classes[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    header(out, "crudcast_http_requests_total", "counter",
           "Requests answered, by method and status class (none: the client left before a status)");
    for (std::size_t m = 0; m < p.methods.size(); ++m) {
        for (std::size_t c = 0; c < 6; ++c) {
            sample(out,
                   "crudcast_http_requests_total{method=\"" + std::string(p.methods[m]) + "\",class=\"" + classes[c] +
                       "\"}",
                   load(p.responses[m][c]));
        }
    }
    scalar(out, "crudcast_http_requests_in_flight", "gauge", "Requests being served now", load(p.in_flight));
    header(out, "crudcast_upstream_response_seconds", "histogram",
           "Time from the request sent upstream to the response head received");
    double cumulative = 0;
    for (std::size_t i = 0; i < p.latency_bounds.size(); ++i) {
        cumulative += load(p.latency_le[i]);
        char le[32];
        std::snprintf(le, sizeof le, "%g", p.latency_bounds[i]);
        sample(out, std::string("crudcast_upstream_response_seconds_bucket{le=\"") + le + "\"}", cumulative);
    }
    sample(out, "crudcast_upstream_response_seconds_bucket{le=\"+Inf\"}", load(p.latency_count));
    sample(out, "crudcast_upstream_response_seconds_sum", load(p.latency_sum_us) / 1e6);
    sample(out, "crudcast_upstream_response_seconds_count", load(p.latency_count));
    scalar(out, "crudcast_client_connections", "gauge", "Open client connections (HTTP, not WebSocket)",
           load(p.open_client_connections));
    scalar(out, "crudcast_upstream_connections", "gauge", "Open connections to the upstream (busy and pooled)",
           load(p.open_upstream_connections));
    scalar(out, "crudcast_upstream_pool_hits_total", "counter", "Requests sent on a reused upstream connection",
           load(p.pool_hits));
    scalar(out, "crudcast_upstream_pool_misses_total", "counter", "Requests that needed a new upstream connection",
           load(p.pool_misses));
    scalar(out, "crudcast_bad_gateway_total", "counter", "502 answers: upstream unreachable, refusing or broken",
           load(p.bad_gateway));
    scalar(out, "crudcast_gateway_timeout_total", "counter", "504 answers: no upstream answer in upstream-timeout",
           load(p.gateway_timeout));
    scalar(out, "crudcast_request_body_bytes_total", "counter", "Request body bytes relayed to the upstream",
           load(p.bytes_in));
    scalar(out, "crudcast_response_body_bytes_total", "counter", "Response body bytes relayed to clients",
           load(p.bytes_out));

    header(out, "crudcast_events_published_total", "counter", "Events published, by model and method");
    {
        std::lock_guard lock(ev.mutex);
        for (const auto& [key, n] : ev.published_by) {
            const auto tab = key.find('\t');
            sample(out,
                   "crudcast_events_published_total{model=\"" + label(key.substr(0, tab)) + "\",method=\"" +
                       label(key.substr(tab + 1)) + "\"}",
                   static_cast<double>(n));
        }
    }
    header(out, "crudcast_events_skipped_total", "counter", "Responses that made no event, by reason");
    for (const auto& row : no_event_reasons) {
        sample(out, "crudcast_events_skipped_total{reason=\"" + std::string(row.name) + "\"}",
               load(ev.skipped_by[index_of(row.reason)]));
    }
    header(out, "crudcast_websocket_subscribers", "gauge", "WebSocket subscribers, by topic");
    for (const auto& [topic, n] : bus.subscriber_counts())
        sample(out, "crudcast_websocket_subscribers{topic=\"" + label(topic) + "\"}", static_cast<double>(n));
    scalar(out, "crudcast_websocket_connections_total", "counter", "WebSocket subscribers ever connected",
           load(ws.connections));
    scalar(out, "crudcast_websocket_frames_sent_total", "counter", "Event frames written to subscribers",
           load(ws.frames_sent));
    scalar(out, "crudcast_websocket_slow_closes_total", "counter",
           "Subscribers closed with 1013 because their queue overflowed", load(ws.slow_closes));
    return out;
}

}  // namespace crudcast::gateway
