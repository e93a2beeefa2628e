// hostile_rows_ws.cpp: the hostile table's WebSocket rows (part of hostile_test). After a real
// handshake on the ws path, a client sends frames that break RFC 6455, delivered byte by byte or in
// pieces with pauses (tests/events_test.cpp sends each in one write): crudcast's frame reader must
// judge a frame the same however it arrives. Each row: the close code crudcast answers with, that
// nothing follows its close frame, and that the connection then ends. nginx only tunnels WebSocket
// bytes (the backend judges them), so each row names the RFC 6455 rule instead.
#include <gtest/gtest.h>

#include "tests/hostile_rows.hpp"

namespace {

using namespace crudcast;
using namespace crudcast::hostile;

struct WsRow {
    const char* name;
    std::string bytes;  // sent after the handshake's 101
    Delivery delivery;
    unsigned close_code;  // in crudcast's close frame
    const char* rule;     // RFC 6455
    bool pong = false;    // a pong comes before the close
};

void PrintTo(const WsRow& row, std::ostream* os) { *os << row.name; }

std::string close_frame(unsigned code, std::string_view reason = "") {
    return ws_client_frame(
        0x88, std::string{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)} + std::string(reason));
}
// A masked binary frame header announcing `size` bytes (64-bit length), without the payload.
std::string announce_binary(std::uint64_t size) {
    std::string out = "\x82\xff";
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((size >> shift) & 0xff);
    return out + "\x11\x22\x33\x44";
}

const auto bytewise = Delivery::byte_by_byte;
const auto parts = Delivery::three_parts;

// clang-format off
const WsRow ws_rows[] = {
    {"ReservedBitSet", ws_client_frame(0xc1, "x"), bytewise, 1002, "§5.2: RSV1-3 must be 0 without an extension"},
    {"ReservedBitsAllSet", ws_client_frame(0xf1, "x"), parts, 1002, "§5.2"},
    {"UnmaskedFrame", std::string("\x81\x02hi", 4), bytewise, 1002, "§5.1: a client masks every frame"},
    {"FragmentedPing", ws_client_frame(0x09, "p"), bytewise, 1002, "§5.5: control frames are not fragmented"},
    {"PingOf126Bytes", ws_client_frame(0x89, std::string(126, 'p')), bytewise, 1002,
     "§5.5: control payloads are 125 bytes at most"},
    {"ContinuationWithoutStart", ws_client_frame(0x80, "x"), bytewise, 1002, "§5.4: no message to continue"},
    {"NewTextInsideFragmentedMessage", ws_client_frame(0x01, "a") + ws_client_frame(0x81, "b"), bytewise, 1002,
     "§5.4: a fragmented message's frames are not interleaved with another data frame"},
    {"InvalidUtf8Text", ws_client_frame(0x81, "bad \xff"), bytewise, 1007, "§8.1: text is UTF-8"},
    {"OverlongUtf8Text", ws_client_frame(0x81, "\xc0\xaf"), bytewise, 1007, "§8.1 (RFC 3629: overlong forms)"},
    {"SurrogateInUtf8Text", ws_client_frame(0x81, "\xed\xa0\x80"), parts, 1007, "§8.1 (RFC 3629: no surrogates)"},
    {"InvalidUtf8AcrossFragments", ws_client_frame(0x01, "\xe2\x82") + ws_client_frame(0x80, "x"), bytewise, 1007,
     "§8.1: judged over the whole message"},
    {"Close1005", close_frame(1005), bytewise, 1002, "§7.4.1: 1005 is never sent"},
    {"Close999", close_frame(999), bytewise, 1002, "§7.4.2: codes under 1000 are not used"},
    {"Close1100", close_frame(1100), bytewise, 1002, "§7.4.2: 1016-2999 are reserved for the protocol"},
    {"CloseOfOneByte", ws_client_frame(0x88, "\x03"), bytewise, 1002, "§5.5.1: a close body starts with 2 bytes"},
    {"CloseReasonNotUtf8", close_frame(1000, "\xc0\xaf"), bytewise, 1007, "§5.5.1: the reason is UTF-8"},
    {"UnknownDataOpcode", ws_client_frame(0x83, ""), bytewise, 1002, "§5.2: opcodes 3-7 are reserved"},
    {"UnknownControlOpcode", ws_client_frame(0x8b, ""), bytewise, 1002, "§5.2: opcodes 0xB-0xF are reserved"},
    {"OversizeFrameAnnounced", announce_binary(65537), bytewise, 1009,
     "§7.4.1: 1009 for a message too big to process (crudcast takes 64 KiB)"},
    {"OversizeMessageInFragments",
     ws_client_frame(0x02, std::string(40000, 'x')) + ws_client_frame(0x80, std::string(40000, 'x')), parts, 1009,
     "§7.4.1: 1009, the size counts over fragments"},
    {"HttpRequestAfterTheHandshake", get_request("/again"), bytewise, 1002,
     "§5.2: 'G' (0x47) is a frame with RSV1 set and reserved opcode 7"},
    {"PingThenClose1000", ws_client_frame(0x89, "hi") + close_frame(1000), bytewise, 1000,
     "§5.5.2 a pong for the ping, §5.5.1 the close echoed", true},
    {"TextThenClose1000", ws_client_frame(0x81, "hello") + close_frame(1000), bytewise, 1000,
     "§5.5.1: client text is allowed (crudcast ignores it), the close echoed"},
    // The session keeps only the part of a frame that has arrived: a 60 KiB message cut across
    // writes (and reads) must come out whole, and the ping behind it still be answered.
    {"LargeMessageInPiecesThenPingThenClose1000",
     ws_client_frame(0x82, std::string(60000, 'x')) + ws_client_frame(0x89, "hi") + close_frame(1000), parts, 1000,
     "§5.2: a frame is judged whole however it arrives; §5.5.2 a pong for the ping", true},
    // More than one read's worth in one write: the bytes behind a full read are acted on too.
    {"TwoLargeMessagesAtOnceThenPingThenClose1000",
     ws_client_frame(0x82, std::string(60000, 'x')) + ws_client_frame(0x82, std::string(60000, 'y')) +
         ws_client_frame(0x89, "hi") + close_frame(1000),
     Delivery::at_once, 1000, "the bytes behind a full read are acted on without waiting for more", true},
};
// clang-format on

class HostileWebSocket : public ::testing::TestWithParam<WsRow> {
protected:
    static void SetUpTestSuite() {
        stack = std::make_unique<Stack>([](const RecordedRequest&) { return UpstreamReply::ok(); });
    }
    static void TearDownTestSuite() { stack.reset(); }
    static inline std::unique_ptr<Stack> stack;
};

const std::string upgrade_request =
    "GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

TEST_P(HostileWebSocket, CloseCodeThenTheConnectionEnds) {
    const auto& row = GetParam();
    SCOPED_TRACE(std::string(row.rule) + "; delivered " + to_string(row.delivery));
    Socket raw = Socket::connect(stack->port());
    ASSERT_TRUE(raw.send_all(upgrade_request));
    const auto head = raw.read_until("\r\n\r\n", default_timeout);
    ASSERT_TRUE(head.has_value());
    ASSERT_TRUE(head->starts_with("HTTP/1.1 101")) << *head;
    deliver(raw, row.bytes, row.delivery);

    auto header = raw.read_exactly(2, default_timeout);
    ASSERT_TRUE(header.has_value()) << "no frame from crudcast";
    if (static_cast<unsigned char>((*header)[0]) == 0x8au) {  // a pong
        EXPECT_TRUE(row.pong) << "a pong nobody asked for";
        ASSERT_TRUE(raw.read_exactly(static_cast<unsigned char>((*header)[1]), default_timeout));
        header = raw.read_exactly(2, default_timeout);
        ASSERT_TRUE(header.has_value());
    } else {
        EXPECT_FALSE(row.pong) << "the ping was not answered";
    }
    ASSERT_EQ(static_cast<unsigned char>((*header)[0]), 0x88u) << "not a close frame";
    const auto payload = raw.read_exactly(static_cast<unsigned char>((*header)[1]), default_timeout);
    ASSERT_TRUE(payload.has_value() && payload->size() >= 2);
    const unsigned code = static_cast<unsigned char>((*payload)[0]) << 8 | static_cast<unsigned char>((*payload)[1]);
    EXPECT_EQ(code, row.close_code);
    std::string after;
    Socket::Status status;
    while ((status = raw.fill(default_timeout)) == Socket::Status::data) {
        after += raw.buffered();
        raw.consume(raw.buffered().size());
    }
    EXPECT_EQ(after.size(), 0u) << "bytes after the close frame";
    EXPECT_NE(status, Socket::Status::timeout) << "the connection stayed open after the close";
}

// Sends the upgrade request with `frames` in the same write, then expects the 101 and a pong
// carrying `ping` (the frames end with that ping).
void expect_pong_after_upgrade(const std::string& frames, const std::string& ping) {
    Stack stack([](const RecordedRequest&) { return UpstreamReply::ok(); });
    Socket raw = Socket::connect(stack.port());
    ASSERT_TRUE(raw.send_all(upgrade_request + frames));
    const auto head = raw.read_until("\r\n\r\n", default_timeout);
    ASSERT_TRUE(head.has_value());
    ASSERT_TRUE(head->starts_with("HTTP/1.1 101")) << *head;
    const auto pong = raw.read_exactly(2 + ping.size(), default_timeout);
    ASSERT_TRUE(pong.has_value()) << "the ping sent with the request was not answered";
    EXPECT_EQ(*pong, std::string("\x8a") + static_cast<char>(ping.size()) + ping);
}

// Frames a client sends in the same write as its upgrade request arrive with the request's bytes:
// they are acted on before the session first waits for the socket, which stays quiet afterwards.
TEST(WebSocketInput, FramesSentWithTheUpgradeRequestAreActedOnAtOnce) {
    expect_pong_after_upgrade(ws_client_frame(0x89, "early"), "early");
}

// More than the request's read took, all in the socket before the session first looks at it: the
// session reads what is there before it waits for more.
TEST(WebSocketInput, LargeFramesSentWithTheUpgradeRequestAreActedOnAtOnce) {
    expect_pong_after_upgrade(ws_client_frame(0x82, std::string(60000, 'x')) +
                                  ws_client_frame(0x82, std::string(60000, 'y')) + ws_client_frame(0x89, "late"),
                              "late");
}

INSTANTIATE_TEST_SUITE_P(Rows, HostileWebSocket, ::testing::ValuesIn(ws_rows),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
