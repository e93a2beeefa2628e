// websocket_session.hpp: one event subscriber connected at the ws path. Beast performs the
// handshake; after it, crudcast writes frames itself: every event's frame is built once by the bus
// and shared, and a subscriber's queued frames leave in one gather write. One writer per session
// writes whole frames only, control frames (pong, ping, close) between data frames, never inside.
#pragma once

#include <chrono>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>

#include "bus/in_memory_bus.hpp"
#include "config/config.hpp"
#include "proxy/asio.hpp"

namespace crudcast::gateway {

namespace http = beast::http;

struct WebSocketCounters {
    std::atomic<std::uint64_t> connections{0};
    std::atomic<std::int64_t> open{0};
    std::atomic<std::uint64_t> frames_sent{0};
    std::atomic<std::uint64_t> slow_closes{0};
};

class WebSocketSession;

// What the sessions of one worker thread share. Touched only by that thread.
struct WebSocketContext {
    WebSocketContext(asio::any_io_executor ex, const config::Config& cfg, bus::InMemoryBus& b, std::size_t shard_index,
                     WebSocketCounters& c)
        : executor(std::move(ex)), config(cfg), bus(b), shard(shard_index), counters(c) {}

    asio::any_io_executor executor;
    const config::Config& config;
    bus::InMemoryBus& bus;
    std::size_t shard;  // this worker's index
    WebSocketCounters& counters;
    std::list<WebSocketSession*> sessions;  // for drain
    // Sessions with frames queued since the last flush. Deliveries of events that arrive while the
    // thread is busy pile up before the one posted flush runs: under load several events leave
    // in one write per subscriber; when idle, each event is flushed at once.
    std::vector<std::shared_ptr<WebSocketSession>> dirty;
    bool flush_posted = false;
    void flush();
};

// Topics from a ws-path query string: `topic=a,b&topic=c`, percent-decoded, normalised.
std::vector<std::string> topics_from_query(std::string_view target);

class WebSocketSession : public bus::Subscriber, public std::enable_shared_from_this<WebSocketSession> {
public:
    WebSocketSession(tcp::socket socket, std::shared_ptr<WebSocketContext> context, std::string client_address,
                     std::string request_id);
    ~WebSocketSession() override;

    // Completes the handshake for `request` (whose bytes after the head are in `leftover`) and
    // serves the subscriber until it leaves.
    void start(http::request<http::buffer_body> request, beast::flat_buffer leftover);
    void deliver(const bus::Frame& frame, std::uint64_t seq) override;
    // Drain: close with 1001 (going away).
    void go_away();

private:
    asio::awaitable<void> run(http::request<http::buffer_body> request);
    asio::awaitable<void> read_loop();
    asio::awaitable<void> ping_loop();
    void queue_control(std::uint8_t opcode, std::string_view payload);
    // Starts the close handshake: drops queued data, queues a close frame.
    void close_with(std::uint16_t code, std::string_view reason);
    friend struct WebSocketContext;
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

    // Outbound: control frames go first, then data frames, whole frames only.
    std::deque<std::string> control_;
    std::deque<bus::Frame> data_;
    std::size_t data_bytes_ = 0;
    std::vector<bus::Frame> inflight_data_;
    std::vector<std::string> inflight_control_;
    std::vector<asio::const_buffer> gather_;
    std::string scratch_;  // small frames coalesced for one write
    bool writing_ = false;
    bool dirty_ = false;

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
