// admin_api.cpp: see admin_api.hpp. Strings go through the logger's JSON escaper; request paths
// and rids are client data, so the page renders them as text only.
#include "gateway/admin/admin_api.hpp"

#include <cstdio>

#include "common/json_text.hpp"
#include "common/log.hpp"

namespace crudcast::gateway {

namespace {

// Builds one JSON object, member by member.
class JsonObject {
public:
    explicit JsonObject(std::string& out) : out_(out) { out_ += '{'; }
    ~JsonObject() { out_ += '}'; }
    JsonObject(const JsonObject&) = delete;
    JsonObject& operator=(const JsonObject&) = delete;

    std::string& key(std::string_view name) {
        if (!first_) out_ += ',';
        first_ = false;
        out_ += '"';
        append_json_escaped(out_, name);
        out_ += "\":";
        return out_;
    }
    void string(std::string_view name, std::string_view value) {
        key(name) += '"';
        append_json_escaped(out_, value);
        out_ += '"';
    }
    void number(std::string_view name, std::uint64_t value) { key(name) += std::to_string(value); }
    void number(std::string_view name, std::int64_t value) { key(name) += std::to_string(value); }
    void number(std::string_view name, unsigned value) { key(name) += std::to_string(value); }
    void decimal(std::string_view name, double value) {  // 3 decimals: milliseconds to the microsecond
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3f", value);
        key(name) += buf;
    }

private:
    std::string& out_;
    bool first_ = true;
};

template <class Atomic>
auto load(const Atomic& a) {
    return a.load(std::memory_order_relaxed);
}

}  // namespace

std::string render_stats_json(const proxy::ProxyCounters& p, const WebSocketCounters& ws, const EventCounters& ev,
                              const bus::InMemoryBus& bus) {
    std::string out;
    out.reserve(1024);
    {
        JsonObject o(out);
        {
            static constexpr const char* classes[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
            std::uint64_t by_class[6] = {};
            for (const auto& method : p.responses)
                for (std::size_t c = 0; c < 6; ++c) by_class[c] += load(method[c]);
            std::uint64_t total = 0;
            for (auto n : by_class) total += n;
            o.key("requests");
            JsonObject r(out);
            r.number("total", total);
            for (std::size_t c = 0; c < 6; ++c) r.number(classes[c], by_class[c]);
        }
        o.number("in_flight", load(p.in_flight));
        o.number("client_connections", load(p.open_client_connections));
        o.number("upstream_connections", load(p.open_upstream_connections));
        o.number("upstream_pool_hits", load(p.pool_hits));
        o.number("upstream_pool_misses", load(p.pool_misses));
        o.number("bad_gateway", load(p.bad_gateway));
        o.number("gateway_timeout", load(p.gateway_timeout));
        o.number("request_body_bytes", load(p.bytes_in));
        o.number("response_body_bytes", load(p.bytes_out));
        {
            std::uint64_t total = 0;
            o.key("events_published_by");
            {
                JsonObject by(out);
                std::lock_guard lock(ev.mutex);
                for (const auto& [key, n] : ev.published_by) {
                    std::string label = key;  // "model\tMETHOD" -> "model/METHOD"
                    if (const auto tab = label.find('\t'); tab != std::string::npos) label[tab] = '/';
                    by.number(label, n);
                    total += n;
                }
            }
            o.number("events_published", total);
        }
        {
            std::uint64_t total = 0;
            o.key("events_skipped_by");
            {
                JsonObject by(out);
                for (const auto& row : no_event_reasons) {
                    const auto n = load(ev.skipped_by[index_of(row.reason)]);
                    by.number(row.name, n);
                    total += n;
                }
            }
            o.number("events_skipped", total);
        }
        o.number("websocket_subscribers", load(ws.open));
        o.key("websocket_subscribers_by_topic");
        {
            JsonObject by(out);
            for (const auto& [topic, n] : bus.subscriber_counts()) by.number(topic, static_cast<std::uint64_t>(n));
        }
        o.number("websocket_connections_total", load(ws.connections));
        o.number("websocket_frames_sent", load(ws.frames_sent));
        o.number("websocket_slow_closes", load(ws.slow_closes));
    }
    return out;
}

std::string render_requests_json(const std::vector<proxy::RequestRecord>& records) {
    std::string out;
    out.reserve(64 + records.size() * 200);
    {
        JsonObject o(out);
        o.key("requests") += '[';
        bool first = true;
        for (const auto& r : records) {
            if (!first) out += ',';
            first = false;
            JsonObject item(out);
            item.number("ts_us", r.time_us);
            item.string("rid", r.request_id);
            item.string("method", r.method);
            item.string("path", r.path);
            item.number("status", r.status);
            item.decimal("ms", r.duration_ms);
            item.string("event", r.event);
            item.string("error", r.error);
        }
        out += ']';
    }
    return out;
}

std::string render_info_json(const ServiceInfo& info) {
    std::string out;
    {
        JsonObject o(out);
        o.string("name", "crudcast");
        o.string("version", info.version);
        o.string("upstream", info.upstream);
        o.string("listen", info.listen);
        o.number("proxy_port", static_cast<unsigned>(info.proxy_port));
        o.string("ws_path", info.ws_path);
    }
    return out;
}

}  // namespace crudcast::gateway
