// frame_writer.hpp: one subscriber's outbound side. Control frames wait in a queue; data frames wait
// in the thread's FrameLog behind the subscriber's cursor. A write gathers the control frames first,
// then the subscriber's frames in seq order, whole frames only (a control frame never lands inside a
// data frame), and offers them to the kernel at once with one sendmsg; only what the kernel does not
// take waits for the socket (an asynchronous write, which the session starts and completes).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio/buffer.hpp>

#include "bus/bus.hpp"
#include "common/asio.hpp"
#include "gateway/ws/frame_codec.hpp"
#include "gateway/ws/frame_log.hpp"
#include "gateway/ws/subscription.hpp"

namespace crudcast::gateway {

class FrameWriter {
public:
    // What the subscriber's connection speaks: WebSocket frames (the log's bytes as they are), or
    // Server-Sent Events, where each event becomes `id: SEQ`, `data: JSON` lines and a blank line.
    enum class Wire : std::uint8_t { websocket, sse };

    // What the write in flight carries.
    struct Batch {
        std::uint64_t end = 0;   // the subscription's cursor once it is written
        std::size_t frames = 0;  // data frames
        std::size_t bytes = 0;   // their bytes (counted for topic subscribers only)
        std::uint64_t last_seq = 0;
        bool close = false;   // our close frame (SSE: our last words) is in it
        bool replay = false;  // its data frames came from the history, not the log
    };

    void set_wire(Wire wire) { wire_ = wire; }
    Wire wire() const { return wire_; }

    // Nothing may be written before the 101 (Beast writes it): the writer starts held.
    void release() { state_ = State::idle; }
    bool ready() const { return state_ == State::idle; }
    bool writing() const { return state_ == State::writing; }

    // A WebSocket control frame (a close frame ends what is sent), or text written before the next
    // data: an SSE comment or gap record, a WebSocket gap message. `close`: nothing follows it.
    void queue_control(std::string frame) {
        const bool close = wire_ == Wire::websocket && opcode_of(frame) == Opcode::close;
        control_.push_back({std::move(frame), close});
    }
    void queue_last_words(std::string text) { control_.push_back({std::move(text), true}); }
    bool has_control() const { return !control_.empty(); }
    // Pongs queued and not yet gathered into a write (the session bounds them).
    std::size_t queued_pongs() const {
        return static_cast<std::size_t>(std::count_if(control_.begin(), control_.end(), [](const Control& c) {
            return !c.close && opcode_of(c.bytes) == Opcode::pong;
        }));
    }

    // Gathers the next write: every queued control frame, then the subscription's frames from its
    // cursor on, up to max_write_bytes. False when there is nothing to send (batch().end may still
    // have moved past other topics' entries); true when a write begins: writing() until finish().
    bool gather(const FrameLog& log, const Subscription& subscription);
    // The same with `frames` (read from the history) as the data: they must live until finish().
    bool gather_replay(const std::vector<bus::Delivery>& frames, const Subscription& subscription);
    const Batch& batch() const { return batch_; }

    // Offers the gathered bytes to the kernel without waiting. True when the write is over (all taken,
    // or `ec` says why not); false when the rest, remaining(), must wait for the socket.
    bool send_now(int fd, error_code& ec);
    const std::vector<asio::const_buffer>& remaining() const { return gather_; }
    // The socket took `sent` more bytes of remaining(); true when nothing remains.
    bool consume(std::size_t sent) {
        drop_sent(sent);
        return gather_.empty();
    }

    // The write completed or failed: the writer is idle again; returns what the write carried.
    Batch finish() {
        state_ = State::idle;
        return batch_;
    }

private:
    enum class State : std::uint8_t { held, idle, writing };
    struct Control {
        std::string bytes;
        bool close;
    };

    void gather_control();
    void gather_all(const FrameLog& log, const Subscription& subscription);
    void gather_topics(const FrameLog& log, const Subscription& subscription);
    // One data frame: as it is (WebSocket) or as an SSE record.
    void add_event(std::uint64_t seq, const char* frame, std::size_t size);
    void add(const char* bytes, std::size_t size, bool copy);
    bool begin_write();
    void drop_sent(std::size_t sent);

    State state_ = State::held;
    Wire wire_ = Wire::websocket;
    // A vector, not a deque: an empty deque still allocates about 600 bytes, and every idle
    // subscriber has one writer.
    std::vector<Control> control_;
    std::vector<asio::const_buffer> gather_;
    std::string scratch_;  // control frames, and a topic subscriber's small frames, copied together
    Batch batch_;
};

}  // namespace crudcast::gateway
