// fuzz_ws_frames.cpp: bytes a WebSocket subscriber sends, through crudcast's frame codec as the
// session's read loop uses it: decode_client_frame until it needs more or refuses, data frames into a
// MessageAssembler, close payloads through check_close_payload / parse_close_payload, and the pong or
// close frame crudcast would answer with, decoded again. Utf8Stream must judge text the same however
// it is cut. Input: one option byte (the cut of the UTF-8 check), then the client's bytes.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "gateway/ws/frame_codec.hpp"
#include "tests/fuzz/http_feed.hpp"

namespace {

using namespace crudcast::gateway;

// A frame crudcast writes, parsed back: unmasked, FIN, the opcode and payload size it was given.
void check_own_frame(const std::string& frame, Opcode opcode, std::size_t payload_size) {
    const auto parsed = parse_header(std::span<const char>(frame.data(), frame.size()));
    const auto* header = std::get_if<FrameHeader>(&parsed);
    CRUDCAST_FUZZ_CHECK(header != nullptr);
    CRUDCAST_FUZZ_CHECK(header->fin && !header->masked && header->reserved == 0 && header->opcode == opcode);
    CRUDCAST_FUZZ_CHECK(header->payload_size == payload_size && header->size + payload_size == frame.size());
}

// What the session does with a peer's close frame: refuse it, or echo its code.
void on_close(std::span<const char> payload) {
    if (auto error = check_close_payload(payload)) {
        CRUDCAST_FUZZ_CHECK(error->close_code == 1002 || error->close_code == 1007);
        check_own_frame(close_frame(error->close_code, error->reason), Opcode::close,
                        2 + std::min(error->reason.size(), max_close_reason));
        return;
    }
    const auto close = parse_close_payload(payload);
    if (close.code) CRUDCAST_FUZZ_CHECK(close_code_may_be_sent(*close.code));
    check_own_frame(close_frame(close.code.value_or(1000), ""), Opcode::close, 2);
}

// Utf8Stream cut at `cut` agrees with Utf8Stream fed the whole text at once.
void check_utf8_cuts(std::string_view text, std::size_t cut) {
    cut = text.empty() ? 0 : cut % (text.size() + 1);
    Utf8Stream whole;
    const bool whole_ok = whole.feed(text, true);
    Utf8Stream pieces;
    const bool first_ok = pieces.feed(text.substr(0, cut), false);
    const bool pieces_ok = first_ok && pieces.feed(text.substr(cut), true);
    CRUDCAST_FUZZ_CHECK(whole_ok == pieces_ok);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::size_t cut = data[0];
    std::string buffer(reinterpret_cast<const char*>(data + 1), size - 1);
    check_utf8_cuts(buffer, cut);

    MessageAssembler messages;
    std::size_t offset = 0;
    while (offset < buffer.size()) {
        const auto decoded = decode_client_frame(std::span<char>(buffer.data() + offset, buffer.size() - offset));
        if (const auto* more = std::get_if<NeedMore>(&decoded)) {
            CRUDCAST_FUZZ_CHECK(more->total > buffer.size() - offset);
            break;
        }
        if (const auto* error = std::get_if<ProtocolError>(&decoded)) {
            CRUDCAST_FUZZ_CHECK(error->close_code == 1002 || error->close_code == 1009);
            break;
        }
        const auto& frame = std::get<Frame>(decoded);
        CRUDCAST_FUZZ_CHECK(frame.size > 0 && frame.size <= buffer.size() - offset);
        CRUDCAST_FUZZ_CHECK(frame.payload.size() <= max_client_payload);
        const std::string_view payload(frame.payload.data(), frame.payload.size());
        if (frame.opcode == Opcode::close) {
            on_close(frame.payload);
            break;
        }
        if (frame.opcode == Opcode::ping) {
            check_own_frame(control_frame(Opcode::pong, payload), Opcode::pong, payload.size());
        } else if (frame.opcode != Opcode::pong) {
            if (auto error = messages.add(frame.opcode, frame.fin, payload)) {
                CRUDCAST_FUZZ_CHECK(error->close_code == 1002 || error->close_code == 1007 ||
                                    error->close_code == 1009);
                break;
            }
        }
        offset += frame.size;
    }
    return 0;
}
