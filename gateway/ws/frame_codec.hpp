// frame_codec.hpp: the RFC 6455 frame format (§5.2), with no sockets and no Asio: bytes in, a frame,
// "need more" or a protocol error out; and the frames crudcast writes (text headers, control and
// close frames). The session only moves bytes; everything it knows about the wire format is here,
// where it can be tested table-driven and fuzzed.
//
// Strict RFC 6455, as uWebSockets' codec is: a frame is refused (close 1002) when it is unmasked, sets
// a reserved bit (no extension is ever negotiated), has a reserved opcode, or is a fragmented or
// over-125-byte control frame; one over max_client_payload gets 1009. A MessageAssembler checks the
// order of fragments (1002), the size of a message (1009) and the UTF-8 of text (1007), and
// check_close_payload() what a peer's close frame says. The read loop only acts on the verdicts.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace crudcast::gateway {

enum class Opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

// Opcodes 8-15 are control frames (§5.5), the reserved ones included.
constexpr bool is_control(Opcode opcode) { return (static_cast<std::uint8_t>(opcode) & 0x08) != 0; }

constexpr std::size_t max_client_payload = std::size_t{64} * 1024;  // subscribers have nothing big to send
constexpr std::size_t max_client_message = max_client_payload;      // all fragments of one message together
constexpr std::size_t max_control_payload = 125;                    // §5.5
constexpr std::size_t max_close_reason = max_control_payload - 2;

// A frame header as it is on the wire, before any check.
struct FrameHeader {
    bool fin = false;
    std::uint8_t reserved = 0;  // RSV1-3, in the low three bits
    Opcode opcode = Opcode::continuation;
    bool masked = false;
    std::uint64_t payload_size = 0;
    std::array<std::uint8_t, 4> mask{};
    std::size_t size = 0;  // header bytes: 2 to 14
};

// The input ends inside a frame: read until the buffer holds at least `total` bytes, then decode again.
struct NeedMore {
    std::size_t total = 0;
};

// One whole frame at the start of the input. `payload` points into the input and is unmasked.
struct Frame {
    Opcode opcode = Opcode::continuation;
    bool fin = false;
    std::span<const char> payload;
    std::size_t size = 0;  // bytes the frame takes in the input, header included: consume these
};

// The peer broke the protocol: close with `close_code`, ignore its input from here on.
struct ProtocolError {
    std::uint16_t close_code = 0;
    std::string_view reason;
};

using Decoded = std::variant<NeedMore, Frame, ProtocolError>;

// The header at the start of `input`, or how many bytes it needs (NeedMore) when it is incomplete.
std::variant<NeedMore, FrameHeader> parse_header(std::span<const char> input);

// What makes a header from a client unacceptable, decided before its payload is read.
std::optional<ProtocolError> check_client_header(const FrameHeader& header,
                                                 std::size_t max_payload = max_client_payload);

// The first frame a client sent in `input`. A whole frame's payload is unmasked in place, so decode
// each complete frame once, then consume frame.size bytes.
Decoded decode_client_frame(std::span<char> input, std::size_t max_payload = max_client_payload);

// A close frame's payload: its status code when it has one (a bare close has none), then its reason.
struct ClosePayload {
    std::optional<std::uint16_t> code;
    std::string_view reason;
};
ClosePayload parse_close_payload(std::span<const char> payload);

// Whether a close frame may carry `code` (§7.4): 1000-1003, 1007-1014 and 3000-4999. 1004-1006 and
// 1015 are reserved (1005 and 1006 mean "no code" and "no close frame", never sent), the rest
// unassigned.
bool close_code_may_be_sent(std::uint16_t code);

// What makes a peer's close frame a protocol error: a 1-byte payload or a code no close frame may
// carry (1002), a reason that is not UTF-8 (1007). nullopt for a close to answer with its own code.
std::optional<ProtocolError> check_close_payload(std::span<const char> payload);

// UTF-8 checked piece by piece, as fragments of a text message arrive: a sequence may be split
// between two pieces. Invalid as soon as the bytes so far cannot begin valid UTF-8.
class Utf8Stream {
public:
    // False when `piece`, after the pieces before it, is not (the start of) valid UTF-8; with
    // `last`, also when the text ends inside a sequence.
    bool feed(std::string_view piece, bool last);
    void reset() { pending_size_ = 0; }

private:
    std::array<char, 4> pending_{};  // the start of a sequence cut at the end of the last piece
    std::size_t pending_size_ = 0;
};

// Client messages in order of their data frames (§5.4): a continuation needs a message begun
// without FIN, a text or binary frame may not begin one inside another, a message carries at most
// `max_message` bytes, and a text message is UTF-8. crudcast does not use client messages, so
// nothing is kept: only the size and the UTF-8 state. Control frames do not pass through here.
class MessageAssembler {
public:
    explicit MessageAssembler(std::size_t max_message = max_client_message) : max_message_(max_message) {}
    // One text, binary or continuation frame; a ProtocolError when it breaks the rules above.
    std::optional<ProtocolError> add(Opcode opcode, bool fin, std::string_view payload);
    bool in_message() const { return in_message_; }

private:
    std::size_t max_message_;
    bool in_message_ = false;
    bool text_ = false;
    std::size_t size_ = 0;
    Utf8Stream utf8_;
};

// Appends the header of an unmasked frame with FIN set (servers never mask, §5.1): 2, 4 or 10 bytes,
// with the shortest length form that holds `payload_size`.
void append_frame_header(std::string& out, Opcode opcode, std::uint64_t payload_size);

// The header of a text frame carrying `payload_size` bytes.
std::string text_frame_header(std::uint64_t payload_size);

// A whole ping, pong (or other control) frame; a payload longer than 125 bytes is cut to 125.
std::string control_frame(Opcode opcode, std::string_view payload);

// A whole close frame: the code, then the reason cut to 123 bytes.
std::string close_frame(std::uint16_t code, std::string_view reason);

// The opcode of a whole frame crudcast encoded (its first byte), e.g. to notice a close frame was written.
inline Opcode opcode_of(std::string_view frame) {
    return static_cast<Opcode>(static_cast<std::uint8_t>(frame[0]) & 0x0f);
}

}  // namespace crudcast::gateway
