// frame_codec_test.cpp: the RFC 6455 frame codec, table-driven: client frames in every length form,
// masked and not, cut at every byte; the frames crudcast writes; and round trips between the two.
// The client frames here are built byte by byte, not with the encoder, so the two cannot share a bug.
#include "gateway/ws/frame_codec.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bus/event.hpp"
#include "tests/hex.hpp"

namespace {

using namespace crudcast::gateway;

constexpr std::array<std::uint8_t, 4> mask_a{0x37, 0xfa, 0x21, 0x3d};
constexpr std::array<std::uint8_t, 4> zero_mask{0, 0, 0, 0};

enum class LengthForm { shortest, bits16, bits64 };

// A frame as a client writes it: first byte (FIN, RSV, opcode), then the length in `form`, the mask
// key and the masked payload. `declared` overrides the length written (for oversized frames whose
// payload is not sent).
std::string client_frame(std::uint8_t first, std::string_view payload, bool masked = true,
                         LengthForm form = LengthForm::shortest, std::array<std::uint8_t, 4> mask = mask_a,
                         std::optional<std::uint64_t> declared = std::nullopt) {
    const std::uint64_t size = declared.value_or(payload.size());
    std::string out;
    out += static_cast<char>(first);
    const char mask_bit = masked ? char(0x80) : char(0);
    if (form == LengthForm::shortest && size < 126) {
        out += static_cast<char>(mask_bit | static_cast<char>(size));
    } else if (form == LengthForm::bits16 || (form == LengthForm::shortest && size <= 0xffff)) {
        out += static_cast<char>(mask_bit | 126);
        out += static_cast<char>(size >> 8);
        out += static_cast<char>(size & 0xff);
    } else {
        out += static_cast<char>(mask_bit | 127);
        for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((size >> shift) & 0xff);
    }
    if (masked) {
        for (auto b : mask) out += static_cast<char>(b);
    }
    for (std::size_t i = 0; i < payload.size(); ++i) {
        out += masked ? static_cast<char>(payload[i] ^ static_cast<char>(mask[i % 4])) : payload[i];
    }
    return out;
}

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
    return s;
}

using crudcast::test::hex;

Decoded decode(std::string bytes) {  // by value: the decoder unmasks in place
    return decode_client_frame(std::span<char>(bytes.data(), bytes.size()));
}

// ---- decoding: one row per frame a client may send ------------------------------------------------

struct Accepted {
    const char* name;
    std::string wire;
    Opcode opcode;
    bool fin;
    std::string payload;
};

std::vector<Accepted> accepted_rows() {
    const auto p125 = pattern(125), p126 = pattern(126), p65535 = pattern(65535), p64k = pattern(64 * 1024);
    return {
        {"empty text", client_frame(0x81, ""), Opcode::text, true, ""},
        {"one byte", client_frame(0x81, "x"), Opcode::text, true, "x"},
        {"125 bytes: the longest 7-bit length", client_frame(0x81, p125), Opcode::text, true, p125},
        {"126 bytes: 16-bit length", client_frame(0x81, p126), Opcode::text, true, p126},
        {"65535 bytes: the longest 16-bit length", client_frame(0x82, p65535), Opcode::binary, true, p65535},
        {"65536 bytes: the limit, 64-bit length", client_frame(0x82, p64k), Opcode::binary, true, p64k},
        {"short payload in the 16-bit form", client_frame(0x81, "hi", true, LengthForm::bits16), Opcode::text, true,
         "hi"},
        {"short payload in the 64-bit form", client_frame(0x81, "hi", true, LengthForm::bits64), Opcode::text, true,
         "hi"},
        {"empty payload in the 64-bit form", client_frame(0x81, "", true, LengthForm::bits64), Opcode::text, true, ""},
        {"zero mask key", client_frame(0x81, "plain", true, LengthForm::shortest, zero_mask), Opcode::text, true,
         "plain"},
        {"all-ones mask key", client_frame(0x81, "flip", true, LengthForm::shortest, {0xff, 0xff, 0xff, 0xff}),
         Opcode::text, true, "flip"},
        {"binary bytes", client_frame(0x82, std::string("\0\x01\xff\x80", 4)), Opcode::binary, true,
         std::string("\0\x01\xff\x80", 4)},
        {"not final", client_frame(0x01, "part"), Opcode::text, false, "part"},
        {"continuation", client_frame(0x80, "rest"), Opcode::continuation, true, "rest"},
        {"ping", client_frame(0x89, "are you there"), Opcode::ping, true, "are you there"},
        {"empty ping", client_frame(0x89, ""), Opcode::ping, true, ""},
        {"ping of 125 bytes", client_frame(0x89, p125), Opcode::ping, true, p125},
        {"pong", client_frame(0x8a, "yes"), Opcode::pong, true, "yes"},
        {"close with code and reason",
         client_frame(0x88,
                      "\x03\xe8"
                      "bye"),
         Opcode::close, true,
         "\x03\xe8"
         "bye"},
        {"bare close", client_frame(0x88, ""), Opcode::close, true, ""},
        {"close of 125 bytes", client_frame(0x88, "\x03\xe8" + pattern(123)), Opcode::close, true,
         "\x03\xe8" + pattern(123)},
        {"fragmented binary start", client_frame(0x02, "b"), Opcode::binary, false, "b"},
        {"middle continuation", client_frame(0x00, "m"), Opcode::continuation, false, "m"},
    };
}

TEST(FrameCodec, DecodesEveryAcceptedClientFrameWhole) {
    for (const auto& row : accepted_rows()) {
        SCOPED_TRACE(row.name);
        auto wire = row.wire;
        const auto decoded = decode_client_frame(std::span<char>(wire.data(), wire.size()));
        const auto* frame = std::get_if<Frame>(&decoded);
        ASSERT_NE(frame, nullptr);
        EXPECT_EQ(frame->opcode, row.opcode);
        EXPECT_EQ(frame->fin, row.fin);
        EXPECT_EQ(frame->size, row.wire.size());
        EXPECT_EQ(std::string(frame->payload.data(), frame->payload.size()), row.payload);
        // The payload is unmasked in place, where it lies in the input.
        EXPECT_EQ(frame->payload.data() + frame->payload.size(), wire.data() + wire.size());
    }
}

TEST(FrameCodec, EveryCutOfAnAcceptedFrameAsksForMoreAndNeverOvershoots) {
    for (const auto& row : accepted_rows()) {
        if (row.wire.size() > 300) continue;  // the long rows are cut below, at their boundaries only
        SCOPED_TRACE(row.name);
        for (std::size_t cut = 0; cut < row.wire.size(); ++cut) {
            SCOPED_TRACE(cut);
            const auto decoded = decode(row.wire.substr(0, cut));
            const auto* need = std::get_if<NeedMore>(&decoded);
            ASSERT_NE(need, nullptr);
            EXPECT_GT(need->total, cut);
            EXPECT_LE(need->total, row.wire.size());
        }
    }
}

struct Cut {
    const char* name;
    std::string wire;
    std::size_t have;
    std::size_t need;
};

TEST(FrameCodec, AnIncompleteFrameAsksForItsHeaderThenItsWholeSize) {
    const auto big = client_frame(0x82, pattern(65536));
    const auto mid = client_frame(0x81, pattern(300));
    const auto small = client_frame(0x81, "hello");
    const auto unmasked = client_frame(0x81, "hello", false);
    const std::vector<Cut> rows = {
        {"nothing", small, 0, 2},
        {"one byte", small, 1, 2},
        {"7-bit: two bytes, no mask key yet", small, 2, 6},
        {"7-bit: half the mask key", small, 4, 6},
        {"7-bit: header, no payload", small, 6, 11},
        {"7-bit: one byte short", small, 10, 11},
        {"16-bit: two bytes", mid, 2, 8},
        {"16-bit: length, no mask key", mid, 4, 8},
        {"16-bit: header", mid, 8, 308},
        {"16-bit: one byte short", mid, 307, 308},
        {"64-bit: two bytes", big, 2, 14},
        {"64-bit: half the length", big, 6, 14},
        {"64-bit: header", big, 14, 65550},
        {"64-bit: one byte short", big, 65549, 65550},
        {"unmasked: one byte", unmasked, 1, 2},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.name);
        const auto decoded = decode(row.wire.substr(0, row.have));
        const auto* need = std::get_if<NeedMore>(&decoded);
        ASSERT_NE(need, nullptr);
        EXPECT_EQ(need->total, row.need);
    }
}

struct Refused {
    const char* name;
    std::string wire;
    std::uint16_t close_code;
    std::string_view reason;
    std::size_t decided_at;  // the fewest bytes that show the error
};

std::vector<Refused> refused_rows() {
    constexpr auto big_form = LengthForm::bits64;
    return {
        {"unmasked text", client_frame(0x81, "hello", false), 1002, "client frames must be masked", 2},
        {"unmasked empty frame", client_frame(0x81, "", false), 1002, "client frames must be masked", 2},
        {"unmasked close", client_frame(0x88, "\x03\xe8", false), 1002, "client frames must be masked", 2},
        {"unmasked 16-bit frame", client_frame(0x81, pattern(200), false), 1002, "client frames must be masked", 4},
        {"unmasked and too large", client_frame(0x82, "", false, big_form, mask_a, 1 << 20), 1002,
         "client frames must be masked", 10},
        {"one byte over the limit", client_frame(0x82, "", true, LengthForm::shortest, mask_a, 65537), 1009,
         "frame too large", 14},
        {"a megabyte", client_frame(0x82, "", true, big_form, mask_a, 1 << 20), 1009, "frame too large", 14},
        {"the largest 64-bit length", client_frame(0x82, "", true, big_form, mask_a, UINT64_MAX), 1009,
         "frame too large", 14},
        {"ping of 126 bytes", client_frame(0x89, pattern(126)), 1002, "control frame over 125 bytes", 8},
        {"pong of 126 bytes", client_frame(0x8a, pattern(126)), 1002, "control frame over 125 bytes", 8},
        {"close of 126 bytes", client_frame(0x88, pattern(126)), 1002, "control frame over 125 bytes", 8},
        {"ping of a megabyte", client_frame(0x89, "", true, big_form, mask_a, 1 << 20), 1002,
         "control frame over 125 bytes", 14},
        {"reserved control opcode over 125", client_frame(0x8f, pattern(200)), 1002, "reserved opcode", 8},
        // No extension is ever negotiated: every reserved bit is refused, on any opcode.
        {"RSV1 (permessage-deflate's bit) on text", client_frame(0xc1, "rsv"), 1002,
         "reserved bits set without an extension", 6},
        {"RSV2 on binary", client_frame(0xa2, "rsv"), 1002, "reserved bits set without an extension", 6},
        {"RSV3 on a continuation", client_frame(0x10, "rsv"), 1002, "reserved bits set without an extension", 6},
        {"all three on a ping", client_frame(0xf9, ""), 1002, "reserved bits set without an extension", 6},
        {"RSV1 on a close", client_frame(0xc8, "\x03\xe8"), 1002, "reserved bits set without an extension", 6},
        {"reserved bit on a frame too large", client_frame(0xc2, "", true, big_form, mask_a, 1 << 20), 1002,
         "reserved bits set without an extension", 14},
        // Control frames are never fragmented (§5.5).
        {"fragmented ping", client_frame(0x09, "x"), 1002, "fragmented control frame", 6},
        {"fragmented pong", client_frame(0x0a, ""), 1002, "fragmented control frame", 6},
        {"fragmented close", client_frame(0x08, "\x03\xe8"), 1002, "fragmented control frame", 6},
    };
}

TEST(FrameCodec, RefusesEveryReservedOpcode) {
    for (std::uint8_t opcode : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
        SCOPED_TRACE(static_cast<int>(opcode));
        for (const std::uint8_t fin : {0x80, 0x00}) {
            const auto decoded = decode(client_frame(static_cast<std::uint8_t>(fin | opcode), "x"));
            const auto* error = std::get_if<ProtocolError>(&decoded);
            ASSERT_NE(error, nullptr);
            EXPECT_EQ(error->close_code, 1002);
            EXPECT_EQ(error->reason, "reserved opcode");
        }
    }
}

TEST(FrameCodec, RefusesBadHeadersAsSoonAsTheHeaderShowsIt) {
    for (const auto& row : refused_rows()) {
        SCOPED_TRACE(row.name);
        const auto whole = decode(row.wire);
        const auto* error = std::get_if<ProtocolError>(&whole);
        ASSERT_NE(error, nullptr);
        EXPECT_EQ(error->close_code, row.close_code);
        EXPECT_EQ(error->reason, row.reason);
        const auto at = decode(row.wire.substr(0, row.decided_at));
        EXPECT_TRUE(std::holds_alternative<ProtocolError>(at));
        const auto before = decode(row.wire.substr(0, row.decided_at - 1));
        ASSERT_TRUE(std::holds_alternative<NeedMore>(before));
        EXPECT_EQ(std::get<NeedMore>(before).total, row.decided_at);
    }
}

TEST(FrameCodec, TheLimitIsTheCallersChoice) {
    const auto frame = client_frame(0x81, pattern(100));
    auto wire = frame;
    EXPECT_TRUE(std::holds_alternative<Frame>(decode_client_frame(std::span<char>(wire.data(), wire.size()), 100)));
    wire = frame;
    const auto refused = decode_client_frame(std::span<char>(wire.data(), wire.size()), 99);
    ASSERT_TRUE(std::holds_alternative<ProtocolError>(refused));
    EXPECT_EQ(std::get<ProtocolError>(refused).close_code, 1009);
}

TEST(FrameCodec, FramesBackToBackDecodeOneAtATime) {
    auto wire = client_frame(0x89, "p1") + client_frame(0x81, pattern(130)) + client_frame(0x88, "\x03\xe8");
    std::span<char> rest(wire.data(), wire.size());
    std::vector<Opcode> seen;
    while (!rest.empty()) {
        const auto decoded = decode_client_frame(rest);
        const auto* frame = std::get_if<Frame>(&decoded);
        ASSERT_NE(frame, nullptr);
        seen.push_back(frame->opcode);
        if (frame->opcode == Opcode::text) {
            EXPECT_EQ(std::string(frame->payload.data(), frame->payload.size()), pattern(130));
        }
        rest = rest.subspan(frame->size);
    }
    EXPECT_EQ(seen, (std::vector<Opcode>{Opcode::ping, Opcode::text, Opcode::close}));
}

TEST(FrameCodec, ParsesTheWholeHeader) {
    const auto wire = client_frame(0xc2, "abc", true, LengthForm::bits16, {1, 2, 3, 4});
    const auto parsed = parse_header(std::span<const char>(wire.data(), wire.size()));
    const auto* h = std::get_if<FrameHeader>(&parsed);
    ASSERT_NE(h, nullptr);
    EXPECT_TRUE(h->fin);
    EXPECT_EQ(h->reserved, 0x4);  // RSV1
    EXPECT_EQ(h->opcode, Opcode::binary);
    EXPECT_TRUE(h->masked);
    EXPECT_EQ(h->payload_size, 3u);
    EXPECT_EQ(h->mask, (std::array<std::uint8_t, 4>{1, 2, 3, 4}));
    EXPECT_EQ(h->size, 8u);
}

struct CloseRow {
    const char* name;
    std::string payload;
    std::optional<std::uint16_t> code;
    std::string reason;
};

TEST(FrameCodec, ReadsTheCodeAndReasonOfACloseFrame) {
    const std::vector<CloseRow> rows = {
        {"bare close", "", std::nullopt, ""},
        {"one stray byte", "\x03", std::nullopt, ""},
        {"code only", "\x03\xe8", 1000, ""},
        {"code and reason",
         "\x03\xe9"
         "going away",
         1001, "going away"},
        {"high byte",
         "\x0f\xa0"
         "x",
         4000, "x"},
        {"largest code", "\xff\xff", 65535, ""},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.name);
        const auto close = parse_close_payload(std::span<const char>(row.payload.data(), row.payload.size()));
        EXPECT_EQ(close.code, row.code);
        EXPECT_EQ(close.reason, row.reason);
    }
}

// ---- close frames from a client: answered with their own code, or refused ------------------------

std::string close_payload(std::uint16_t code, std::string_view reason = "") {
    std::string out;
    out += static_cast<char>(code >> 8);
    out += static_cast<char>(code & 0xff);
    out += reason;
    return out;
}

struct CloseCheckRow {
    const char* name;
    std::string payload;
    std::optional<std::uint16_t> close_code;  // ours, when the close is refused
};

std::vector<CloseCheckRow> close_check_rows() {
    std::vector<CloseCheckRow> rows = {
        {"bare close", "", std::nullopt},
        {"code and a UTF-8 reason", close_payload(1000, "tsch\xc3\xbc\xc3\x9f \xe2\x82\xac"), std::nullopt},
        {"reason of 123 bytes", close_payload(1001, pattern(123)), std::nullopt},
        {"one byte", "\x03", 1002},
        {"reason with a byte that never begins UTF-8", close_payload(1000, "bad \xff"), 1007},
        {"reason cut inside a character", close_payload(1000, "\xe2\x82"), 1007},
        {"reason with an overlong slash", close_payload(1000, "\xc0\xaf"), 1007},
        {"reason with a surrogate", close_payload(1000, "\xed\xa0\x80"), 1007},
        {"a bad code wins over a bad reason", close_payload(1005, "\xff"), 1002},
    };
    // Codes a close frame may carry (§7.4.1, and 1012-1014 registered with IANA since) ...
    for (std::uint16_t code :
         {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999})
        rows.push_back({"allowed code", close_payload(code), std::nullopt});
    // ... and those it may not: below 1000, reserved (1004-1006, 1015), unassigned, past 4999.
    for (std::uint16_t code : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535})
        rows.push_back({"refused code", close_payload(code), 1002});
    return rows;
}

TEST(FrameCodec, AClientsCloseIsRefusedForOneByteABadCodeOrAReasonThatIsNotUtf8) {
    for (const auto& row : close_check_rows()) {
        SCOPED_TRACE(row.name);
        SCOPED_TRACE(hex(row.payload.substr(0, 4)));
        const auto error = check_close_payload(std::span<const char>(row.payload.data(), row.payload.size()));
        ASSERT_EQ(error.has_value(), row.close_code.has_value());
        if (error) {
            EXPECT_EQ(error->close_code, *row.close_code);
        }
    }
}

TEST(FrameCodec, CloseCodesThatMayBeSentAreExactlyTheAssignedRanges) {
    int allowed = 0;
    for (std::uint32_t code = 0; code <= 0xffff; ++code) allowed += close_code_may_be_sent(code) ? 1 : 0;
    EXPECT_EQ(allowed, 4 + 8 + 2000);  // 1000-1003, 1007-1014, 3000-4999
}

// ---- UTF-8 across fragments -------------------------------------------------------------------

struct Utf8Row {
    const char* name;
    std::string text;
    bool valid;
};

std::vector<Utf8Row> utf8_rows() {
    return {
        {"empty", "", true},
        {"ASCII", "hello", true},
        {"two-byte", "\xc3\xa9t\xc3\xa9", true},
        {"three-byte", "\xe2\x82\xac", true},
        {"four-byte", "\xf0\x9d\x84\x9e", true},
        {"Greek kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true},
        {"U+D7FF, below the surrogates", "\xed\x9f\xbf", true},
        {"U+E000, above them", "\xee\x80\x80", true},
        {"U+FFFF", "\xef\xbf\xbf", true},
        {"U+10FFFF, the last", "\xf4\x8f\xbf\xbf", true},
        {"a lone continuation byte", "a\x80z", false},
        {"0xff", "\xff", false},
        {"0xfe", "ab\xfe", false},
        {"overlong NUL", "\xc0\x80", false},
        {"overlong three-byte", "\xe0\x80\xaf", false},
        {"overlong four-byte", "\xf0\x80\x80\xaf", false},
        {"a surrogate", "\xed\xa0\x80", false},
        {"past U+10FFFF", "\xf4\x90\x80\x80", false},
        {"lead 0xf5", "\xf5\x80\x80\x80", false},
        {"ends inside a two-byte character", "ab\xc3", false},
        {"ends inside a four-byte character", "\xf0\x9d\x84", false},
        {"a character cut by ASCII", "\xe2\x82(", false},
        {"valid, then a bad byte",
         "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
         "edited",
         false},
    };
}

// Feeds `pieces` in order; false when any is refused.
bool feed_all(const std::vector<std::string>& pieces) {
    Utf8Stream stream;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
        if (!stream.feed(pieces[i], i + 1 == pieces.size())) return false;
    }
    return true;
}

TEST(FrameCodec, Utf8IsCheckedTheSameWholeSplitAnywhereOrByteByByte) {
    for (const auto& row : utf8_rows()) {
        SCOPED_TRACE(row.name);
        EXPECT_EQ(feed_all({row.text}), row.valid);
        for (std::size_t cut = 0; cut <= row.text.size(); ++cut) {
            SCOPED_TRACE(cut);
            EXPECT_EQ(feed_all({row.text.substr(0, cut), row.text.substr(cut)}), row.valid);
            EXPECT_EQ(feed_all({row.text.substr(0, cut), "", row.text.substr(cut)}), row.valid);
        }
        std::vector<std::string> bytes;
        for (char c : row.text) bytes.emplace_back(1, c);
        if (!bytes.empty()) {
            EXPECT_EQ(feed_all(bytes), row.valid);
        }
    }
}

TEST(FrameCodec, Utf8FailsAtTheFirstPieceThatCannotBeginValidText) {
    struct Row {
        const char* name;
        std::string piece;
        bool may_continue;
    };
    const std::vector<Row> rows = {
        {"a lead byte", "\xc3", true},
        {"the start of U+10FFFF", "\xf4\x8f", true},
        {"the start of U+D7FF", "\xed\x9f", true},
        {"the start of U+0800", "\xe0\xa0", true},
        {"the start of a surrogate", "\xed\xa0", false},
        {"the start of a code point past U+10FFFF", "\xf4\x90", false},
        {"the start of an overlong form", "\xe0\x80", false},
        {"a lead that never begins UTF-8", "\xc0", false},
        {"a lone continuation byte", "\x80", false},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.name);
        Utf8Stream stream;
        EXPECT_EQ(stream.feed(row.piece, false), row.may_continue);
        Utf8Stream ended;
        EXPECT_FALSE(ended.feed(row.piece, true));  // text may not end inside a character
    }
}

// ---- message assembly: the order, size and UTF-8 of data frames -----------------------------------

struct Step {
    Opcode opcode;
    bool fin;
    std::string payload;
};

struct AssemblyRow {
    const char* name;
    std::vector<Step> steps;
    std::size_t fails_at;  // index of the refused step, or steps.size() when all are accepted
    std::uint16_t close_code;
    std::string_view reason;
};

std::vector<AssemblyRow> assembly_rows() {
    constexpr auto text = Opcode::text, binary = Opcode::binary, cont = Opcode::continuation;
    const std::string euro = "\xe2\x82\xac";
    return {
        {"one text message", {{text, true, "hi"}}, 1, 0, ""},
        {"one binary message of bytes that are not UTF-8", {{binary, true, "\xff\xfe"}}, 1, 0, ""},
        {"empty messages", {{text, true, ""}, {binary, true, ""}}, 2, 0, ""},
        {"a text message in three fragments, then another",
         {{text, false, "a"}, {cont, false, "b"}, {cont, true, "c"}, {text, true, "d"}},
         4,
         0,
         ""},
        {"a character split between fragments",
         {{text, false, euro.substr(0, 1)}, {cont, false, euro.substr(1, 1)}, {cont, true, euro.substr(2)}},
         3,
         0,
         ""},
        {"empty fragments", {{text, false, ""}, {cont, false, ""}, {cont, true, ""}}, 3, 0, ""},
        {"a message of exactly the limit in fragments",
         {{binary, false, pattern(6)}, {cont, true, pattern(4)}},
         2,
         0,
         ""},
        {"a continuation with no message begun", {{cont, true, "x"}}, 0, 1002, "continuation frame without a message"},
        {"a continuation after a whole message",
         {{text, true, "a"}, {cont, true, "b"}},
         1,
         1002,
         "continuation frame without a message"},
        {"a text frame inside a fragmented message",
         {{text, false, "a"}, {text, true, "b"}},
         1,
         1002,
         "new message inside a fragmented message"},
        {"a binary frame inside a fragmented text message",
         {{text, false, "a"}, {binary, true, "b"}},
         1,
         1002,
         "new message inside a fragmented message"},
        {"one frame over the limit", {{binary, true, pattern(11)}}, 0, 1009, "message too large"},
        {"fragments over the limit together",
         {{text, false, pattern(6)}, {cont, false, pattern(5)}},
         1,
         1009,
         "message too large"},
        {"text that is not UTF-8", {{text, true, "bad \xff"}}, 0, 1007, "text message is not UTF-8"},
        {"bad UTF-8 in the first fragment fails there",
         {{text, false, "\xed\xa0"}, {cont, true, "\x80"}},
         0,
         1007,
         "text message is not UTF-8"},
        {"text ending inside a character",
         {{text, false, "a"}, {cont, true, euro.substr(0, 2)}},
         1,
         1007,
         "text message is not UTF-8"},
        {"a cut character is not carried into the next message",
         {{binary, true, "\xe2"}, {text, false, euro.substr(0, 2)}, {cont, true, "!"}},
         2,
         1007,
         "text message is not UTF-8"},
    };
}

TEST(FrameCodec, MessagesAreAssembledInOrderWithinTheLimitAndTextIsUtf8) {
    for (const auto& row : assembly_rows()) {
        SCOPED_TRACE(row.name);
        MessageAssembler messages(10);
        std::size_t i = 0;
        std::optional<ProtocolError> error;
        for (; i < row.steps.size(); ++i) {
            const auto& step = row.steps[i];
            if ((error = messages.add(step.opcode, step.fin, step.payload))) break;
        }
        EXPECT_EQ(i, row.fails_at);
        if (row.fails_at < row.steps.size()) {
            ASSERT_TRUE(error.has_value());
            EXPECT_EQ(error->close_code, row.close_code);
            EXPECT_EQ(error->reason, row.reason);
        } else {
            EXPECT_FALSE(messages.in_message());
        }
    }
}

TEST(FrameCodec, TheDefaultMessageLimitIs64KiB) {
    MessageAssembler messages;
    EXPECT_FALSE(messages.add(Opcode::binary, false, pattern(max_client_message - 1)).has_value());
    EXPECT_FALSE(messages.add(Opcode::continuation, true, "x").has_value());
    EXPECT_FALSE(messages.add(Opcode::binary, false, pattern(max_client_message)).has_value());
    const auto error = messages.add(Opcode::continuation, true, "x");
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->close_code, 1009);
}

// ---- encoding: the frames crudcast writes ---------------------------------------------------------

struct HeaderRow {
    Opcode opcode;
    std::uint64_t size;
    const char* expected;
};

TEST(FrameCodec, WritesTheShortestLengthFormUnmaskedWithFin) {
    const std::vector<HeaderRow> rows = {
        {Opcode::text, 0, "81 00"},
        {Opcode::text, 1, "81 01"},
        {Opcode::text, 125, "81 7d"},
        {Opcode::text, 126, "81 7e 00 7e"},
        {Opcode::text, 127, "81 7e 00 7f"},
        {Opcode::text, 65535, "81 7e ff ff"},
        {Opcode::text, 65536, "81 7f 00 00 00 00 00 01 00 00"},
        {Opcode::text, 0x1'0000'0000ull, "81 7f 00 00 00 01 00 00 00 00"},
        {Opcode::binary, 2, "82 02"},
        {Opcode::close, 2, "88 02"},
        {Opcode::ping, 0, "89 00"},
        {Opcode::pong, 125, "8a 7d"},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.size);
        std::string out = "prefix";
        append_frame_header(out, row.opcode, row.size);
        EXPECT_EQ(out.substr(0, 6), "prefix");  // appends
        EXPECT_EQ(hex(out.substr(6)), row.expected);
    }
}

TEST(FrameCodec, TextFrameHeadersMatchTheFramesTheBusBuilds) {
    for (std::size_t size : {0, 1, 125, 126, 127, 65535, 65536, 70000}) {
        SCOPED_TRACE(size);
        const auto header = text_frame_header(size);
        const auto frame = crudcast::bus::websocket_text_frame(pattern(size));
        EXPECT_EQ(frame.size(), header.size() + size);
        EXPECT_EQ(hex(frame.substr(0, header.size())), hex(header));
    }
}

struct ControlRow {
    const char* name;
    std::string frame;
    const char* expected;
};

TEST(FrameCodec, WritesControlAndCloseFrames) {
    const std::vector<ControlRow> rows = {
        {"empty ping", control_frame(Opcode::ping, ""), "89 00"},
        {"pong echoing a payload", control_frame(Opcode::pong, "abc"), "8a 03 61 62 63"},
        {"close 1000 without a reason", close_frame(1000, ""), "88 02 03 e8"},
        {"close 1001 with a reason", close_frame(1001, "bye"), "88 05 03 e9 62 79 65"},
        {"close 1013", close_frame(1013, ""), "88 02 03 f5"},
        {"close 4000", close_frame(4000, ""), "88 02 0f a0"},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.name);
        EXPECT_EQ(hex(row.frame), row.expected);
    }
}

TEST(FrameCodec, ControlFramesNeverExceed125Bytes) {
    const auto pong = control_frame(Opcode::pong, pattern(300));
    EXPECT_EQ(pong.size(), 2u + 125u);
    EXPECT_EQ(hex(pong.substr(0, 2)), "8a 7d");
    EXPECT_EQ(pong.substr(2), pattern(125));
    const auto close = close_frame(1000, pattern(200));
    EXPECT_EQ(close.size(), 2u + 125u);
    EXPECT_EQ(close.substr(4), pattern(123));
    EXPECT_EQ(opcode_of(close), Opcode::close);
    EXPECT_EQ(opcode_of(pong), Opcode::pong);
}

// ---- round trips: what crudcast writes, masked as a client would, decodes to what went in ---------

std::string masked_like_a_client(std::string_view server_frame, std::array<std::uint8_t, 4> mask) {
    const auto parsed = parse_header(std::span<const char>(server_frame.data(), server_frame.size()));
    const auto& h = std::get<FrameHeader>(parsed);
    std::string out(server_frame.substr(0, h.size));
    out[1] = static_cast<char>(out[1] | 0x80);
    for (auto b : mask) out += static_cast<char>(b);
    const auto payload = server_frame.substr(h.size);
    for (std::size_t i = 0; i < payload.size(); ++i)
        out += static_cast<char>(payload[i] ^ static_cast<char>(mask[i % 4]));
    return out;
}

TEST(FrameCodec, EncodedFramesDecodeToWhatWentIn) {
    struct Row {
        Opcode opcode;
        std::string payload;
    };
    const std::vector<Row> rows = {
        {Opcode::text, ""},
        {Opcode::text, "x"},
        {Opcode::text, pattern(125)},
        {Opcode::text, pattern(126)},
        {Opcode::binary, pattern(65535)},
        {Opcode::binary, pattern(65536)},
        {Opcode::ping, "p"},
        {Opcode::pong, pattern(125)},
        {Opcode::close, std::string("\x03\xe8") + "done"},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.payload.size());
        std::string frame;
        append_frame_header(frame, row.opcode, row.payload.size());
        frame += row.payload;
        for (const auto& mask : {mask_a, zero_mask}) {
            auto wire = masked_like_a_client(frame, mask);
            const auto decoded = decode_client_frame(std::span<char>(wire.data(), wire.size()));
            const auto* f = std::get_if<Frame>(&decoded);
            ASSERT_NE(f, nullptr);
            EXPECT_EQ(f->opcode, row.opcode);
            EXPECT_TRUE(f->fin);
            EXPECT_EQ(f->size, wire.size());
            EXPECT_EQ(std::string(f->payload.data(), f->payload.size()), row.payload);
        }
    }
}

TEST(FrameCodec, ACloseFrameRoundTripsItsCodeAndReason) {
    for (std::uint16_t code : {1000, 1001, 1002, 1009, 1013, 4999}) {
        auto wire = masked_like_a_client(close_frame(code, "why not"), mask_a);
        const auto decoded = decode_client_frame(std::span<char>(wire.data(), wire.size()));
        const auto& f = std::get<Frame>(decoded);
        const auto close = parse_close_payload(f.payload);
        EXPECT_EQ(close.code, code);
        EXPECT_EQ(close.reason, "why not");
    }
}

}  // namespace
