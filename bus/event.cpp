// event.cpp: an Event's one JSON form (field order fixed by EVENTS.md) and its WebSocket frame.
#include "bus/event.hpp"

#include <string>

#include "common/json_text.hpp"
#include "common/ws_frame.hpp"

namespace crudcast::bus {

std::string serialize(const Event& event) {
    auto out = serialize_unnumbered(event);
    out += ",\"seq\":";
    out += std::to_string(event.seq);
    out += '}';
    return out;
}

std::string number_event(std::string_view unnumbered, std::uint64_t seq) {
    std::string out;
    out.reserve(unnumbered.size() + 32);
    out += unnumbered;
    out += ",\"seq\":";
    out += std::to_string(seq);
    out += '}';
    return out;
}

std::string serialize_unnumbered(const Event& event) {
    std::string out;
    // Fixed keys and punctuation are ~70 bytes; one reservation covers nearly every event.
    out.reserve(96 + event.model.size() + event.method.size() + event.id_json.size() + event.payload_json.size());
    out += "{\"ts\":";
    out += std::to_string(event.ts);
    out += ",\"model\":";
    append_json_string(out, event.model);
    out += ",\"method\":";
    append_json_string(out, event.method);
    out += ",\"id\":";
    out += event.id_json;
    out += ",\"many\":";
    out += event.many ? "true" : "false";
    out += ",\"payload\":";
    out += event.payload_json;
    return out;
}

std::string websocket_text_frame(std::string_view payload) {
    std::string frame;
    frame.reserve(payload.size() + 10);
    append_ws_frame_header(frame, 0x1, payload.size());  // opcode 1: text
    frame.append(payload);
    return frame;
}

}  // namespace crudcast::bus
