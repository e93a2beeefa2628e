// websocket_session.hpp: one event subscriber connected at the ws path. Beast performs the
// handshake; after it, crudcast writes frames itself. Each worker thread keeps the frames its
// subscribers still need once, in a FrameLog (see subscriber_shard.hpp); a subscriber is a cursor
// into it, and everything from its cursor on leaves in one gather write (frame_writer.hpp). One
// writer per session writes whole frames only, control frames (pong, ping, close) between data
// frames, never inside. A write the socket takes nothing of for ws-write-timeout drops the
// subscriber, whatever the write carries. Frames from the client are decoded by frame_codec.hpp.
// An idle subscriber holds no read buffer: the session waits until its socket is readable, reads
// into its thread's buffer and keeps only a frame that has not fully arrived (bench/memory.sh).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_timer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>

#include "bus/bus.hpp"
#include "common/asio.hpp"
#include "gateway/ws/frame_codec.hpp"
#include "gateway/ws/frame_writer.hpp"
#include "gateway/ws/subscriber_shard.hpp"
#include "gateway/ws/subscription.hpp"
#include "gateway/ws/topics.hpp"
#include "gateway/ws/ws_counters.hpp"

namespace crudcast::gateway {

namespace http = beast::http;

class WebSocketSession : public std::enable_shared_from_this<WebSocketSession> {
public:
    // `topics` replace the query's when the admission narrowed them; `expires`
    // is when the subscriber's credential ends: it is then closed with 1008.
    struct Grant {
        std::optional<std::vector<std::string>> topics;
        std::optional<std::chrono::system_clock::time_point> expires;
        bool sse;  // a GET with Accept: text/event-stream: Server-Sent Events (value-initialised: false)
    };
    WebSocketSession(tcp::socket socket, std::shared_ptr<SubscriberShard> shard, std::string client_address,
                     std::string request_id, Grant grant = {});
    ~WebSocketSession();

    // Completes the handshake for `request` (whose bytes after the head are in `leftover`) and
    // serves the subscriber until it leaves.
    void start(http::request<http::buffer_body> request, beast::flat_buffer leftover);
    // Drain: close with 1001 (going away).
    void go_away();

    // For the thread's SubscriberShard.
    const std::vector<std::string>& topics() const { return topics_; }
    Subscription& subscription() { return subscription_; }
    const Subscription& subscription() const { return subscription_; }
    // The log grew: close with 1013 when the backlog is over the limits, else write.
    void on_log_grew();
    // The bus lost events (a broker was unreachable): `gap_json` goes out ahead of what is queued.
    void on_bus_gap(const std::string& gap_json);
    // The log must keep what this session's cursor points at: it may still send it.
    bool holds_log() const { return state_ == State::handshaking || state_ == State::open || writer_.writing(); }
    // Idle with frames to send before `log_end`: it needs another pass.
    bool can_send_more(std::uint64_t log_end) const {
        return state_ == State::open && writer_.ready() && subscription_.cursor() < log_end;
    }

private:
    enum class State : std::uint8_t {
        handshaking,      // subscribed; Beast writes the 101 (the writer is held until it is out)
        open,             // events go out, control frames both ways
        closing,          // our close frame is queued or written; the rest of the log is skipped
        answering_close,  // the peer closed first; ours is queued: the connection ends once it is written
        failing,          // the peer broke the protocol: ours is queued, its input ignored; once ours is
                          // written we send FIN and wait for its end (or the close grace)
        broken,           // a write failed and the socket is closed; its pending read wait is about to notice
        closed,           // the read side has ended (or the handshake failed)
    };
    bool close_sent() const {
        return state_ == State::closing || state_ == State::answering_close || state_ == State::failing;
    }
    // Nothing more of the log will be sent: the cursor follows the log's end.
    bool skipping_log() const { return close_sent() || state_ == State::broken; }

    // The handshake and what follows it; the coroutine (and the request it holds) ends once the
    // subscriber is open: from then on the session lives in the handlers of its pending waits.
    asio::awaitable<void> run(http::request<http::buffer_body> request);
    asio::awaitable<bool> handshake(http::request<http::buffer_body>& request);
    // Subscribes, and with ?since= / Last-Event-ID plans the replay and queues the gap message.
    void subscribe(const http::request<http::buffer_body>& request);
    // SSE: the 200 head that opens the stream (instead of the WebSocket 101).
    asio::awaitable<error_code> write_sse_head(const http::request<http::buffer_body>& request);
    bool sse() const { return writer_.wire() == FrameWriter::Wire::sse; }
    // Replay: the next frames from the history into replay_batch_; false when none is left to
    // write now (the replay ended: live from here, or the subscriber fell behind the history).
    bool fetch_replay();
    // Live entries the replay already covered (seq <= skip_through_) are passed over.
    void skip_replayed();
    // Waits until the socket is readable; no buffer is held meanwhile.
    void wait_readable();
    // Reads what is there into the thread's buffer and acts on every whole frame in it.
    void on_readable(error_code ec);
    // Acts on the whole frames of partial_ followed by `input`, and keeps only an incomplete last
    // frame in partial_; true when the connection is over. SSE: the input is dropped.
    bool take_input(std::span<char> input);
    // The connection is over: unsubscribe, stop the timers, close, log the disconnect.
    void finish();
    // Acts on one frame from the peer; true when the connection is over.
    bool on_frame(const Frame& frame);
    bool on_peer_close(std::span<const char> payload);
    void on_ping(std::span<const char> payload);
    // The peer broke the protocol (or a limit): our close goes out and its input is ignored from here on.
    void fail(const ProtocolError& error);
    void wait_ping();
    void on_ping_timer(error_code ec);
    // The timer in `slot`, made on first use.
    asio::steady_timer& timer(std::unique_ptr<asio::steady_timer>& slot);
    // Closes with 1008 when the credential's time is up, so the client reconnects with a new one.
    asio::awaitable<void> expire_at(std::chrono::system_clock::time_point end);
    void queue_control(std::string frame);
    // Starts the close handshake: drops queued data, queues a close frame, enters `next`.
    void close_with(std::uint16_t code, std::string_view reason, State next = State::closing);
    void close_for_backlog(std::size_t frames, std::size_t bytes, std::size_t held);
    void write_pending();
    // The rest of a write the kernel did not take at once, piece by piece: each piece is progress.
    void write_rest();
    void watch_write();
    std::int64_t unsent_bytes();  // the socket's send queue (SIOCOUTQ); -1 when unknown
    void on_write_timer();
    void on_written(error_code ec);
    void shutdown_socket();

    tcp::socket socket_;
    std::shared_ptr<SubscriberShard> owner_;  // keeps the thread's shard alive as long as any session
    SubscriberShard& shard_;
    SubscriberShard::Registration registration_;
    std::string client_address_;
    std::string request_id_;
    std::vector<std::string> topics_;
    // Only the start of a frame whose end has not arrived yet; empty (no memory) while idle.
    std::string partial_;
    MessageAssembler messages_;  // the order, size and UTF-8 of the client's data frames
    bool discarding_ = false;    // after fail(): input is read and dropped
    State state_ = State::handshaking;

    Subscription subscription_;  // position in the shard's log
    FrameWriter writer_;

    // Resuming (?since=): the history after replay_after_ is written first, paced by the socket,
    // until the reader reaches its end; the log's entries up to skip_through_ (what the history
    // served, and everything up to the position it subscribed at) are passed over.
    std::optional<std::uint64_t> since_;
    std::optional<bus::Gap> gap_;
    bool replaying_ = false;
    std::uint64_t replay_after_ = 0;
    std::uint64_t skip_through_ = 0;
    std::vector<bus::Delivery> replay_batch_;
    std::uint64_t replayed_ = 0;

    std::uint16_t close_code_ = 0;
    std::string close_reason_;
    bool alive_ = true;  // something arrived since the last ping (liveness, apart from the state)
    asio::steady_timer ping_timer_;
    // The close grace and ws-write-timeout (armed while a write waits for the socket): made the
    // first time they are needed, so that an idle subscriber carries neither.
    std::unique_ptr<asio::steady_timer> close_timer_;
    std::unique_ptr<asio::steady_timer> write_timer_;
    Grant grant_;
    // Only for a subscriber whose credential ends (most have none): no timer's memory for the others.
    std::unique_ptr<asio::system_timer> expiry_timer_;
    bool write_timer_armed_ = false;
    std::chrono::steady_clock::time_point write_progress_;
    std::int64_t write_unsent_ = -1;  // the send queue when progress was last looked for
    std::uint64_t frames_sent_ = 0;
    std::uint64_t last_seq_ = 0;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace crudcast::gateway
