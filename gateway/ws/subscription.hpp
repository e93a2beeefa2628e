// subscription.hpp: one subscriber's place in its thread's FrameLog. A subscriber is only a cursor
// into the log: entries before cursor() are sent (or skipped: other topics). A subscriber of "all"
// wants every entry, so its backlog is the log from its cursor on; a topic subscriber's backlog is
// counted as its topics' entries are appended, because the log does not say it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "gateway/ws/frame_log.hpp"

namespace crudcast::gateway {

class Subscription {
public:
    // Starts at `cursor` (the log's end: what is appended from now on), for every entry or, after
    // add_topic(), for the entries of those topics.
    void start(std::uint64_t cursor, bool all) {
        cursor_ = cursor;
        all_ = all;
        topic_ids_.clear();
        pending_frames_ = 0;
        pending_bytes_ = 0;
    }
    void add_topic(std::uint32_t id) { topic_ids_.push_back(id); }

    bool all() const { return all_; }
    const std::vector<std::uint32_t>& topic_ids() const { return topic_ids_; }
    bool wants(std::uint32_t topic) const {
        return all_ || std::find(topic_ids_.begin(), topic_ids_.end(), topic) != topic_ids_.end();
    }
    std::uint64_t cursor() const { return cursor_; }

    // A topic subscriber: an entry of one of its topics, `frame_bytes` long, was appended.
    void count_appended(std::size_t frame_bytes) {
        ++pending_frames_;
        pending_bytes_ += frame_bytes;
    }
    // Frames and bytes at or after the cursor that are for this subscriber.
    std::size_t backlog_frames(const FrameLog& log) const {
        return all_ ? static_cast<std::size_t>(log.end_index() - cursor_) : pending_frames_;
    }
    std::size_t backlog_bytes(const FrameLog& log) const { return all_ ? held_bytes(log) : pending_bytes_; }
    // What the log keeps because of this cursor, other topics' entries too.
    std::size_t held_bytes(const FrameLog& log) const {
        return static_cast<std::size_t>(log.end_offset() - log.offset_of(cursor_));
    }

    // Entries before `end` are written or skipped.
    void advance(std::uint64_t end) { cursor_ = end; }
    // `frames` of this subscriber's entries, `bytes` long, were written (advance() moves the cursor).
    void count_sent(std::size_t frames, std::size_t bytes) {
        if (all_) return;
        pending_frames_ -= frames;
        pending_bytes_ -= bytes;
    }
    // Closing: nothing more is sent, so nothing is owed.
    void forget_backlog() {
        pending_frames_ = 0;
        pending_bytes_ = 0;
    }

private:
    std::uint64_t cursor_ = 0;
    bool all_ = false;                      // subscribed to "all": every entry is for this subscriber
    std::vector<std::uint32_t> topic_ids_;  // otherwise: these topics
    std::size_t pending_frames_ = 0;        // topic subscribers: frames at or after the cursor for them
    std::size_t pending_bytes_ = 0;
};

}  // namespace crudcast::gateway
