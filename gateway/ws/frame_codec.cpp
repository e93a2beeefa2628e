// frame_codec.cpp: see frame_codec.hpp. Frame layout per RFC 6455 §5.2.
#include "gateway/ws/frame_codec.hpp"

#include <algorithm>

#include "common/json_text.hpp"
#include "common/ws_frame.hpp"

namespace crudcast::gateway {

namespace {

std::uint8_t byte_at(std::span<const char> input, std::size_t i) { return static_cast<std::uint8_t>(input[i]); }

bool is_known(Opcode opcode) {
    switch (opcode) {
        case Opcode::continuation:
        case Opcode::text:
        case Opcode::binary:
        case Opcode::close:
        case Opcode::ping:
        case Opcode::pong: return true;
    }
    return false;
}

// Whether `prefix` (shorter than a whole sequence) can still become well-formed UTF-8: the
// completions of a prefix are a range of code points, so it can when the smallest (continuation
// bytes 0x80) or the largest (0xbf) completion of some length is a sequence of that length.
bool utf8_prefix_may_complete(std::string_view prefix) {
    for (std::size_t length = prefix.size() + 1; length <= 4; ++length) {
        for (const char fill : {'\x80', '\xbf'}) {
            std::string candidate(prefix);
            candidate.resize(length, fill);
            if (crudcast::utf8_sequence_length(candidate, 0) == length) return true;
        }
    }
    return false;
}

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
    // Clients must mask every frame (§5.1); no extension is negotiated, so no reserved bit may be
    // set (§5.2); control frames are whole and short (§5.5). The length limit protects the read buffer.
    if (!header.masked) return ProtocolError{1002, "client frames must be masked"};
    if (header.reserved != 0) return ProtocolError{1002, "reserved bits set without an extension"};
    if (!is_known(header.opcode)) return ProtocolError{1002, "reserved opcode"};
    if (is_control(header.opcode) && !header.fin) return ProtocolError{1002, "fragmented control frame"};
    if (is_control(header.opcode) && header.payload_size > max_control_payload)
        return ProtocolError{1002, "control frame over 125 bytes"};
    if (header.payload_size > max_payload) return ProtocolError{1009, "frame too large"};
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

bool close_code_may_be_sent(std::uint16_t code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

std::optional<ProtocolError> check_close_payload(std::span<const char> payload) {
    if (payload.size() == 1) return ProtocolError{1002, "close frame of one byte"};
    const auto close = parse_close_payload(payload);
    if (close.code && !close_code_may_be_sent(*close.code)) return ProtocolError{1002, "invalid close code"};
    if (!Utf8Stream{}.feed(close.reason, true)) return ProtocolError{1007, "close reason is not UTF-8"};
    return std::nullopt;
}

bool Utf8Stream::feed(std::string_view piece, bool last) {
    std::size_t i = 0;
    if (pending_size_ > 0) {
        // Complete the sequence the last piece ended inside, from the first bytes of this one.
        std::array<char, 8> joined{};
        std::copy_n(pending_.begin(), pending_size_, joined.begin());
        const std::size_t taken = std::min(piece.size(), 4 - pending_size_);
        std::copy_n(piece.begin(), taken, joined.begin() + pending_size_);
        const std::string_view start(joined.data(), pending_size_ + taken);
        const std::size_t length = utf8_sequence_length(start, 0);
        if (length == 0) {
            if (start.size() >= 4 || !utf8_prefix_may_complete(start)) return false;
            std::copy_n(start.begin(), start.size(), pending_.begin());  // still cut: a short piece
            pending_size_ = start.size();
            return !last;
        }
        i = length - pending_size_;
        pending_size_ = 0;
    }
    while (i < piece.size()) {
        if (static_cast<unsigned char>(piece[i]) < 0x80) {
            ++i;
            continue;
        }
        const std::size_t length = utf8_sequence_length(piece, i);
        if (length == 0) {
            const auto rest = piece.substr(i);
            if (rest.size() >= 4 || !utf8_prefix_may_complete(rest)) return false;
            std::copy_n(rest.begin(), rest.size(), pending_.begin());
            pending_size_ = rest.size();
            return !last;
        }
        i += length;
    }
    return true;
}

std::optional<ProtocolError> MessageAssembler::add(Opcode opcode, bool fin, std::string_view payload) {
    if (opcode == Opcode::continuation) {
        if (!in_message_) return ProtocolError{1002, "continuation frame without a message"};
    } else {
        if (in_message_) return ProtocolError{1002, "new message inside a fragmented message"};
        in_message_ = true;
        text_ = opcode == Opcode::text;
        size_ = 0;
        utf8_.reset();
    }
    size_ += payload.size();
    if (size_ > max_message_) return ProtocolError{1009, "message too large"};
    if (text_ && !utf8_.feed(payload, fin)) return ProtocolError{1007, "text message is not UTF-8"};
    if (fin) in_message_ = false;
    return std::nullopt;
}

void append_frame_header(std::string& out, Opcode opcode, std::uint64_t payload_size) {
    append_ws_frame_header(out, static_cast<std::uint8_t>(opcode), payload_size);
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
