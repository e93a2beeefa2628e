// frame_codec.cpp: see frame_codec.hpp. Frame layout per RFC 6455 §5.2.
#include "gateway/ws/frame_codec.hpp"

namespace crudcast::gateway {

namespace {

std::uint8_t byte_at(std::span<const char> input, std::size_t i) { return static_cast<std::uint8_t>(input[i]); }

}  // namespace

std::variant<NeedMore, FrameHeader> parse_header(std::span<const char> input) {
    if (input.size() < 2) return NeedMore{2};
    FrameHeader h;
    h.fin = (byte_at(input, 0) & 0x80) != 0;
    h.reserved = (byte_at(input, 0) >> 4) & 0x07;
    h.opcode = static_cast<Opcode>(byte_at(input, 0) & 0x0f);
    h.masked = (byte_at(input, 1) & 0x80) != 0;
    const std::uint8_t len7 = byte_at(input, 1) & 0x7f;
    const std::size_t length_bytes = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    h.size = 2 + length_bytes + (h.masked ? 4 : 0);
    if (input.size() < h.size) return NeedMore{h.size};
    h.payload_size = length_bytes == 0 ? len7 : 0;
    for (std::size_t i = 0; i < length_bytes; ++i) h.payload_size = (h.payload_size << 8) | byte_at(input, 2 + i);
    if (h.masked) {
        for (std::size_t i = 0; i < 4; ++i) h.mask[i] = byte_at(input, 2 + length_bytes + i);
    }
    return h;
}

std::optional<ProtocolError> check_client_header(const FrameHeader& header, std::size_t max_payload) {
    // Clients must mask every frame (§5.1). The length limits protect the read buffer; a control
    // frame over 125 bytes has always been answered with 1009 here, like any frame too large.
    if (!header.masked) return ProtocolError{1002, "client frames must be masked"};
    if (header.payload_size > max_payload || (is_control(header.opcode) && header.payload_size > max_control_payload))
        return ProtocolError{1009, "frame too large"};
    return std::nullopt;
}

Decoded decode_client_frame(std::span<char> input, std::size_t max_payload) {
    const auto parsed = parse_header(input);
    if (const auto* need = std::get_if<NeedMore>(&parsed)) return *need;
    const auto& header = std::get<FrameHeader>(parsed);
    if (auto error = check_client_header(header, max_payload)) return *error;
    const std::size_t total = header.size + static_cast<std::size_t>(header.payload_size);
    if (input.size() < total) return NeedMore{total};
    const auto payload = input.subspan(header.size, static_cast<std::size_t>(header.payload_size));
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] ^= static_cast<char>(header.mask[i % 4]);
    return Frame{header.opcode, header.fin, payload, total};
}

ClosePayload parse_close_payload(std::span<const char> payload) {
    if (payload.size() < 2) return {};
    const auto code = static_cast<std::uint16_t>((byte_at(payload, 0) << 8) | byte_at(payload, 1));
    return {code, std::string_view(payload.data() + 2, payload.size() - 2)};
}

void append_frame_header(std::string& out, Opcode opcode, std::uint64_t payload_size) {
    out += static_cast<char>(0x80 | static_cast<std::uint8_t>(opcode));  // FIN
    int length_bytes = 0;
    if (payload_size < 126) {
        out += static_cast<char>(payload_size);
    } else if (payload_size <= 0xffff) {
        out += static_cast<char>(126);
        length_bytes = 2;
    } else {
        out += static_cast<char>(127);
        length_bytes = 8;
    }
    for (int shift = (length_bytes - 1) * 8; shift >= 0; shift -= 8)
        out += static_cast<char>((payload_size >> shift) & 0xff);
}

std::string text_frame_header(std::uint64_t payload_size) {
    std::string out;
    append_frame_header(out, Opcode::text, payload_size);
    return out;
}

std::string control_frame(Opcode opcode, std::string_view payload) {
    payload = payload.substr(0, max_control_payload);
    std::string frame;
    frame.reserve(2 + payload.size());
    append_frame_header(frame, opcode, payload.size());
    frame.append(payload);
    return frame;
}

std::string close_frame(std::uint16_t code, std::string_view reason) {
    std::string payload;
    payload += static_cast<char>(code >> 8);
    payload += static_cast<char>(code & 0xff);
    payload.append(reason.substr(0, max_close_reason));
    return control_frame(Opcode::close, payload);
}

}  // namespace crudcast::gateway
