// event.hpp: one change event, as ../EVENTS.md defines it, and its single serialization into
// the exact wire field order {ts, model, method, id, many, payload, seq}.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace crudcast::bus {

struct Event {
    std::int64_t ts = 0;                // ms since the Unix epoch, set at publish time
    std::string model;                  // lower-case singular model name: the topic
    std::string method;                 // upper-case HTTP method
    std::string id_json = "null";       // the id as JSON text: 42, "abc" or null
    bool many = false;                  // payload is a JSON array
    std::string payload_json = "null";  // the payload as (compact or raw) JSON text, or null
    std::uint64_t seq = 0;              // assigned by the bus
};

// `{"ts":...,"model":"...","method":"...","id":...,"many":...,"payload":...,"seq":...}`.
// payload_json and id_json are inserted verbatim (they are valid JSON by construction).
std::string serialize(const Event& event);

// The same text without its last field and closing brace (`...,"payload":...`): what a broker
// stores, since the broker numbers the event. number_event(serialize_unnumbered(e), e.seq) ==
// serialize(e).
std::string serialize_unnumbered(const Event& event);
std::string number_event(std::string_view unnumbered, std::uint64_t seq);

// The same JSON text wrapped in one unmasked WebSocket text frame (RFC 6455 §5.2): the bytes
// every subscriber's socket receives, built once per event and shared.
std::string websocket_text_frame(std::string_view payload);

}  // namespace crudcast::bus
