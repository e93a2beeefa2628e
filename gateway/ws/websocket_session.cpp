// websocket_session.cpp: see websocket_session.hpp. Frame layout per RFC 6455 §5.2.
#include "gateway/ws/websocket_session.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "common/log.hpp"

namespace crudcast::gateway {

using config::LogLevel;
namespace websocket = beast::websocket;

namespace {

constexpr std::size_t max_client_frame = 64 * 1024;  // subscribers have nothing big to send
constexpr std::size_t coalesce_below = 4096;          // frames smaller than this are copied together
constexpr std::size_t max_write_bytes = 512 * 1024;   // one write carries at most this much
constexpr auto close_grace = std::chrono::seconds(5);
constexpr std::size_t max_iov = 64;  // gather lists up to this long are sent directly

enum Opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close_op = 8, ping = 9, pong = 10 };

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else if (s[i] == '+') {
            out += ' ';
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) {
        if (!out.empty()) out += ',';
        out += s;
    }
    return out;
}

}  // namespace

std::vector<std::string> topics_from_query(std::string_view target) {
    std::vector<std::string> topics;
    const auto q = target.find('?');
    if (q != std::string_view::npos) {
        auto query = target.substr(q + 1);
        while (!query.empty()) {
            const auto amp = query.find('&');
            auto pair = query.substr(0, amp);
            query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
            const auto eq = pair.find('=');
            if (percent_decode(pair.substr(0, eq)) != "topic" || eq == std::string_view::npos) continue;
            auto value = percent_decode(pair.substr(eq + 1));
            std::string_view rest = value;
            while (!rest.empty()) {
                const auto comma = rest.find(',');
                auto topic = rest.substr(0, comma);
                while (!topic.empty() && topic.front() == ' ') topic.remove_prefix(1);
                while (!topic.empty() && topic.back() == ' ') topic.remove_suffix(1);
                if (!topic.empty()) topics.emplace_back(topic);
                rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            }
        }
    }
    return bus::normalize_topics(topics);
}

void WebSocketContext::subscribe(WebSocketSession* session) {
    session->cursor_ = log.end_index();
    session->subscribed_ = true;
    if (session->topics_.size() == 1 && session->topics_.front() == "all") {
        session->all_ = true;
        ++all_subscribers;
    } else {
        for (const auto& topic : session->topics_) {
            auto [it, added] = topic_ids.try_emplace(topic, 0);
            if (added) {
                if (free_topic_ids.empty()) {
                    it->second = static_cast<std::uint32_t>(by_topic.size());
                    by_topic.emplace_back();
                    topic_names.emplace_back();
                } else {
                    it->second = free_topic_ids.back();
                    free_topic_ids.pop_back();
                }
                topic_names[it->second] = topic;
            }
            by_topic[it->second].push_back(session);
            session->topic_ids_.push_back(it->second);
        }
    }
    subscribed.push_back(session);
}

void WebSocketContext::unsubscribe(WebSocketSession* session) {
    if (auto it = std::find(subscribed.begin(), subscribed.end(), session); it != subscribed.end()) {
        // A pass in progress must not skip the session that moves into this one's place.
        if (pass_posted_ && static_cast<std::size_t>(it - subscribed.begin()) < pass_next_) --pass_next_;
        subscribed.erase(it);
    }
    session->subscribed_ = false;
    if (session->all_) {
        --all_subscribers;
    } else {
        for (const auto id : session->topic_ids_) {
            std::erase(by_topic[id], session);
            if (by_topic[id].empty()) {
                // A later subscriber of another topic may get this id: it starts at the log's end,
                // after every entry tagged with the old topic.
                topic_ids.erase(topic_names[id]);
                topic_names[id].clear();
                free_topic_ids.push_back(id);
            }
        }
    }
    if (subscribed.empty()) log.trim(log.end_index());
}

void WebSocketContext::on_events(const std::vector<bus::Delivery>& events) {
    bool grew = false;
    for (const auto& event : events) {
        std::uint32_t id = no_topic;
        if (auto it = topic_ids.find(event.model); it != topic_ids.end()) id = it->second;
        if (id == no_topic && all_subscribers == 0) continue;  // nobody on this thread wants it
        log.append(*event.frame, event.seq, id);
        grew = true;
        if (id != no_topic) {
            for (auto* session : by_topic[id]) {
                ++session->pending_frames_;
                session->pending_bytes_ += event.frame->size();
            }
        }
    }
    if (!grew || pass_posted_) return;  // a pass in progress reaches every session
    begin_pass();
    run_pass();
}

void WebSocketContext::begin_pass() {
    pass_next_ = 0;
    pass_keep_ = log.end_index();
    pass_posted_ = true;
}

void WebSocketContext::run_pass() {
    // A pass lets every subscriber write what it has not sent (a write the kernel takes whole
    // completes in place). It runs in slices, each a handler of its own, so that the thread's HTTP
    // requests and events that arrive meanwhile are handled between slices, not after the pass.
    const std::size_t stop = std::min(subscribed.size(), pass_next_ + pass_slice);
    for (; pass_next_ < stop; ++pass_next_) {
        auto* session = subscribed[pass_next_];
        session->on_log_grew();
        if ((!session->dropped_ && !session->closed_) || session->writing_)
            pass_keep_ = std::min(pass_keep_, session->cursor_);
    }
    if (pass_next_ < subscribed.size()) {
        asio::post(executor, [self = shared_from_this()] { self->run_pass(); });
        return;
    }
    pass_posted_ = false;
    // Sessions visited before frames were appended during this pass get another pass.
    const bool again = std::any_of(subscribed.begin(), subscribed.end(),
                                   [&](const WebSocketSession* s) {
                                       return s->handshake_done_ && !s->writing_ && !s->dropped_ && !s->closed_ &&
                                              s->cursor_ < log.end_index();
                                   });
    log.trim(pass_keep_);
    if (again) {
        begin_pass();
        asio::post(executor, [self = shared_from_this()] { self->run_pass(); });
    }
}

WebSocketSession::WebSocketSession(tcp::socket socket, std::shared_ptr<WebSocketContext> context,
                                   std::string client_address, std::string request_id)
    : socket_(std::move(socket)),
      owner_(std::move(context)),
      context_(*owner_),
      client_address_(std::move(client_address)),
      request_id_(std::move(request_id)),
      ping_timer_(socket_.get_executor()),
      close_timer_(socket_.get_executor()) {
    registration_ = context_.sessions.insert(context_.sessions.end(), this);
    context_.counters.open.fetch_add(1, std::memory_order_relaxed);
    context_.counters.connections.fetch_add(1, std::memory_order_relaxed);
}

WebSocketSession::~WebSocketSession() {
    context_.counters.open.fetch_sub(1, std::memory_order_relaxed);
    context_.sessions.erase(registration_);
}

void WebSocketSession::start(http::request<http::buffer_body> request, beast::flat_buffer leftover) {
    read_buffer_ = std::move(leftover);
    asio::co_spawn(socket_.get_executor(),
                   [self = shared_from_this(), req = std::move(request)]() mutable { return self->run(std::move(req)); },
                   asio::detached);
}

asio::awaitable<void> WebSocketSession::run(http::request<http::buffer_body> request) {
    topics_ = topics_from_query(request.target());
    // Subscribed before the 101 goes out: every event published once the client holds the 101 is
    // delivered, also one its own next request causes. Nothing is written before the 101.
    context_.subscribe(this);
    context_.bus.subscribe(context_.shard, topics_);
    {
        // Beast validates the upgrade and writes the 101; frames after it are crudcast's own.
        websocket::stream<tcp::socket&> ws(socket_);
        ws.set_option(websocket::stream_base::decorator(
            [](websocket::response_type& res) { res.set(http::field::server, "crudcast"); }));
        request.body().data = nullptr;
        auto [ec] = co_await ws.async_accept(request, use_nothrow);
        if (ec) {
            log::write(LogLevel::info, "websocket handshake failed",
                       {{"client", client_address_}, {"rid", request_id_}, {"error", ec.message()}});
            closed_ = true;
            context_.unsubscribe(this);
            context_.bus.unsubscribe(context_.shard, topics_);
            close_timer_.cancel();
            error_code ignored;
            socket_.close(ignored);
            co_return;
        }
    }
    handshake_done_ = true;
    error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    log::write(LogLevel::info, "websocket connected",
               {{"client", client_address_}, {"topics", join(topics_)}, {"rid", request_id_}});
    write_pending();  // what was published during the handshake
    asio::co_spawn(socket_.get_executor(), [self = shared_from_this()] { return self->ping_loop(); }, asio::detached);

    co_await read_loop();

    closed_ = true;
    context_.unsubscribe(this);
    context_.bus.unsubscribe(context_.shard, topics_);
    ping_timer_.cancel();
    close_timer_.cancel();
    socket_.close(ignored);
    const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    log::write(LogLevel::info, "websocket disconnected",
               {{"client", client_address_}, {"topics", join(topics_)}, {"frames", frames_sent_},
                {"last_seq", last_seq_}, {"close_code", static_cast<unsigned>(close_code_)},
                {"close_reason", close_reason_.empty() ? std::string("-") : close_reason_},
                {"seconds", seconds}, {"rid", request_id_}});
}

asio::awaitable<void> WebSocketSession::read_loop() {
    for (;;) {
        if (discard_input_) read_buffer_.consume(read_buffer_.size());
        // Parse every complete frame in the buffer; read more when a frame is incomplete.
        const auto* p = static_cast<const unsigned char*>(read_buffer_.data().data());
        const std::size_t have = read_buffer_.size();
        std::size_t need = 2;
        if (have >= 2 && !discard_input_) {
            const std::uint8_t len7 = p[1] & 0x7f;
            const bool masked = (p[1] & 0x80) != 0;
            std::size_t header = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
            need = header;
            if (have >= header) {
                std::uint64_t len = len7;
                if (len7 == 126) len = (std::uint64_t(p[2]) << 8) | p[3];
                if (len7 == 127) {
                    len = 0;
                    for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
                }
                const std::uint8_t opcode = p[0] & 0x0f;
                if (!masked || len > max_client_frame || (opcode >= 8 && len > 125)) {
                    // Protocol error: our close frame goes out; input is ignored from here on and the
                    // writer ends the connection after a short grace.
                    close_with(masked ? 1009 : 1002, masked ? "frame too large" : "client frames must be masked");
                    discard_input_ = true;
                    continue;
                }
                need = header + static_cast<std::size_t>(len);
                if (have >= need) {
                    std::string payload(reinterpret_cast<const char*>(p + header), static_cast<std::size_t>(len));
                    const unsigned char* mask = p + header - 4;
                    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] ^= static_cast<char>(mask[i % 4]);
                    read_buffer_.consume(need);
                    alive_ = true;
                    switch (opcode) {
                        case ping: queue_control(pong, payload); break;
                        case pong: break;
                        case close_op: {
                            close_received_ = true;
                            std::uint16_t code = 1000;
                            if (payload.size() >= 2)
                                code = static_cast<std::uint16_t>((std::uint8_t(payload[0]) << 8) | std::uint8_t(payload[1]));
                            if (!close_sent_) {
                                close_with(code == 1005 || code == 1006 || code == 1015 ? 1000 : code, "");
                                close_code_ = code;
                                close_reason_ = payload.size() > 2 ? payload.substr(2) : std::string("client closed");
                            } else {
                                error_code ignored;  // both closes exchanged: done
                                socket_.close(ignored);
                                co_return;
                            }
                            break;
                        }
                        case continuation:
                        case text:
                        case binary: break;  // client messages are not needed for subscribing: ignored
                        default: close_with(1002, "unknown opcode"); break;
                    }
                    continue;
                }
            }
        }
        (void)need;
        auto [ec, n] = co_await socket_.async_read_some(read_buffer_.prepare(std::max<std::size_t>(4096, need)),
                                                        use_nothrow);
        if (ec) {
            if (close_code_ == 0) {
                close_code_ = 1006;
                close_reason_ = ec == asio::error::eof ? "connection closed without a close frame" : ec.message();
            }
            co_return;
        }
        read_buffer_.commit(n);
    }
}

asio::awaitable<void> WebSocketSession::ping_loop() {
    for (;;) {
        ping_timer_.expires_after(context_.config.ws_ping_interval);
        auto [ec] = co_await ping_timer_.async_wait(use_nothrow);
        if (ec || closed_ || close_sent_) co_return;
        if (!alive_) {
            close_code_ = 1006;
            close_reason_ = "no pong within ws-ping-interval";
            log::write(LogLevel::info, "websocket peer unresponsive; closing",
                       {{"client", client_address_}, {"rid", request_id_}});
            error_code ignored;
            socket_.close(ignored);
            co_return;
        }
        alive_ = false;
        queue_control(ping, "");
    }
}

void WebSocketSession::queue_control(std::uint8_t opcode, std::string_view payload) {
    if (closed_ || (close_sent_ && opcode != close_op)) return;
    std::string frame;
    frame += static_cast<char>(0x80 | opcode);
    frame += static_cast<char>(payload.size());  // control payloads are at most 125 bytes
    frame.append(payload);
    control_.push_back(std::move(frame));
    if (!writing_) write_pending();
}

void WebSocketSession::close_with(std::uint16_t code, std::string_view reason) {
    if (close_sent_ || closed_) return;
    close_sent_ = true;
    if (close_code_ == 0) {
        close_code_ = code;
        close_reason_ = std::string(reason);
    }
    // Frames not written yet are dropped; a write in flight finishes first (whole frames only).
    dropped_ = true;
    pending_frames_ = 0;
    pending_bytes_ = 0;
    std::string payload;
    payload += static_cast<char>(code >> 8);
    payload += static_cast<char>(code & 0xff);
    payload.append(reason.substr(0, 123));
    queue_control(close_op, payload);
    // The close handshake gets a few seconds, then the connection ends regardless, also when a
    // peer that stopped reading keeps our last write (and the log behind it) from completing.
    close_timer_.expires_after(close_grace);
    close_timer_.async_wait([self = shared_from_this()](error_code e) {
        if (!e) self->shutdown_socket();
    });
}

void WebSocketSession::go_away() { close_with(1001, "crudcast is shutting down"); }

std::size_t WebSocketSession::backlog_frames() const {
    return all_ ? static_cast<std::size_t>(context_.log.end_index() - cursor_) : pending_frames_;
}

std::size_t WebSocketSession::backlog_bytes() const {
    const auto& log = context_.log;
    return all_ ? static_cast<std::size_t>(log.end_offset() - log.offset_of(cursor_)) : pending_bytes_;
}

void WebSocketSession::on_log_grew() {
    if (closed_) return;
    if (dropped_) {
        if (!writing_) cursor_ = context_.log.end_index();
        return;
    }
    const auto& cfg = context_.config;
    const auto& log = context_.log;
    const std::size_t frames = backlog_frames();
    const std::size_t bytes = backlog_bytes();
    // A topic subscriber whose socket has not taken our last write keeps every frame since its
    // cursor in the log, other topics' too: that is bounded by the same limit.
    const std::size_t held = static_cast<std::size_t>(log.end_offset() - log.offset_of(cursor_));
    const bool full = frames > cfg.ws_max_queue_messages || bytes > cfg.ws_max_queue_bytes;
    if (full || held > cfg.ws_max_queue_bytes) {
        context_.counters.slow_closes.fetch_add(1, std::memory_order_relaxed);
        log::write(LogLevel::warn, "websocket subscriber too slow; closing it with 1013",
                   {{"client", client_address_}, {"topics", join(topics_)}, {"queued", frames},
                    {"queued_bytes", bytes}, {"held_bytes", held}, {"last_seq", last_seq_}, {"rid", request_id_}});
        close_with(1013, full ? "subscriber too slow: outbound queue full (ws-max-queue-messages/bytes)"
                              : "subscriber too slow: not reading while ws-max-queue-bytes of events went by");
        return;
    }
    if (!writing_) write_pending();
}

void WebSocketSession::write_pending() {
    if (writing_ || closed_ || !handshake_done_) return;
    auto& log = context_.log;
    if (dropped_) cursor_ = log.end_index();
    if (control_.empty() && cursor_ == log.end_index()) return;
    gather_.clear();
    scratch_.clear();
    inflight_control_.clear();
    inflight_end_ = cursor_;
    inflight_frames_ = 0;
    inflight_bytes_ = 0;
    // Control frames first (between whole frames, never inside one), then data in seq order.
    // Small pieces are copied into one scratch buffer; the rest is referenced where it is.
    struct Piece {
        bool in_scratch;
        std::size_t offset;
        std::size_t size;
        const char* data;
    };
    thread_local std::vector<Piece> pieces;
    thread_local std::vector<FrameLog::Span> spans;
    pieces.clear();
    auto add = [&](const char* bytes, std::size_t size, bool copy) {
        if (copy) {
            if (!pieces.empty() && pieces.back().in_scratch) {
                pieces.back().size += size;
            } else {
                pieces.push_back({true, scratch_.size(), size, nullptr});
            }
            scratch_.append(bytes, size);
        } else {
            pieces.push_back({false, 0, size, bytes});
        }
    };
    while (!control_.empty()) {
        inflight_control_.push_back(std::move(control_.front()));
        control_.pop_front();
        add(inflight_control_.back().data(), inflight_control_.back().size(), true);
    }
    const std::uint64_t end = log.end_index();
    if (subscribed_ && cursor_ < end) {
        if (all_) {
            // Every entry is for this subscriber: the bytes from the cursor on, as they lie in the log.
            std::uint64_t stop = end;
            if (log.end_offset() - log.offset_of(cursor_) > max_write_bytes) {
                std::size_t bytes = 0;
                for (stop = cursor_; stop < end; ++stop) {
                    const auto size = log.entry(stop).size;
                    if (stop > cursor_ && bytes + size > max_write_bytes) break;
                    bytes += size;
                }
            }
            spans.clear();
            log.spans(cursor_, stop, spans);
            for (const auto& span : spans) add(span.data, span.size, false);
            inflight_frames_ = static_cast<std::size_t>(stop - cursor_);
            inflight_last_seq_ = log.entry(stop - 1).seq;
            inflight_end_ = stop;
        } else {
            // The entries of this subscriber's topics; entries of other topics are skipped.
            std::uint64_t i = cursor_;
            for (; i < end; ++i) {
                const auto& e = log.entry(i);
                if (std::find(topic_ids_.begin(), topic_ids_.end(), e.topic) == topic_ids_.end()) continue;
                if (inflight_frames_ > 0 && inflight_bytes_ + e.size > max_write_bytes) break;
                add(log.data(i), e.size, e.size < coalesce_below);
                ++inflight_frames_;
                inflight_bytes_ += e.size;
                inflight_last_seq_ = e.seq;
            }
            inflight_end_ = i;
        }
    }
    if (pieces.empty()) {  // only entries of other topics
        cursor_ = inflight_end_;
        return;
    }
    writing_ = true;
    for (const auto& piece : pieces) {
        gather_.push_back(piece.in_scratch ? asio::buffer(scratch_.data() + piece.offset, piece.size)
                                           : asio::buffer(piece.data, piece.size));
    }
    // Most writes fit in the socket's buffer: send at once and finish here, without a round trip
    // through the event loop; what the kernel does not take waits for the socket asynchronously.
    std::size_t sent = 0;
    if (gather_.size() <= max_iov) {
        iovec iov[max_iov];
        std::size_t total = 0;
        for (std::size_t i = 0; i < gather_.size(); ++i) {
            iov[i].iov_base = const_cast<void*>(gather_[i].data());
            iov[i].iov_len = gather_[i].size();
            total += gather_[i].size();
        }
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = gather_.size();
        const ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            on_written(error_code(errno, boost::system::system_category()));
            return;
        }
        if (n > 0) sent = static_cast<std::size_t>(n);
        if (sent == total) {
            on_written({});
            return;
        }
    }
    // Drop what was sent from the front of the gather list.
    auto first = gather_.begin();
    while (sent > 0 && sent >= first->size()) {
        sent -= first->size();
        ++first;
    }
    gather_.erase(gather_.begin(), first);
    if (sent > 0) gather_.front() += sent;
    asio::async_write(socket_, gather_, [self = shared_from_this()](error_code ec, std::size_t) { self->on_written(ec); });
}

void WebSocketSession::on_written(error_code ec) {
    writing_ = false;
    if (ec) {
        dropped_ = true;  // nothing more can be sent; the log need not keep anything for it
        error_code ignored;
        socket_.close(ignored);  // the read loop ends and logs the disconnect
        return;
    }
    frames_sent_ += inflight_frames_;
    context_.counters.frames_sent.fetch_add(inflight_frames_, std::memory_order_relaxed);
    if (inflight_frames_ > 0) last_seq_ = inflight_last_seq_;
    cursor_ = inflight_end_;
    if (!all_ && !dropped_) {
        pending_frames_ -= inflight_frames_;
        pending_bytes_ -= inflight_bytes_;
    }
    inflight_frames_ = 0;
    inflight_bytes_ = 0;
    const bool close_written = std::any_of(inflight_control_.begin(), inflight_control_.end(), [](const std::string& f) {
        return (static_cast<std::uint8_t>(f[0]) & 0x0f) == close_op;
    });
    inflight_control_.clear();
    if (closed_) return;  // the session has ended meanwhile
    if (close_written) {
        // Both closes exchanged: done. Otherwise the close timer ends the wait for the peer's.
        if (close_received_) shutdown_socket();
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
