// websocket_session.hpp: one event subscriber connected at the ws path. Beast performs the
// handshake; after it, crudcast writes frames itself. Each worker thread keeps the frames its
// subscribers still need once, in a FrameLog; a subscriber is a cursor into it, and everything
// from its cursor on leaves in one gather write. One writer per session writes whole frames only,
// control frames (pong, ping, close) between data frames, never inside.
#pragma once

#include <chrono>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>

#include "bus/in_memory_bus.hpp"
#include "config/config.hpp"
#include "gateway/ws/frame_log.hpp"
#include "gateway/ws/ws_counters.hpp"
#include "common/asio.hpp"

namespace crudcast::gateway {

namespace http = beast::http;

class WebSocketSession;

// What the sessions of one worker thread share: the thread's bus sink. Touched only by that thread.
struct WebSocketContext : bus::ShardSink, std::enable_shared_from_this<WebSocketContext> {
    WebSocketContext(asio::any_io_executor ex, const config::Config& cfg, bus::InMemoryBus& b, std::size_t shard_index,
                     WebSocketCounters& c)
        : executor(std::move(ex)), config(cfg), bus(b), shard(shard_index), counters(c) {}

    // Appends the events some subscriber here wants to the log, then lets every subscriber
    // write what it has not sent yet (or closes it with 1013 when it is too far behind).
    void on_events(const std::vector<bus::Delivery>& events) override;

    asio::any_io_executor executor;
    const config::Config& config;
    bus::InMemoryBus& bus;
    std::size_t shard;  // this worker's index
    WebSocketCounters& counters;
    std::list<WebSocketSession*> sessions;  // every session, subscribed or not (for drain)

    FrameLog log;
    static constexpr std::uint32_t no_topic = UINT32_MAX;  // a model nobody here subscribed to by name
    std::unordered_map<std::string, std::uint32_t> topic_ids;  // topics someone here subscribed to
    std::vector<std::vector<WebSocketSession*>> by_topic;     // indexed by topic id
    std::vector<std::string> topic_names;                     // indexed by topic id
    std::vector<std::uint32_t> free_topic_ids;                // ids of topics nobody here wants now
    std::vector<WebSocketSession*> subscribed;            // every subscribed session, "all" included
    std::size_t all_subscribers = 0;

    void subscribe(WebSocketSession* session);
    void unsubscribe(WebSocketSession* session);

private:
    static constexpr std::size_t pass_slice = 32;  // subscribers served per handler (bench: 32 beat 64 and 256)
    void begin_pass();
    void run_pass();
    bool pass_posted_ = false;
    std::size_t pass_next_ = 0;        // index in `subscribed` the pass continues at
    std::uint64_t pass_keep_ = 0;      // the lowest cursor seen in this pass: trim before it
};

// Topics from a ws-path query string: `topic=a,b&topic=c`, percent-decoded, normalised.
std::vector<std::string> topics_from_query(std::string_view target);

class WebSocketSession : public std::enable_shared_from_this<WebSocketSession> {
public:
    WebSocketSession(tcp::socket socket, std::shared_ptr<WebSocketContext> context, std::string client_address,
                     std::string request_id);
    ~WebSocketSession();

    // Completes the handshake for `request` (whose bytes after the head are in `leftover`) and
    // serves the subscriber until it leaves.
    void start(http::request<http::buffer_body> request, beast::flat_buffer leftover);
    // Drain: close with 1001 (going away).
    void go_away();

private:
    asio::awaitable<void> run(http::request<http::buffer_body> request);
    asio::awaitable<void> read_loop();
    asio::awaitable<void> ping_loop();
    void queue_control(std::uint8_t opcode, std::string_view payload);
    // Starts the close handshake: drops queued data, queues a close frame.
    void close_with(std::uint16_t code, std::string_view reason);
    void write_pending();
    void on_written(error_code ec);
    void shutdown_socket();

    tcp::socket socket_;
    std::shared_ptr<WebSocketContext> owner_;  // keeps the thread's context alive as long as any session
    WebSocketContext& context_;
    std::list<WebSocketSession*>::iterator registration_;
    std::string client_address_;
    std::string request_id_;
    std::vector<std::string> topics_;
    beast::flat_buffer read_buffer_;

    // Outbound: control frames go first, then data frames from the log, whole frames only.
    std::deque<std::string> control_;
    std::vector<std::string> inflight_control_;
    std::vector<asio::const_buffer> gather_;
    std::string scratch_;  // control frames, and a topic subscriber's small frames, copied together
    bool writing_ = false;

    // Position in the context's log: entries before cursor_ are sent (or skipped: other topics).
    std::uint64_t cursor_ = 0;
    bool all_ = false;                    // subscribed to "all": every entry is for this session
    std::vector<std::uint32_t> topic_ids_;  // otherwise: these topics
    std::size_t pending_frames_ = 0;      // topic subscribers: frames at or after cursor_ for them
    std::size_t pending_bytes_ = 0;
    bool subscribed_ = false;
    bool dropped_ = false;  // closing: the rest of the log is skipped
    // The data part of the write in flight.
    std::uint64_t inflight_end_ = 0;  // cursor_ once it is written
    std::size_t inflight_frames_ = 0;
    std::size_t inflight_bytes_ = 0;
    std::uint64_t inflight_last_seq_ = 0;

    friend struct WebSocketContext;
    std::size_t backlog_frames() const;
    std::size_t backlog_bytes() const;
    // The log grew: close with 1013 when the backlog is over the limits, else write.
    void on_log_grew();

    bool handshake_done_ = false;  // the 101 is written: frames may follow
    bool close_sent_ = false;      // our close frame is queued or written
    bool close_received_ = false;  // the peer's close frame arrived
    bool discard_input_ = false;   // after a protocol error
    bool closed_ = false;          // socket closed
    std::uint16_t close_code_ = 0;
    std::string close_reason_;
    bool alive_ = true;  // something arrived since the last ping
    asio::steady_timer ping_timer_;
    asio::steady_timer close_timer_;
    std::uint64_t frames_sent_ = 0;
    std::uint64_t last_seq_ = 0;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace crudcast::gateway
