// frame_log.hpp: the frames one worker thread still has to send to its subscribers, stored once.
//
// Every event a thread's subscribers want is appended here once, as its complete WebSocket frame,
// in seq order. A subscriber is only a cursor into the log: nothing is copied or queued per
// subscriber per event. A subscriber of `all` sends the bytes from its cursor to the end, which
// are contiguous (a frame never straddles two chunks, so one or two spans cover a whole backlog);
// a topic subscriber picks the frames of its topics from the same bytes. Entries and bytes before
// the slowest cursor are trimmed; chunks are recycled.
//
// Positions are absolute and never reused: entry indexes count every frame ever appended, byte
// offsets every byte.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string_view>
#include <vector>

namespace crudcast::gateway {

class FrameLog {
public:
    struct Entry {
        std::uint64_t seq;
        std::uint64_t offset;  // absolute byte offset of the frame's first byte
        std::uint32_t size;
        std::uint32_t topic;  // the caller's id for the event's model
    };
    struct Span {
        const char* data;
        std::size_t size;
    };

    explicit FrameLog(std::size_t chunk_bytes = 64 * 1024) : chunk_bytes_(chunk_bytes) {}

    void append(std::string_view frame, std::uint64_t seq, std::uint32_t topic);

    std::uint64_t begin_index() const { return first_index_; }
    std::uint64_t end_index() const { return first_index_ + entries_.size(); }
    std::uint64_t end_offset() const { return end_offset_; }
    // Entry `index`, begin_index() <= index < end_index().
    const Entry& entry(std::uint64_t index) const { return entries_[index - first_index_]; }
    // The byte offset where entry `index` starts; end_offset() for end_index().
    std::uint64_t offset_of(std::uint64_t index) const {
        return index == end_index() ? end_offset_ : entry(index).offset;
    }
    // The frame bytes of entry `index`.
    const char* data(std::uint64_t index) const;
    // Appends to `out` the spans covering the bytes of entries [from, to): as few spans as chunks.
    void spans(std::uint64_t from, std::uint64_t to, std::vector<Span>& out) const;

    // Forgets every entry before `index` (clamped to the log) and the chunks only they used.
    void trim(std::uint64_t index);

    std::size_t chunk_count() const { return chunks_.size(); }

private:
    struct Chunk {
        std::unique_ptr<char[]> bytes;
        std::size_t capacity = 0;
        std::size_t used = 0;
        std::uint64_t base = 0;  // absolute offset of bytes[0]
    };
    const Chunk& chunk_at(std::uint64_t offset) const;

    std::size_t chunk_bytes_;
    std::deque<Chunk> chunks_;
    std::vector<Chunk> spare_;  // emptied chunks of the standard size, reused before allocating
    std::deque<Entry> entries_;
    std::uint64_t first_index_ = 0;
    std::uint64_t end_offset_ = 0;
};

}  // namespace crudcast::gateway
