// admin_api.cpp: see admin_api.hpp. Written with RapidJSON's Writer; strings are made valid UTF-8
// first (the Writer copies bytes as they are), because request paths, rids, models and topics are
// client data: the page renders them as text only, and must be able to parse them at all.
#include "gateway/admin/admin_api.hpp"

#include <cstdio>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/json_text.hpp"

namespace crudcast::gateway {

namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void key(JsonWriter& w, std::string_view name) {
    const auto text = valid_utf8(name);
    w.Key(text.data(), static_cast<rapidjson::SizeType>(text.size()), true);
}

void string(JsonWriter& w, std::string_view name, std::string_view value) {
    key(w, name);
    const auto text = valid_utf8(value);
    w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()), true);
}

void number(JsonWriter& w, std::string_view name, std::uint64_t value) {
    key(w, name);
    w.Uint64(value);
}

void number(JsonWriter& w, std::string_view name, std::int64_t value) {
    key(w, name);
    w.Int64(value);
}

// Always 3 decimals, rounded: milliseconds to the microsecond (the Writer's own doubles are the
// shortest text that reads back, and its SetMaxDecimalPlaces truncates).
void milliseconds(JsonWriter& w, std::string_view name, double value) {
    key(w, name);
    char buf[32];
    const int length = std::snprintf(buf, sizeof buf, "%.3f", value);
    w.RawValue(buf, static_cast<std::size_t>(length), rapidjson::kNumberType);
}

std::string text_of(const rapidjson::StringBuffer& buffer) { return std::string(buffer.GetString(), buffer.GetSize()); }

template <class Atomic>
auto load(const Atomic& a) {
    return a.load(std::memory_order_relaxed);
}

}  // namespace

std::string render_stats_json(const proxy::ProxyCounters& p, const WebSocketCounters& ws, const EventCounters& ev,
                              const bus::InMemoryBus& bus) {
    rapidjson::StringBuffer buffer(nullptr, 1024);
    JsonWriter w(buffer);
    w.StartObject();
    {
        static constexpr const char* classes[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
        std::uint64_t by_class[6] = {};
        for (const auto& method : p.responses)
            for (std::size_t c = 0; c < 6; ++c) by_class[c] += load(method[c]);
        std::uint64_t total = 0;
        for (auto n : by_class) total += n;
        key(w, "requests");
        w.StartObject();
        number(w, "total", total);
        for (std::size_t c = 0; c < 6; ++c) number(w, classes[c], by_class[c]);
        w.EndObject();
    }
    number(w, "in_flight", load(p.in_flight));
    number(w, "client_connections", load(p.open_client_connections));
    number(w, "upstream_connections", load(p.open_upstream_connections));
    number(w, "upstream_pool_hits", load(p.pool_hits));
    number(w, "upstream_pool_misses", load(p.pool_misses));
    number(w, "bad_gateway", load(p.bad_gateway));
    number(w, "gateway_timeout", load(p.gateway_timeout));
    number(w, "request_body_bytes", load(p.bytes_in));
    number(w, "response_body_bytes", load(p.bytes_out));
    {
        std::uint64_t total = 0;
        key(w, "events_published_by");
        w.StartObject();
        {
            std::lock_guard lock(ev.mutex);
            for (const auto& [model_method, n] : ev.published_by) {
                std::string label = model_method;  // "model\tMETHOD" -> "model/METHOD"
                if (const auto tab = label.find('\t'); tab != std::string::npos) label[tab] = '/';
                number(w, label, n);
                total += n;
            }
        }
        w.EndObject();
        number(w, "events_published", total);
    }
    {
        std::uint64_t total = 0;
        key(w, "events_skipped_by");
        w.StartObject();
        for (const auto& row : no_event_reasons) {
            const auto n = load(ev.skipped_by[index_of(row.reason)]);
            number(w, row.name, n);
            total += n;
        }
        w.EndObject();
        number(w, "events_skipped", total);
    }
    number(w, "websocket_subscribers", load(ws.open));
    key(w, "websocket_subscribers_by_topic");
    w.StartObject();
    for (const auto& [topic, n] : bus.subscriber_counts()) number(w, topic, static_cast<std::uint64_t>(n));
    w.EndObject();
    number(w, "websocket_connections_total", load(ws.connections));
    number(w, "websocket_frames_sent", load(ws.frames_sent));
    number(w, "websocket_slow_closes", load(ws.slow_closes));
    w.EndObject();
    return text_of(buffer);
}

std::string render_requests_json(const std::vector<proxy::RequestRecord>& records) {
    rapidjson::StringBuffer buffer(nullptr, 64 + records.size() * 200);
    JsonWriter w(buffer);
    w.StartObject();
    w.Key("requests");
    w.StartArray();
    for (const auto& r : records) {
        w.StartObject();
        number(w, "ts_us", r.time_us);
        string(w, "rid", r.request_id);
        string(w, "method", r.method);
        string(w, "path", r.path);
        number(w, "status", std::uint64_t{r.status});
        milliseconds(w, "ms", r.duration_ms);
        string(w, "event", r.event);
        string(w, "error", r.error);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return text_of(buffer);
}

std::string render_info_json(const ServiceInfo& info) {
    rapidjson::StringBuffer buffer;
    JsonWriter w(buffer);
    w.StartObject();
    string(w, "name", "crudcast");
    string(w, "version", info.version);
    string(w, "upstream", info.upstream);
    string(w, "listen", info.listen);
    number(w, "proxy_port", std::uint64_t{info.proxy_port});
    string(w, "ws_path", info.ws_path);
    w.EndObject();
    return text_of(buffer);
}

}  // namespace crudcast::gateway
