// frame_log_test.cpp: the per-thread log of frames that WebSocket subscribers read through cursors.
#include "gateway/ws/frame_log.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using crudcast::gateway::FrameLog;

std::string joined(const FrameLog& log, std::uint64_t from, std::uint64_t to, std::size_t* span_count = nullptr) {
    std::vector<FrameLog::Span> spans;
    log.spans(from, to, spans);
    if (span_count != nullptr) *span_count = spans.size();
    std::string out;
    for (const auto& s : spans) out.append(s.data, s.size);
    return out;
}

TEST(FrameLog, EntriesKeepTheirBytesSeqAndTopicInOrder) {
    FrameLog log(16);
    log.append("aaaa", 1, 7);
    log.append("bbbbbb", 2, 8);
    log.append("cc", 3, 7);
    ASSERT_EQ(log.begin_index(), 0u);
    ASSERT_EQ(log.end_index(), 3u);
    EXPECT_EQ(log.end_offset(), 12u);
    EXPECT_EQ(log.entry(1).seq, 2u);
    EXPECT_EQ(log.entry(1).topic, 8u);
    EXPECT_EQ(log.entry(2).offset, 10u);
    EXPECT_EQ(std::string(log.data(1), log.entry(1).size), "bbbbbb");
    EXPECT_EQ(joined(log, 0, 3), "aaaabbbbbbcc");
    EXPECT_EQ(joined(log, 1, 2), "bbbbbb");
    EXPECT_EQ(joined(log, 3, 3), "");
}

TEST(FrameLog, AFrameNeverStraddlesTwoChunksAndSpansFollowTheChunks) {
    FrameLog log(8);
    log.append("12345", 1, 0);        // chunk 1: 5 of 8
    log.append("6789", 2, 0);         // does not fit: chunk 2
    log.append("abcdefghijk", 3, 0);  // bigger than a chunk: its own chunk
    log.append("z", 4, 0);            // a new standard chunk after the big one
    EXPECT_EQ(log.chunk_count(), 4u);
    std::size_t spans = 0;
    EXPECT_EQ(joined(log, 0, 4, &spans), "123456789abcdefghijkz");
    EXPECT_EQ(spans, 4u);
    EXPECT_EQ(joined(log, 1, 3, &spans), "6789abcdefghijk");
    EXPECT_EQ(spans, 2u);
    for (std::uint64_t i = 0; i < 4; ++i) EXPECT_EQ(log.data(i)[0], "16az"[i]);
}

TEST(FrameLog, TrimForgetsOldEntriesAndFreesTheirChunksButKeepsPositions) {
    FrameLog log(8);
    for (int i = 0; i < 10; ++i) log.append("xyzw", static_cast<std::uint64_t>(i + 1), 0);  // two per chunk
    EXPECT_EQ(log.chunk_count(), 5u);
    log.trim(5);
    EXPECT_EQ(log.begin_index(), 5u);
    EXPECT_EQ(log.end_index(), 10u);
    EXPECT_EQ(log.entry(5).seq, 6u);
    EXPECT_EQ(log.entry(5).offset, 20u);
    EXPECT_EQ(log.chunk_count(), 3u);  // entry 5 shares its chunk with entry 4
    EXPECT_EQ(joined(log, 5, 10), "xyzwxyzwxyzwxyzwxyzw");
    log.trim(2);  // before the beginning: nothing happens
    EXPECT_EQ(log.begin_index(), 5u);
    log.trim(99);  // past the end: clamped, everything goes but the chunk appends continue in
    EXPECT_EQ(log.begin_index(), 10u);
    EXPECT_EQ(log.end_index(), 10u);
    EXPECT_EQ(log.chunk_count(), 1u);
    EXPECT_EQ(log.offset_of(10), 40u);
    log.append("next", 11, 0);
    EXPECT_EQ(log.entry(10).offset, 40u);
    EXPECT_EQ(joined(log, 10, 11), "next");
}

TEST(FrameLog, RecycledChunksHoldNewBytesCorrectly) {
    FrameLog log(8);
    std::string expected;
    for (int round = 0; round < 50; ++round) {
        const std::string frame = "f" + std::to_string(round % 10) + "!";
        log.append(frame, static_cast<std::uint64_t>(round + 1), 0);
        expected += frame;
        if (round % 7 == 6) {
            log.trim(log.end_index() - 1);
            expected = frame;
        }
    }
    EXPECT_EQ(joined(log, log.begin_index(), log.end_index()), expected);
    EXPECT_LE(log.chunk_count(), 4u);
}

}  // namespace
