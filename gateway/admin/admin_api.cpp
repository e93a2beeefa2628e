// admin_api.cpp: see admin_api.hpp. Written with RapidJSON's Writer; strings are made valid UTF-8
// first (the Writer copies bytes as they are), because request paths, rids, models and topics are
// client data: the page renders them as text only, and must be able to parse them at all.
#include "gateway/admin/admin_api.hpp"

#include <array>
#include <cstdio>
#include <mutex>

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

// A key and number for each declared counter that has an /api/stats key.
template <class Counters>
void scalars(JsonWriter& w, const Counters& counters) {
    counters.for_each_stat([&](const stats::Info& info, auto value) {
        if (!info.json.empty()) number(w, info.json, value);
    });
}

// By status class only (what the page shows), with their total; /metrics has them by method too.
void requests(JsonWriter& w, const proxy::ProxyCounters& p) {
    std::array<std::uint64_t, p.status_classes.size()> by_class{};
    for (const auto& method : p.responses)
        for (std::size_t c = 0; c < by_class.size(); ++c) by_class[c] += stats::load(method[c]);
    std::uint64_t total = 0;
    for (auto n : by_class) total += n;
    key(w, p.responses_info.json);
    w.StartObject();
    number(w, "total", total);
    for (std::size_t c = 0; c < by_class.size(); ++c) number(w, p.status_classes[c], by_class[c]);
    w.EndObject();
}

void events(JsonWriter& w, const EventCounters& ev) {
    std::uint64_t published = 0;
    key(w, ev.published_info.json);
    w.StartObject();
    {
        std::lock_guard lock(ev.mutex);
        for (const auto& [model_method, n] : ev.published_by) {
            std::string label = model_method;  // "model\tMETHOD" -> "model/METHOD"
            if (const auto tab = label.find('\t'); tab != std::string::npos) label[tab] = '/';
            number(w, label, n);
            published += n;
        }
    }
    w.EndObject();
    number(w, ev.published_info.json_total, published);
    std::uint64_t skipped = 0;
    key(w, ev.skipped_info.json);
    w.StartObject();
    for (const auto& row : no_event_reasons) {
        const auto n = stats::load(ev.skipped_by[index_of(row.reason)]);
        number(w, row.name, n);
        skipped += n;
    }
    w.EndObject();
    number(w, ev.skipped_info.json_total, skipped);
}

void subscribers(JsonWriter& w, const bus::InMemoryBus& bus) {
    key(w, WebSocketCounters::by_topic_info.json);
    w.StartObject();
    // Bounded as in /metrics: the most subscribed topics by name, the others under stats::other_label.
    for (const auto& [topic, n] : bus.top_subscriber_counts(stats::max_label_values, stats::other_label))
        number(w, topic, static_cast<std::uint64_t>(n));
    w.EndObject();
}

template <std::size_t N>
void by_label(JsonWriter& w, const stats::Info& info, const std::array<std::string_view, N>& names,
              const std::array<std::atomic<std::uint64_t>, N>& values) {
    key(w, info.json);
    w.StartObject();
    for (std::size_t i = 0; i < N; ++i) number(w, names[i], stats::load(values[i]));
    w.EndObject();
}

void history(JsonWriter& w, const bus::InMemoryBus& bus) {
    const auto [events, bytes] = bus.history_usage();
    number(w, WebSocketCounters::history_events_info.json, static_cast<std::uint64_t>(events));
    number(w, WebSocketCounters::history_bytes_info.json, static_cast<std::uint64_t>(bytes));
    number(w, WebSocketCounters::position_info.json, bus.position().value_or(0));
}

void bus_object(JsonWriter& w, const bus::BusStatus& b) {
    key(w, bus::BusStatus::state_info.json);
    w.StartObject();
    string(w, "kind", b.kind);
    string(w, "state", bus::bus_state_name(b.state));
    number(w, "lag", b.lag);
    number(w, "lost", b.lost);
    number(w, "late", b.late);
    number(w, "reconnects", b.reconnects);
    number(w, "invalid", b.invalid);
    w.EndObject();
}

}  // namespace

std::string render_stats_json(const proxy::ProxyCounters& p, const WebSocketCounters& ws, const EventCounters& ev,
                              const bus::InMemoryBus& bus, const bus::BusStatus& bus_status) {
    rapidjson::StringBuffer buffer(nullptr, 1024);
    JsonWriter w(buffer);
    w.StartObject();
    requests(w, p);
    scalars(w, p);
    events(w, ev);
    scalars(w, ws);
    by_label(w, WebSocketCounters::denied_info, ws_deny_reasons, ws.denied_by);
    by_label(w, WebSocketCounters::gaps_info, gap_reasons, ws.gaps);
    history(w, bus);
    subscribers(w, bus);
    bus_object(w, bus_status);
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
