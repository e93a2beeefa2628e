// websocket_session.cpp: see websocket_session.hpp.
#include "gateway/ws/websocket_session.hpp"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <tuple>

#include <boost/asio/post.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "bus/bus.hpp"
#include "common/json_text.hpp"
#include "common/log.hpp"
#include "common/text.hpp"

namespace crudcast::gateway {

using config::LogLevel;
namespace websocket = beast::websocket;

WebSocketSession::WebSocketSession(tcp::socket socket, std::shared_ptr<SubscriberShard> shard,
                                   std::string client_address, std::string request_id, Grant grant)
    : socket_(std::move(socket)),
      owner_(std::move(shard)),
      shard_(*owner_),
      client_address_(std::move(client_address)),
      request_id_(std::move(request_id)),
      ping_timer_(socket_.get_executor()),
      grant_(std::move(grant)) {
    if (grant_.sse) writer_.set_wire(FrameWriter::Wire::sse);
    // `open` was counted when the place was reserved (reserve_subscriber, before the handoff).
    registration_ = shard_.add_session(this);
    shard_.counters().connections.fetch_add(1, std::memory_order_relaxed);
}

WebSocketSession::~WebSocketSession() {
    shard_.counters().open.fetch_sub(1, std::memory_order_relaxed);
    shard_.remove_session(registration_);
}

void WebSocketSession::start(http::request<http::buffer_body> request, beast::flat_buffer leftover) {
    // Bytes the client sent after its request (its first frames, if any): kept as they are,
    // without the handshake buffer's spare room.
    const auto bytes = leftover.data();
    partial_.assign(static_cast<const char*>(bytes.data()), bytes.size());
    asio::co_spawn(
        socket_.get_executor(),
        [self = shared_from_this(), req = std::move(request)]() mutable { return self->run(std::move(req)); },
        asio::detached);
}

asio::awaitable<void> WebSocketSession::run(http::request<http::buffer_body> request) {
    if (!co_await handshake(request)) co_return;
    error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    if (sse()) {
        // No pong in SSE: a peer that vanished (a dropped NAT entry, a sleeping phone) is found by
        // its unacknowledged heartbeats, within ws-write-timeout rather than TCP's ~15 minutes.
        const unsigned timeout_ms = static_cast<unsigned>(shard_.config().ws_write_timeout.count());
        ::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof timeout_ms);
    }
    const std::string since = since_ ? std::to_string(*since_) : std::string("-");
    const std::string gap = gap_ ? std::string(bus::gap_reason_name(gap_->reason)) : std::string("-");
    log::write(
        LogLevel::info, sse() ? "sse connected" : "websocket connected",
        {{"client", client_address_}, {"topics", join(topics_)}, {"since", since}, {"gap", gap}, {"rid", request_id_}});
    write_pending();  // what was published during the handshake
    wait_ping();
    if (grant_.expires) {
        asio::co_spawn(
            socket_.get_executor(), [self = shared_from_this(), end = *grant_.expires] { return self->expire_at(end); },
            asio::detached);
    }
    // Reads never block: a wait for readability, then whatever is there (on_readable).
    socket_.non_blocking(true, ignored);
    // Frames that came with the request are acted on before the first wait.
    if (!partial_.empty() && take_input({})) {
        finish();
        co_return;
    }
    // Bytes that reached the socket during the handshake bring no new readiness: read first.
    on_readable({});
}

void WebSocketSession::finish() {
    state_ = State::closed;
    shard_.unsubscribe(this);
    ping_timer_.cancel();
    if (close_timer_) close_timer_->cancel();
    if (write_timer_) write_timer_->cancel();
    if (expiry_timer_) expiry_timer_->cancel();
    error_code ignored;
    socket_.close(ignored);
    std::string().swap(partial_);
    const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    log::write(LogLevel::info, sse() ? "sse disconnected" : "websocket disconnected",
               {{"client", client_address_},
                {"topics", join(topics_)},
                {"frames", frames_sent_},
                {"replayed", replayed_},
                {"last_seq", last_seq_},
                {"close_code", sse() ? std::string("-") : std::to_string(close_code_)},
                {"close_reason", close_reason_.empty() ? std::string("-") : close_reason_},
                {"seconds", seconds},
                {"rid", request_id_}});
}

asio::awaitable<bool> WebSocketSession::handshake(http::request<http::buffer_body>& request) {
    auto topics =
        grant_.topics ? std::optional(bus::normalize_topics(*grant_.topics)) : topics_from_query(request.target());
    if (!topics) {  // not reached: the proxy answers such a target 400 (subscription_refusal) before the handoff
        state_ = State::closed;
        shutdown_socket();
        co_return false;
    }
    topics_ = std::move(*topics);
    // Subscribed before the 101 goes out: every event published once the client holds the 101 is
    // delivered, also one its own next request causes. Nothing is written before the 101.
    subscribe(request);
    error_code ec;
    if (sse()) {
        ec = co_await write_sse_head(request);
    } else {
        // Beast validates the upgrade and writes the 101; frames after it are crudcast's own.
        websocket::stream<tcp::socket&> ws(socket_);
        ws.set_option(websocket::stream_base::decorator(
            [](websocket::response_type& res) { res.set(http::field::server, "crudcast"); }));
        request.body().data = nullptr;
        std::tie(ec) = co_await ws.async_accept(request, use_nothrow);
    }
    if (ec) {
        log::write(LogLevel::info, sse() ? "sse handshake failed" : "websocket handshake failed",
                   {{"client", client_address_}, {"rid", request_id_}, {"error", ec.message()}});
        state_ = State::closed;
        shard_.unsubscribe(this);
        if (close_timer_) close_timer_->cancel();
        error_code ignored;
        socket_.close(ignored);
        co_return false;
    }
    if (state_ == State::handshaking) state_ = State::open;  // else a drain began meanwhile: closing
    writer_.release();
    co_return true;
}

asio::steady_timer& WebSocketSession::timer(std::unique_ptr<asio::steady_timer>& slot) {
    if (!slot) slot = std::make_unique<asio::steady_timer>(socket_.get_executor());
    return *slot;
}

asio::awaitable<void> WebSocketSession::expire_at(std::chrono::system_clock::time_point end) {
    expiry_timer_ = std::make_unique<asio::system_timer>(socket_.get_executor());
    // Ended before this coroutine first ran: nothing would cancel the wait, which would keep the
    // session alive until the token's end.
    if (state_ == State::closed) co_return;
    expiry_timer_->expires_at(end);
    auto [ec] = co_await expiry_timer_->async_wait(use_nothrow);
    if (ec || state_ == State::closed || close_sent()) co_return;
    shard_.counters().credential_expiries.fetch_add(1, std::memory_order_relaxed);
    log::write(LogLevel::info,
               sse() ? "sse credential expired; closing it" : "websocket credential expired; closing with 1008",
               {{"client", client_address_}, {"rid", request_id_}});
    close_with(1008, "token expired");
}

void WebSocketSession::queue_control(std::string frame) {
    if (state_ == State::closed || (close_sent() && (sse() || opcode_of(frame) != Opcode::close))) return;
    writer_.queue_control(std::move(frame));
    if (!writer_.writing()) write_pending();
}

void WebSocketSession::close_with(std::uint16_t code, std::string_view reason, State next) {
    if (close_sent() || state_ == State::closed) return;
    state_ = next;
    if (close_code_ == 0) {
        close_code_ = code;
        close_reason_ = std::string(reason);
    }
    // Frames not written yet are dropped; a write in flight finishes first (whole frames only).
    subscription_.forget_backlog();
    if (!writer_.writing()) replay_batch_.clear();  // a write in flight still points into it
    replaying_ = false;
    if (sse()) {
        // No close frame in SSE: a comment says why (curl shows it), then the connection ends; an
        // EventSource reconnects by itself and resumes with Last-Event-ID.
        writer_.queue_last_words(": closed " + std::to_string(code) + " " + std::string(reason) + "\n\n");
        if (!writer_.writing()) write_pending();
    } else {
        queue_control(close_frame(code, reason));
    }
    // The close handshake gets a few seconds, then the connection ends regardless, also when a
    // peer that stopped reading keeps our last write (and the log behind it) from completing.
    timer(close_timer_).expires_after(shard_.config().ws_close_timeout);
    close_timer_->async_wait([self = shared_from_this()](error_code e) {
        if (!e) self->shutdown_socket();
    });
}

void WebSocketSession::go_away() { close_with(1001, "crudcast is shutting down"); }

void WebSocketSession::on_log_grew() {
    if (state_ == State::closed) return;
    const auto& log = shard_.log();
    if (skipping_log()) {
        if (!writer_.writing()) subscription_.advance(log.end_index());
        return;
    }
    if (replaying_) skip_replayed();  // what the history serves is not a backlog
    const auto& cfg = shard_.config();
    const std::size_t frames = subscription_.backlog_frames(log);
    const std::size_t bytes = subscription_.backlog_bytes(log);
    // A topic subscriber whose socket has not taken our last write keeps every frame since its
    // cursor in the log, other topics' too: that is bounded by the same limit.
    const std::size_t held = subscription_.held_bytes(log);
    if (frames > cfg.ws_max_queue_messages || bytes > cfg.ws_max_queue_bytes || held > cfg.ws_max_queue_bytes) {
        close_for_backlog(frames, bytes, held);
        return;
    }
    if (!writer_.writing()) write_pending();
}

void WebSocketSession::close_for_backlog(std::size_t frames, std::size_t bytes, std::size_t held) {
    const auto& cfg = shard_.config();
    const bool full = frames > cfg.ws_max_queue_messages || bytes > cfg.ws_max_queue_bytes;
    shard_.counters().slow_closes.fetch_add(1, std::memory_order_relaxed);
    log::write(LogLevel::warn,
               sse() ? "sse subscriber too slow; closing it" : "websocket subscriber too slow; closing it with 1013",
               {{"client", client_address_},
                {"topics", join(topics_)},
                {"queued", frames},
                {"queued_bytes", bytes},
                {"held_bytes", held},
                {"last_seq", last_seq_},
                {"rid", request_id_}});
    close_with(1013, full ? "subscriber too slow: outbound queue full (ws-max-queue-messages/bytes)"
                          : "subscriber too slow: not reading while ws-max-queue-bytes of events went by");
}

void WebSocketSession::write_pending() {
    if (!writer_.ready() || state_ == State::closed) return;
    const auto& log = shard_.log();
    bool replay = false;
    if (replaying_ && !skipping_log()) {
        replay = !replay_batch_.empty() || fetch_replay();
        // A subscriber that fell behind the history was closed in fetch_replay: its close frame may
        // already be on its way (that write started from here, one call down).
        if (!writer_.ready() || state_ == State::closed) return;
    }
    if (skipping_log()) subscription_.advance(log.end_index());
    if (replay) {
        writer_.gather_replay(replay_batch_, subscription_);
    } else {
        if (skip_through_ != 0) skip_replayed();
        if (!writer_.has_control() && subscription_.cursor() == log.end_index()) return;
        if (!writer_.gather(log, subscription_)) {  // only entries of other topics
            subscription_.advance(writer_.batch().end);
            return;
        }
    }
    error_code ec;
    if (writer_.send_now(socket_.native_handle(), ec)) {
        on_written(ec);
        return;
    }
    write_progress_ = std::chrono::steady_clock::now();
    write_unsent_ = unsent_bytes();
    watch_write();
    write_rest();
}

void WebSocketSession::write_rest() {
    socket_.async_write_some(writer_.remaining(), [self = shared_from_this()](error_code e, std::size_t n) {
        if (!e && !self->writer_.consume(n)) {
            self->write_progress_ = std::chrono::steady_clock::now();
            self->write_rest();
            return;
        }
        self->on_written(e);
    });
}

std::int64_t WebSocketSession::unsent_bytes() {
    int unsent = 0;  // sent or not, what the peer has not acknowledged yet
    if (::ioctl(socket_.native_handle(), SIOCOUTQ, &unsent) != 0) return -1;
    return unsent;
}

void WebSocketSession::watch_write() {
    // One wait at a time: progress only moves write_progress_, and the timer, when it fires, waits
    // again for what is left of the timeout counted from there.
    if (write_timer_armed_) return;
    write_timer_armed_ = true;
    timer(write_timer_).expires_at(write_progress_ + shard_.config().ws_write_timeout);
    write_timer_->async_wait([self = shared_from_this()](error_code e) {
        self->write_timer_armed_ = false;
        if (!e) self->on_write_timer();
    });
}

void WebSocketSession::on_write_timer() {
    if (state_ == State::closed || !writer_.writing()) return;
    const auto timeout = shard_.config().ws_write_timeout;
    const auto now = std::chrono::steady_clock::now();
    // The kernel wakes our write only once much of its send buffer is free; a peer that reads
    // slowly still takes bytes from that buffer, and that counts as progress too.
    const auto unsent = unsent_bytes();
    if (unsent >= 0 && unsent < write_unsent_) write_progress_ = now;
    write_unsent_ = unsent;
    if (now - write_progress_ < timeout) {
        watch_write();
        return;
    }
    // The peer takes nothing: no close frame can reach it either. Reset the connection, so that the
    // kernel does not keep the unsent bytes for it; the write fails and the read side ends.
    shard_.counters().write_timeouts.fetch_add(1, std::memory_order_relaxed);
    if (close_code_ == 0) {
        close_code_ = 1006;
        close_reason_ = "no write progress within ws-write-timeout";
    }
    const auto stalled_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - write_progress_).count();
    log::write(LogLevel::info,
               sse() ? "sse subscriber takes nothing of our writes; dropping it"
                     : "websocket subscriber takes nothing of our writes; dropping it",
               {{"client", client_address_},
                {"topics", join(topics_)},
                {"stalled_ms", static_cast<std::int64_t>(stalled_ms)},
                {"last_seq", last_seq_},
                {"rid", request_id_}});
    error_code ignored;
    socket_.set_option(asio::socket_base::linger(true, 0), ignored);
    socket_.close(ignored);
}

void WebSocketSession::on_written(error_code ec) {
    const auto batch = writer_.finish();
    if (ec) {
        // Nothing more can be sent; the log need not keep anything for it.
        if (state_ == State::handshaking || state_ == State::open) state_ = State::broken;
        error_code ignored;
        socket_.close(ignored);  // the read side ends and logs the disconnect
        return;
    }
    frames_sent_ += batch.frames;
    shard_.counters().frames_sent.fetch_add(batch.frames, std::memory_order_relaxed);
    if (batch.frames > 0) last_seq_ = batch.last_seq;
    if (batch.replay) {
        replayed_ += batch.frames;
        shard_.counters().replayed_frames.fetch_add(batch.frames, std::memory_order_relaxed);
        replay_batch_.clear();
        if (state_ != State::closed && !batch.close) {
            // The next batch from a handler of its own: a fast reader of a long history would
            // otherwise recurse here once per batch, and other sessions wait meanwhile.
            asio::post(socket_.get_executor(), [self = shared_from_this()] { self->write_pending(); });
            return;
        }
    } else {
        subscription_.advance(batch.end);
        if (!skipping_log()) subscription_.count_sent(batch.frames, batch.bytes);
    }
    if (state_ == State::closed) return;  // the session has ended meanwhile
    if (batch.close) {
        // Both closes exchanged: done. After a protocol error: FIN now, the read side waits for the
        // peer's. Otherwise the close timer ends the wait for the peer's close. SSE: over.
        if (state_ == State::answering_close || sse()) shutdown_socket();
        if (state_ == State::failing) {
            error_code ignored;
            socket_.shutdown(tcp::socket::shutdown_send, ignored);
        }
        return;
    }
    write_pending();
}

void WebSocketSession::shutdown_socket() {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
}

}  // namespace crudcast::gateway
