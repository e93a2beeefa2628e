// downstream_forward.cpp: the way of one request to the upstream and of its response back (forward,
// tunnel), in named steps that each report a Failure, and the one funnel every failure goes through.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>

#include "common/log.hpp"
#include "common/text.hpp"
#include "proxy/downstream_session.hpp"
#include "proxy/framing.hpp"
#include "proxy/header_rules.hpp"
#include "proxy/relay.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/wire.hpp"

namespace crudcast::proxy {

using config::LogLevel;

namespace {

bool is_timeout(const error_code& ec) { return ec == beast::error::timeout; }

}  // namespace

struct DownstreamSession::Forwarding {
    RequestParser& parser;
    bool client_http10 = false;
    bool client_keep_alive = false;
    bool has_body = false;
    bool is_head = false;
    bool expect_continue = false;
    Lease lease = {};
    int attempt = 1;
    Clock::time_point sent_at = {};
    std::optional<ResponseParser> response = {};
    // The stream's position before the upstream saw the request, and the X-Crudcast-Seq line the
    // response's head gets (the position, or the seq of the event the response made).
    std::optional<std::uint64_t> position = {};
    LateHeadLine seq_line = {};
};

void DownstreamSession::apply_forwarding(http::fields& fields, const Exchange& ex) const {
    const auto& cfg = context_.config;
    apply_forwarding_headers(fields, {.client_ip = client_ip_,
                                      .upstream_host = cfg.upstream.host_header,
                                      .preserve_host = cfg.preserve_host,
                                      .request_id = ex.request_id,
                                      .trusted_peer = peer_trusted_});
    // The access line names the socket peer; the client a trusted proxy vouches for is here.
    if (log::enabled(LogLevel::debug))
        log::write(LogLevel::debug, "forwarding headers",
                   {{"rid", ex.request_id},
                    {"client", client_address_},
                    {"trusted_peer", peer_trusted_},
                    {"x_forwarded_for", std::string_view(fields["X-Forwarded-For"])}});
}

ProxyContext::HandshakeInfo DownstreamSession::handshake_info(const http::request<http::buffer_body>& req,
                                                              const Exchange& ex) const {
    http::fields fields;
    for (const auto name : {"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "Host"}) {
        const auto [first, last] = req.base().equal_range(name);
        for (auto it = first; it != last; ++it) fields.insert(name, it->value());
    }
    apply_forwarding(fields, ex);
    ProxyContext::HandshakeInfo info{
        .client_ip = client_ip_, .trusted_peer = peer_trusted_, .request_id = ex.request_id, .forwarded = {}};
    for (const auto name : {"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"}) {
        if (const auto value = fields[name]; !value.empty()) info.forwarded.emplace_back(name, std::string(value));
    }
    return info;
}

asio::awaitable<bool> DownstreamSession::forward(RequestParser& parser, Exchange& ex) {
    auto& req = parser.get();
    Forwarding fw{.parser = parser};
    fw.client_http10 = req.version() == 10;
    fw.client_keep_alive = req.keep_alive() && !fw.client_http10;
    fw.has_body = !parser.is_done();
    fw.is_head = req.method() == http::verb::head;
    fw.expect_continue = iequals(req[http::field::expect], "100-continue");
    if (fw.expect_continue) req.erase(http::field::expect);  // crudcast answers 100 itself (send_request)
    strip_hop_by_hop(req);
    set_framing(req, parser.chunked(), parser.content_length());  // the one framing line of what is sent
    apply_forwarding(req, ex);
    req.version(11);

    // A small body is read whole first: a slow client holds no upstream connection while it sends.
    // (Not when the client waits for a 100 Continue: that goes out once the upstream is reachable.)
    if (!fw.expect_continue && body_to_buffer(parser)) {
        if (auto failed = co_await buffer_body(parser)) co_return co_await fail(ex, *failed, false, true);
    }
    // Before any byte of the request can reach the upstream: a write the upstream makes visible to
    // this request from now on has a later seq, so a client resuming from this position misses none.
    fw.position = stream_position();
    fw.lease = co_await context_.pool.acquire(ex.request_id, deadline_);
    for (;; ++fw.attempt) {
        auto failed = co_await send_request(fw, ex);
        if (!failed) failed = co_await read_response_head(fw, ex);
        if (!failed) failed = co_await relay_response(fw, ex);
        if (!failed) {
            finish_exchange(fw, ex);
            co_return fw.client_keep_alive;
        }
        if (retries(*failed, fw, ex)) {
            fw.lease = co_await context_.pool.connect(ex.request_id, deadline_);
            continue;
        }
        co_return co_await fail(ex, *failed, fw.client_keep_alive, fw.has_body);
    }
}

// Request: client -> upstream, after a 100 Continue when the client waits for one.
asio::awaitable<std::optional<DownstreamSession::Failed>> DownstreamSession::send_request(Forwarding& fw,
                                                                                          Exchange& ex) {
    const auto& cfg = context_.config;
    auto& lease = fw.lease;
    deadline_.watch_upstream(lease.connection ? &lease.connection->socket : nullptr);
    if (!lease.connection)
        co_return Failed{lease.timed_out ? Failure::connect_timeout : Failure::connect_failed, {}, lease.detail};
    ex.connection = lease.reused ? "reused" : "new";
    auto& up = *lease.connection;
    ++up.requests;
    if (fw.expect_continue && fw.has_body && fw.attempt == 1) {
        // The upstream is reachable: now invite the client to send its body.
        static constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";
        deadline_.expect(Side::client, cfg.idle_timeout);
        auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(continue_line), use_nothrow);
        (void)n;
        if (ec) co_return Failed{Failure::client_gone_at_interim, ec};
    }
    // Only a body-less request can be replayed on a retry.
    // A stalled body read is cancelled, not its socket closed: the client still hears the 408.
    auto sent = co_await relay_message(
        deadline_, {socket_, Side::client, cfg.client_body_timeout, &request_chunk_limit_, Expiry::cancel}, buffer_,
        fw.parser, {up.socket, Side::upstream, cfg.upstream_timeout}, true, nullptr, nullptr, [] {});
    fw.sent_at = Clock::now();
    ex.bytes_in = sent.body_bytes;
    if (sent.read_error) co_return Failed{classify_request_body_error(sent.read_error), sent.read_error};
    if (sent.write_error)
        co_return Failed{is_timeout(sent.write_error) ? Failure::send_timeout : Failure::send_failed, sent.write_error};
    co_return std::nullopt;
}

// Response header: skip 1xx interim answers (crudcast handled Expect itself).
asio::awaitable<std::optional<DownstreamSession::Failed>> DownstreamSession::read_response_head(Forwarding& fw,
                                                                                                Exchange& ex) {
    auto& up = *fw.lease.connection;
    auto& rp = fw.response;
    error_code rec;
    // Only a request that cannot publish is cancelled when its client leaves (an event must not be lost).
    const ObservedRequest observed{ex.method, ex.target, ex.request_id};
    const bool watch = context_.observer == nullptr || !context_.observer->may_publish(observed);
    if (watch) watch_client(up);
    deadline_.expect(Side::upstream, context_.config.upstream_timeout);
    for (;;) {
        rp.emplace();
        rp->body_limit(boost::none);
        rp->header_limit(upstream_header_limit);
        if (fw.is_head) rp->skip(true);
        auto [ec, n] = co_await http::async_read_header(up.socket, up.buffer, *rp, use_nothrow);
        (void)n;
        rec = deadline_.expired() ? beast::error::timeout : ec;
        if (ec || rp->get().result_int() >= 200 || rp->get().result_int() == 101) break;
        if (log::enabled(LogLevel::debug))
            log::write(LogLevel::debug, "skipping interim upstream response",
                       {{"rid", ex.request_id}, {"status", rp->get().result_int()}});
    }
    if (watch && unwatch_client()) co_return Failed{Failure::client_left, rec};
    if (rec) co_return Failed{classify_head_error(rec), rec};
    // This request asked for no upgrade (those are tunnelled): what follows a 101 is not HTTP (RFC 9110 §15.2.2).
    if (rp->get().result_int() == 101)
        co_return Failed{Failure::head_framing, {}, "101 Switching Protocols to a request without Upgrade"};
    if (const auto bad = check_response_framing(rp->get()); !bad.ok())
        co_return Failed{Failure::head_framing, {}, bad.reason};
    ex.upstream_ms = ms_since(fw.sent_at);
    co_return std::nullopt;
}

// Response: upstream -> client, headers untouched but for hop-by-hop and X-Request-ID.
asio::awaitable<std::optional<DownstreamSession::Failed>> DownstreamSession::relay_response(Forwarding& fw,
                                                                                            Exchange& ex) {
    const auto& cfg = context_.config;
    auto& up = *fw.lease.connection;
    auto& rp = *fw.response;
    auto& res = rp.get();
    ex.status = res.result_int();
    const ObservedRequest observed{ex.method, ex.target, ex.request_id};
    BodyCapture capture;
    if (context_.observer) capture.limit = context_.observer->on_response_head(observed, res.base(), ex.note);
    const bool body_allowed = !fw.is_head && ex.status != 204 && ex.status != 304;
    const bool eof_delimited = rp.need_eof() && body_allowed;
    if (context_.draining.load(std::memory_order_relaxed) || drain_requested_) fw.client_keep_alive = false;
    set_framing(res, rp.chunked(), rp.content_length());  // checked in read_response_head
    prepare_response_head(res, {.request_id = ex.request_id,
                                .keep_alive = fw.client_keep_alive,
                                .own_version = true,
                                .chunked = fw.client_http10 ? std::optional(false)
                                           : eof_delimited  ? std::optional(true)
                                                            : std::nullopt,
                                .expose_seq = fw.position.has_value() || capture.limit > 0});
    if (fw.position) fw.seq_line.size = seq_header_line(*fw.position, fw.seq_line.bytes.data());

    // Read-your-writes: the event is on the bus before the client has the last byte. The capture
    // held the head back, so the head can say the event's seq.
    const auto publish = [&]() -> asio::awaitable<void> {
        if (capture.limit == 0) co_return;
        const auto outcome = co_await context_.observer->on_response_complete(observed, res.base(), capture.data,
                                                                              capture.overflow, ex.note);
        if (outcome.seq) fw.seq_line.size = seq_header_line(*outcome.seq, fw.seq_line.bytes.data());
        // The position read before is not where this write stands in the stream: say nothing.
        if (outcome.seq_unknown) fw.seq_line.size = 0;
    };
    auto got =
        co_await relay_message(deadline_, {up.socket, Side::upstream, cfg.upstream_timeout, &response_chunk_limit_},
                               up.buffer, rp, {socket_, Side::client, cfg.idle_timeout}, body_allowed,
                               capture.limit > 0 ? &capture : nullptr, &fw.seq_line, publish);
    deadline_.clear();
    ex.bytes_out = got.body_bytes;
    if (got.read_error && is_framing_overflow(got.read_error)) {
        // Chunk lines or trailers past the limit: a 502 while nothing went out, else a broken-off response.
        if (!got.wrote) co_return Failed{Failure::response_framing_too_large, got.read_error};
        co_return Failed{Failure::response_broke_off, http::error::header_limit};
    }
    if (got.read_error)
        co_return Failed{got.wrote ? Failure::response_broke_off : Failure::held_response_broke_off, got.read_error};
    if (got.write_error) co_return Failed{Failure::client_gone_mid_response, got.write_error};
    co_return std::nullopt;
}

void DownstreamSession::finish_exchange(Forwarding& fw, Exchange& ex) {
    deadline_.watch_upstream(nullptr);
    // Bytes past the response (a second response, a body longer than its Content-Length) mean the
    // upstream's framing cannot be trusted: that connection is never read from again.
    const bool overran = fw.lease.connection->buffer.size() > 0;
    if (fw.response->keep_alive() && !fw.response->need_eof() && !overran) {
        context_.pool.release(std::move(fw.lease.connection));
    } else if (log::enabled(LogLevel::debug)) {
        log::write(LogLevel::debug, "pool: not keeping upstream connection",
                   {{"rid", ex.request_id},
                    {"why", overran ? "upstream sent bytes past its response" : "upstream asked to close"}});
    }
    log_access(ex);
}

std::optional<std::uint64_t> DownstreamSession::stream_position() const {
    return context_.observer ? context_.observer->position() : std::nullopt;
}

bool DownstreamSession::body_to_buffer(const RequestParser& parser) const {
    const std::size_t limit = context_.config.client_body_buffer_bytes;
    if (limit == 0 || parser.is_done()) return false;
    if (const auto length = parser.content_length()) return *length <= limit && buffer_.size() < *length;
    if (!parser.chunked() || buffer_.size() >= limit) return false;
    const std::string_view have(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    return chunked_body_length(have) == 0;
}

asio::awaitable<std::optional<DownstreamSession::Failed>> DownstreamSession::buffer_body(const RequestParser& parser) {
    const auto& cfg = context_.config;
    const auto length = parser.content_length();
    while (body_to_buffer(parser)) {
        // A sized body is read to its end and no further; a chunked one up to the limit at most.
        const std::size_t want = length ? *length - buffer_.size() : cfg.client_body_buffer_bytes - buffer_.size();
        deadline_.expect(Side::client, cfg.client_body_timeout, Expiry::cancel);
        auto [ec, n] = co_await socket_.async_read_some(buffer_.prepare(want), use_nothrow);
        deadline_.clear();
        if (ec) {
            const error_code why = deadline_.expired() ? error_code(beast::error::timeout) : ec;
            co_return Failed{classify_request_body_error(why), why};
        }
        buffer_.commit(n);
    }
    co_return std::nullopt;
}

void DownstreamSession::watch_client(UpstreamConnection& up) {
    watch_.active = true;
    watch_.left = false;
    watch_.upstream = &up;
    // Not armed now: most answers come within milliseconds, and a wait costs an epoll_ctl, a cancel
    // and a completion (measured: ~9 % of GET throughput). The sweep arms it once the upstream has
    // taken 50 ms; a client gone meanwhile is noticed then (within ~150 ms of leaving). Arming
    // re-arms the descriptor in epoll (EPOLL_CTL_MOD), which reports a close that came before.
    watch_.armed = false;
    watch_.arm_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
}

void DownstreamSession::arm_client_wait() {
    watch_.armed = true;
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this(), generation = watch_.generation](
                                                   const error_code& ec) { self->on_client_readable(generation, ec); });
}

void DownstreamSession::on_client_readable(std::uint64_t generation, const error_code& ec) {
    if (ec || generation != watch_.generation || !watch_.active) return;
    inspect_client();
}

void DownstreamSession::inspect_client() {
    const std::size_t room = buffer_.max_size() - buffer_.size();
    if (room == 0) return;  // the pipelined bytes fill the buffer: they wait for their turn
    // Into the buffer's spare capacity when it has some: no allocation for a look that finds nothing.
    const std::size_t spare = buffer_.capacity() - buffer_.size();
    auto space = buffer_.prepare(std::min<std::size_t>(room, spare > 0 ? spare : 4096));
    const auto n = ::recv(socket_.native_handle(), space.data(), space.size(), MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) {
        // Bytes of the next request (kept for it), or nothing yet: still there; wait for more.
        if (n > 0) buffer_.commit(static_cast<std::size_t>(n));
        arm_client_wait();
        return;
    }
    // EOF or an error such as a reset: the client left. Closing the upstream connection ends the
    // wait for its head (and tells the upstream).
    watch_.left = true;
    watch_.active = false;
    if (log::enabled(LogLevel::debug))
        log::write(LogLevel::debug, "client left while the upstream worked: closing the upstream connection",
                   {{"client", client_address_}, {"conn", watch_.upstream->id}});
    error_code ignored;
    watch_.upstream->socket.close(ignored);
}

bool DownstreamSession::unwatch_client() {
    const bool left = watch_.left;
    if (watch_.active && watch_.armed) {
        error_code ignored;
        socket_.cancel(ignored);  // the pending wait completes with operation_aborted
    }
    watch_.active = false;
    watch_.armed = false;
    ++watch_.generation;
    watch_.upstream = nullptr;
    watch_.left = false;
    return left;
}

bool DownstreamSession::retries(const Failed& failed, const Forwarding& fw, const Exchange& ex) const {
    const auto& rule = failure_rule(failed.kind);
    if (rule.retry == Retry::never || !fw.lease.connection) return false;
    const bool replayable = fw.lease.reused && !fw.has_body && fw.attempt == 1 && is_idempotent(ex.method);
    if (!rule.retries(replayable, fw.lease.connection->buffer.size() > 0)) return false;
    if (log::enabled(LogLevel::debug))
        log::write(LogLevel::debug, rule.retry_line,
                   {{"rid", ex.request_id}, {"conn", fw.lease.connection->id}, {"error", failed.ec.message()}});
    return true;
}

asio::awaitable<bool> DownstreamSession::fail(Exchange& ex, const Failed& failed, bool client_keep_alive,
                                              bool has_body) {
    const auto& rule = failure_rule(failed.kind);
    if (rule.counter == FailureCounter::bad_gateway) {
        context_.counters.bad_gateway.fetch_add(1, std::memory_order_relaxed);
    } else if (rule.counter == FailureCounter::gateway_timeout) {
        context_.counters.gateway_timeout.fetch_add(1, std::memory_order_relaxed);
    } else if (rule.counter == FailureCounter::client_closed) {
        context_.counters.client_closed.fetch_add(1, std::memory_order_relaxed);
    }
    // Built before the co_await: g++ 12 destroys a std::string temporary made by a
    // conditional expression inside a co_await's arguments twice (double free).
    std::string detail = failure_detail(failed.kind, failed.ec, failed.pool_detail, context_.config);
    ex.failure = failed.kind;
    if (rule.answers()) {
        co_return co_await reply_error(ex, static_cast<http::status>(rule.status), rule.error, std::move(detail),
                                       rule.keeps_client(client_keep_alive, has_body));
    }
    if (rule.status != 0) ex.status = rule.status;
    ex.error = std::move(detail);
    std::uint64_t repeated = 0;
    const auto level = rule.level == LogLevel::warn ? failure_level(failed.kind, repeated) : rule.level;
    if (!rule.line.empty() && log::enabled(level)) {
        // Each line names the body bytes that crossed on its side, as it always has.
        if (failed.kind == Failure::body_stalled) {
            log::write(level, rule.line,
                       {{"rid", ex.request_id}, {"client", client_address_}, {"body_bytes", ex.bytes_in}});
        } else {
            const std::string message = failed.ec.message();
            const log::Field fields[] = {
                {"rid", ex.request_id}, {"error", message}, {"bytes", ex.bytes_out}, {"repeated", repeated}};
            log::write(level, rule.line, std::span(fields, repeated > 0 ? 4 : 3));
        }
    }
    if (rule.access_line) log_access(ex);
    co_return false;
}

asio::awaitable<bool> DownstreamSession::tunnel(RequestParser& parser, Exchange& ex) {
    const auto& cfg = context_.config;
    auto& req = parser.get();
    strip_hop_by_hop(req, /*keep_upgrade=*/true);
    set_framing(req, parser.chunked(), parser.content_length());
    apply_forwarding(req, ex);
    req.version(11);
    if (log::enabled(LogLevel::debug))
        log::write(LogLevel::debug, "upgrade request: tunnelling to the upstream",
                   {{"rid", ex.request_id}, {"upgrade", std::string_view(req[http::field::upgrade])}});
    const auto position = stream_position();  // before the upstream can read the request, as in forward
    Lease lease = co_await context_.pool.connect(ex.request_id, deadline_);
    if (!lease.connection) {
        const Failed failed{lease.timed_out ? Failure::connect_timeout : Failure::connect_failed, {}, lease.detail};
        co_return co_await fail(ex, failed);
    }
    deadline_.watch_upstream(&lease.connection->socket);
    ex.connection = "new";
    auto& up = *lease.connection;
    auto sent =
        co_await relay_message(deadline_, {socket_, Side::client, cfg.idle_timeout}, buffer_, parser,
                               {up.socket, Side::upstream, cfg.upstream_timeout}, true, nullptr, nullptr, [] {});
    if (!sent.ok()) {
        const Failed failed{Failure::upgrade_send_failed, sent.read_error ? sent.read_error : sent.write_error};
        co_return co_await fail(ex, failed);
    }
    const auto sent_at = Clock::now();
    ResponseParser rp;
    rp.body_limit(boost::none);
    rp.header_limit(64 * 1024);  // as for forwarded responses, not Beast's default
    deadline_.expect(Side::upstream, cfg.upstream_timeout);
    auto [rec, rn] = co_await http::async_read_header(up.socket, up.buffer, rp, use_nothrow);
    (void)rn;
    deadline_.clear();
    if (rec) {
        const Failed failed{deadline_.expired() ? Failure::upgrade_head_timeout : Failure::upgrade_head_failed, rec};
        co_return co_await fail(ex, failed);
    }
    ex.upstream_ms = ms_since(sent_at);
    auto& res = rp.get();
    ex.status = res.result_int();
    if (res.result() == http::status::switching_protocols)
        co_return co_await splice_upgraded(ex, up, res.base(), position);
    // Upgrade declined: an ordinary response; the upstream connection is not reused.
    if (const auto bad = check_response_framing(res); !bad.ok())
        co_return co_await fail(ex, {Failure::head_framing, {}, bad.reason});
    set_framing(res, rp.chunked(), rp.content_length());
    prepare_response_head(res, {.request_id = ex.request_id, .keep_alive = false, .expose_seq = position.has_value()});
    LateHeadLine seq_line;
    if (position) seq_line.size = seq_header_line(*position, seq_line.bytes.data());
    auto got = co_await relay_message(deadline_, {up.socket, Side::upstream, cfg.upstream_timeout}, up.buffer, rp,
                                      {socket_, Side::client, cfg.idle_timeout}, true, nullptr, &seq_line, [] {});
    deadline_.clear();
    ex.bytes_out = got.body_bytes;
    log_access(ex);
    co_return false;
}

// 101 from the upstream: its head goes to the client as it came (Upgrade and Connection are the
// point of it), then both sockets are spliced until either side ends.
asio::awaitable<bool> DownstreamSession::splice_upgraded(Exchange& ex, UpstreamConnection& up,
                                                         http::response_header<>& res,
                                                         std::optional<std::uint64_t> position) {
    add_request_id(res, ex.request_id);
    apply_seq_cors_rules(res, position.has_value());
    std::string head;
    serialize_head(res, head);
    if (position) {
        char line[seq_line_max];
        head.insert(head.size() - 2, line, seq_header_line(*position, line));
    }
    deadline_.expect(Side::client, context_.config.idle_timeout);
    auto [wec, wn] = co_await asio::async_write(socket_, asio::buffer(head), use_nothrow);
    (void)wn;
    if (wec) co_return co_await fail(ex, {Failure::client_gone_at_interim, wec});
    // Bytes that arrived with the headers belong to the tunnel: pass them on first.
    if (up.buffer.size() > 0) {
        co_await asio::async_write(socket_, up.buffer.data(), use_nothrow);
        up.buffer.consume(up.buffer.size());
    }
    if (buffer_.size() > 0) {
        co_await asio::async_write(up.socket, buffer_.data(), use_nothrow);
        buffer_.consume(buffer_.size());
    }
    deadline_.clear();  // a tunnel may idle for as long as its two ends like
    log_access(ex);
    auto bytes = co_await splice(socket_, up.socket);
    if (log::enabled(LogLevel::debug))
        log::write(LogLevel::debug, "tunnel closed",
                   {{"rid", ex.request_id},
                    {"bytes_to_upstream", bytes.client_to_upstream},
                    {"bytes_to_client", bytes.upstream_to_client}});
    co_return false;
}

}  // namespace crudcast::proxy
