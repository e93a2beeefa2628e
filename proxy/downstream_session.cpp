// downstream_session.cpp: see downstream_session.hpp. The request path of crudcast, top to bottom.
#include "proxy/downstream_session.hpp"

#include <algorithm>
#include <optional>

#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/string_body.hpp>

#include "common/log.hpp"
#include "proxy/error_response.hpp"
#include "proxy/header_rules.hpp"
#include "proxy/relay.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/wire.hpp"

namespace crudcast::proxy {

using config::LogLevel;
using Clock = std::chrono::steady_clock;

namespace {

// `origin` matches an entry of `allowed` (lower case, no trailing slash), ignoring case.
bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed) {
    if (origin.ends_with('/')) origin.remove_suffix(1);
    return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& a) { return beast::iequals(a, origin); });
}

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

bool is_timeout(const error_code& ec) { return ec == beast::error::timeout; }


bool is_client_gone(const error_code& ec) {
    return ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::eof ||
           ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe || ec == asio::error::operation_aborted;
}

}  // namespace

struct DownstreamSession::Exchange {
    Clock::time_point start = Clock::now();
    std::string request_id;
    std::string method;
    std::string target;  // as the client sent it
    unsigned status = 0;
    std::uint64_t bytes_out = 0;  // response body bytes sent to the client
    std::uint64_t bytes_in = 0;   // request body bytes sent to the upstream
    std::optional<double> upstream_ms;
    const char* connection = "-";  // upstream connection: new, reused, or - (none)
    std::string error;             // why crudcast answered itself, or why the exchange broke
    NoteFields note;               // the observer's fields for the access line (events)
};

DownstreamSession::DownstreamSession(tcp::socket socket, std::shared_ptr<ProxyContext> context)
    : socket_(std::move(socket)), owner_(std::move(context)), context_(*owner_) {
    deadline_.watch_client(&socket_);
    error_code ec;
    const auto peer = socket_.remote_endpoint(ec);
    client_ip_ = ec ? std::string("unknown") : peer.address().to_string();
    client_address_ = ec ? client_ip_
                         : (peer.address().is_v6() ? "[" + client_ip_ + "]" : client_ip_) + ":" +
                               std::to_string(peer.port());
    socket_.set_option(tcp::no_delay(true), ec);
    registration_ = context_.sessions.insert(context_.sessions.end(), this);
    context_.counters.open_client_connections.fetch_add(1, std::memory_order_relaxed);
}

DownstreamSession::~DownstreamSession() {
    context_.counters.open_client_connections.fetch_sub(1, std::memory_order_relaxed);
    context_.sessions.erase(registration_);
}

void DownstreamSession::start() {
    asio::co_spawn(socket_.get_executor(), [self = shared_from_this()] { return self->run(); }, asio::detached);
}

void DownstreamSession::drain() {
    drain_requested_ = true;
    if (idle_) {
        error_code ignored;
        socket_.cancel(ignored);
    }
}

asio::awaitable<void> DownstreamSession::run() {
    const auto& cfg = context_.config;
    bool first_request = true;
    if (log::enabled(LogLevel::debug))
        log::write(LogLevel::debug, "client connected", {{"client", client_address_}});
    for (;;) {
        if (drain_requested_ || context_.draining.load(std::memory_order_relaxed)) break;
        // Between requests the idle timeout applies; once a request's first byte is in, the
        // header must be complete within the client header timeout (slow-header clients).
        if (buffer_.size() == 0) {
            idle_ = true;
            deadline_.expect(Side::client, first_request ? cfg.client_header_timeout : cfg.idle_timeout);
            auto [ec, n] = co_await socket_.async_read_some(buffer_.prepare(8192), use_nothrow);
            idle_ = false;
            if (ec) {
                if (log::enabled(LogLevel::debug))
                    log::write(LogLevel::debug, "client connection closed",
                               {{"client", client_address_},
                                {"why", deadline_.expired()      ? (first_request ? "no request within client-header-timeout"
                                                                                   : "idle-timeout between requests")
                                        : drain_requested_        ? "draining"
                                        : ec == asio::error::eof ? "client closed"
                                                                 : ec.message()}});
                break;
            }
            buffer_.commit(n);
        }
        deadline_.expect(Side::client, cfg.client_header_timeout);
        RequestParser parser;
        parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(cfg.max_header_bytes, UINT32_MAX)));
        if (cfg.max_body_bytes == 0) {
            parser.body_limit(boost::none);
        } else {
            parser.body_limit(cfg.max_body_bytes);
        }
        auto [ec, n] = co_await http::async_read_header(socket_, buffer_, parser, use_nothrow);
        (void)n;
        deadline_.clear();
        if (ec) {
            Exchange ex;
            ex.request_id = generate_request_id();
            if (deadline_.expired()) {
                log::write(LogLevel::info, "client disconnected: request header not complete within client-header-timeout",
                           {{"client", client_address_}, {"timeout_ms", static_cast<std::int64_t>(cfg.client_header_timeout.count())},
                            {"rid", ex.request_id}});
                break;
            }
            if (is_client_gone(ec)) {
                if (log::enabled(LogLevel::debug))
                    log::write(LogLevel::debug, "client closed the connection mid-header",
                               {{"client", client_address_}, {"rid", ex.request_id}});
                break;
            }
            if (parser.is_header_done()) {
                ex.method = std::string(parser.get().method_string());
                ex.target = std::string(parser.get().target());
            }
            if (ec == http::error::header_limit) {
                co_await reply_error(ex, http::status::request_header_fields_too_large, "header_too_large",
                                     "request header exceeds max-header-bytes (" + std::to_string(cfg.max_header_bytes) +
                                         " bytes)",
                                     false);
            } else if (ec == http::error::body_limit) {
                co_await reply_error(ex, http::status::payload_too_large, "body_too_large",
                                     "request body exceeds max-body-bytes (" + std::to_string(cfg.max_body_bytes) +
                                         " bytes)",
                                     false);
            } else {
                co_await reply_error(ex, http::status::bad_request, "bad_request",
                                     "malformed request: " + ec.message(), false);
            }
            break;
        }
        const bool keep = co_await serve(parser);
        first_request = false;
        if (!keep) break;
    }
    deadline_.clear();
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    socket_.close(ignored);
}

asio::awaitable<bool> DownstreamSession::serve(RequestParser& parser) {
    auto& req = parser.get();
    Exchange ex;
    struct InFlight {
        std::atomic<std::int64_t>& gauge;
        explicit InFlight(std::atomic<std::int64_t>& g) : gauge(g) { gauge.fetch_add(1, std::memory_order_relaxed); }
        ~InFlight() { gauge.fetch_sub(1, std::memory_order_relaxed); }
    } in_flight{context_.counters.in_flight};
    deadline_.watch_upstream(nullptr);
    ex.method = std::string(req.method_string());
    ex.target = std::string(req.target());
    const auto given_id = req["X-Request-ID"];
    ex.request_id = is_acceptable_request_id(given_id) ? std::string(given_id) : generate_request_id();
    if (log::enabled(LogLevel::debug) && !given_id.empty() && given_id != ex.request_id)
        log::write(LogLevel::debug, "replacing unacceptable X-Request-ID", {{"rid", ex.request_id}});

    const auto& cfg = context_.config;
    auto decision = decide_target(ex.target, cfg.upstream.base_path, context_.own_authorities);
    if (decision.kind == TargetDecision::reject) {
        co_return co_await reply_error(ex, http::status::bad_request, "bad_request", decision.reason, false);
    }
    const auto path = std::string_view(ex.target).substr(0, ex.target.find('?'));
    if (context_.websocket_handoff && path == cfg.ws_path) {
        if (is_upgrade_request(req) && beast::iequals(req[http::field::upgrade], "websocket")) {
            const auto origin = req[http::field::origin];
            if (!origin.empty() && !cfg.ws_allowed_origins.empty() && !origin_allowed(origin, cfg.ws_allowed_origins)) {
                // A browser page from elsewhere: refused, so it cannot read events with the user's access.
                std::string detail = "origin " + std::string(origin) + " may not subscribe (ws-allowed-origins)";
                co_return co_await reply_error(ex, http::status::forbidden, "origin_not_allowed", std::move(detail),
                                               false);
            }
            ex.status = 101;
            ex.note.emplace_back("ws", "subscribe");
            log_access(ex);
            deadline_.clear();
            context_.websocket_handoff(std::move(socket_), parser.release(), std::move(buffer_), client_address_,
                                       ex.request_id);
            co_return false;
        }
        const auto host = req[http::field::host];
        std::string hint = "this is crudcast's event stream: connect with a WebSocket client, e.g. ws://" +
                           (host.empty() ? std::string("HOST:PORT") : std::string(host)) + cfg.ws_path + "?topic=author";
        const bool keep = parser.is_done() && req.keep_alive();
        co_return co_await reply_error(ex, http::status::upgrade_required, "upgrade_required", std::move(hint), keep,
                                       "websocket");
    }
    req.target(decision.target);
    if (is_upgrade_request(req)) co_return co_await tunnel(parser, ex);
    co_return co_await forward(parser, ex);
}

asio::awaitable<bool> DownstreamSession::forward(RequestParser& parser, Exchange& ex) {
    const auto& cfg = context_.config;
    auto& req = parser.get();
    const bool client_http10 = req.version() == 10;
    bool client_keep_alive = req.keep_alive() && !client_http10;
    const bool has_body = !parser.is_done();
    const bool is_head = req.method() == http::verb::head;

    const bool expect_continue = beast::iequals(req[http::field::expect], "100-continue");
    if (expect_continue) req.erase(http::field::expect);  // crudcast answers 100 itself (below)
    strip_hop_by_hop(req);
    apply_forwarding_headers(req, {client_ip_, cfg.upstream.host_header, cfg.preserve_host, ex.request_id});
    req.version(11);

    Lease lease = co_await context_.pool.acquire(ex.request_id, deadline_);
    for (int attempt = 1;; ++attempt) {
        deadline_.watch_upstream(lease.connection ? &lease.connection->socket : nullptr);
        if (!lease.connection) {
            context_.counters.bad_gateway.fetch_add(1, std::memory_order_relaxed);
            co_return co_await reply_error(ex, http::status::bad_gateway, "bad_gateway", lease.detail,
                                           client_keep_alive && !has_body);
        }
        ex.connection = lease.reused ? "reused" : "new";
        auto& up = *lease.connection;
        ++up.requests;
        if (expect_continue && has_body && attempt == 1) {
            // The upstream is reachable: now invite the client to send its body.
            static constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";
            deadline_.expect(Side::client, cfg.idle_timeout);
            auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(continue_line), use_nothrow);
            (void)n;
            if (ec) co_return false;
        }

        // Request: client -> upstream. Only a body-less request can be replayed on a retry.
        auto sent = co_await relay_message(deadline_, {socket_, Side::client, cfg.idle_timeout}, buffer_, parser,
                                           {up.socket, Side::upstream, cfg.upstream_timeout}, true, nullptr, [] {});
        const auto sent_at = Clock::now();
        ex.bytes_in = sent.body_bytes;
        if (sent.read_error) {
            ex.error = "client request body: " + sent.read_error.message();
            if (sent.read_error == http::error::body_limit) {
                co_return co_await reply_error(ex, http::status::payload_too_large, "body_too_large",
                                               "request body exceeds max-body-bytes (" +
                                                   std::to_string(cfg.max_body_bytes) + " bytes)",
                                               false);
            }
            if (is_timeout(sent.read_error)) {
                // The stalled client's socket is already closed by the deadline: nothing can be
                // written to it. Logged as 408 so the access line says what happened.
                ex.status = 408;
                ex.error = "request body stalled past idle-timeout";
                log::write(LogLevel::info, "client request body stalled past idle-timeout; connection closed",
                           {{"rid", ex.request_id}, {"client", client_address_}, {"body_bytes", sent.body_bytes}});
                log_access(ex);
                co_return false;
            }
            if (!is_client_gone(sent.read_error)) {
                co_return co_await reply_error(ex, http::status::bad_request, "bad_request",
                                               "malformed request body: " + sent.read_error.message(), false);
            }
            ex.status = 499;  // client closed before a response, as nginx logs it
            log_access(ex);
            co_return false;
        }
        const bool retryable = lease.reused && !has_body && attempt == 1 && is_idempotent(ex.method);
        if (sent.write_error) {
            if (retryable) {
                if (log::enabled(LogLevel::debug))
                    log::write(LogLevel::debug, "retry: reused upstream connection failed on write, using a new one",
                               {{"rid", ex.request_id}, {"conn", up.id}, {"error", sent.write_error.message()}});
                lease = co_await context_.pool.connect(ex.request_id, deadline_);
                continue;
            }
            if (is_timeout(sent.write_error)) {
                context_.counters.gateway_timeout.fetch_add(1, std::memory_order_relaxed);
                co_return co_await reply_error(ex, http::status::gateway_timeout, "gateway_timeout",
                                               "the upstream did not take the request within upstream-timeout", false);
            }
            context_.counters.bad_gateway.fetch_add(1, std::memory_order_relaxed);
            co_return co_await reply_error(ex, http::status::bad_gateway, "bad_gateway",
                                           "sending the request to the upstream failed: " + sent.write_error.message(),
                                           false);
        }

        // Response header: skip 1xx interim answers (crudcast handled Expect itself).
        std::optional<http::response_parser<http::buffer_body>> rp;
        error_code rec;
        deadline_.expect(Side::upstream, cfg.upstream_timeout);
        for (;;) {
            rp.emplace();
            rp->body_limit(boost::none);
            rp->header_limit(64 * 1024);
            if (is_head) rp->skip(true);
            auto [ec, n] = co_await http::async_read_header(up.socket, up.buffer, *rp, use_nothrow);
            (void)n;
            rec = deadline_.expired() ? beast::error::timeout : ec;
            if (ec || rp->get().result_int() >= 200 || rp->get().result_int() == 101) break;
            if (log::enabled(LogLevel::debug))
                log::write(LogLevel::debug, "skipping interim upstream response",
                           {{"rid", ex.request_id}, {"status", rp->get().result_int()}});
        }
        if (rec) {
            if (is_timeout(rec)) {
                context_.counters.gateway_timeout.fetch_add(1, std::memory_order_relaxed);
                co_return co_await reply_error(ex, http::status::gateway_timeout, "gateway_timeout",
                                               "no response from the upstream within upstream-timeout (" +
                                                   std::to_string(cfg.upstream_timeout.count()) + "ms)",
                                               client_keep_alive);
            }
            if (retryable && up.buffer.size() == 0) {
                if (log::enabled(LogLevel::debug))
                    log::write(LogLevel::debug,
                               "retry: reused upstream connection closed before answering, using a new one",
                               {{"rid", ex.request_id}, {"conn", up.id}, {"error", rec.message()}});
                lease = co_await context_.pool.connect(ex.request_id, deadline_);
                continue;
            }
            context_.counters.bad_gateway.fetch_add(1, std::memory_order_relaxed);
            // Built before the co_await: g++ 12 destroys a std::string temporary made by a
            // conditional expression inside a co_await's arguments twice (double free).
            std::string detail = "upstream closed the connection without a response";
            if (rec != http::error::end_of_stream && rec != asio::error::eof && rec != asio::error::connection_reset)
                detail = "invalid response from the upstream: " + rec.message();
            co_return co_await reply_error(ex, http::status::bad_gateway, "bad_gateway", std::move(detail),
                                           client_keep_alive);
        }
        ex.upstream_ms = ms_between(sent_at, Clock::now());

        // Response: upstream -> client, headers untouched but for hop-by-hop and X-Request-ID.
        auto& res = rp->get();
        ex.status = res.result_int();
        const ObservedRequest observed{ex.method, ex.target, ex.request_id};
        BodyCapture capture;
        if (context_.observer) capture.limit = context_.observer->on_response_head(observed, res.base(), ex.note);
        strip_hop_by_hop(res);
        if (res.count("X-Request-ID") == 0) res.set("X-Request-ID", ex.request_id);
        res.version(11);  // an intermediary sends its own HTTP version (RFC 9110 §6.2)
        const bool eof_delimited = rp->need_eof() && !is_head && ex.status != 204 && ex.status != 304;
        if (client_http10) {
            res.chunked(false);  // HTTP/1.0 has no chunked coding: the body ends at close
        } else if (eof_delimited) {
            res.chunked(true);  // keep the client's connection: frame the body ourselves
        }
        if (context_.draining.load(std::memory_order_relaxed) || drain_requested_) client_keep_alive = false;
        res.keep_alive(client_keep_alive);

        const bool body_allowed = !is_head && ex.status != 204 && ex.status != 304;
        auto got = co_await relay_message(
            deadline_, {up.socket, Side::upstream, cfg.upstream_timeout}, up.buffer, *rp,
            {socket_, Side::client, cfg.idle_timeout}, body_allowed, capture.limit > 0 ? &capture : nullptr, [&] {
                // Read-your-writes: the event is on the bus before the client has the last byte.
                if (capture.limit > 0)
                    context_.observer->on_response_complete(observed, res.base(), capture.data, capture.overflow,
                                                            ex.note);
            });
        deadline_.clear();
        ex.bytes_out = got.body_bytes;
        if (got.read_error) {
            ex.error = "upstream failed mid-response: " + got.read_error.message();
            log::write(LogLevel::warn, "upstream response broke off; closing the client connection",
                       {{"rid", ex.request_id}, {"error", got.read_error.message()},
                        {"bytes", got.body_bytes}});
            log_access(ex);
            co_return false;
        }
        if (got.write_error) {
            ex.error = "client went away: " + got.write_error.message();
            log_access(ex);
            co_return false;  // the upstream connection holds unread body bytes: dropped with the lease
        }
        deadline_.watch_upstream(nullptr);
        if (rp->keep_alive() && !rp->need_eof()) {
            context_.pool.release(std::move(lease.connection));
        } else if (log::enabled(LogLevel::debug)) {
            log::write(LogLevel::debug, "pool: not keeping upstream connection",
                       {{"rid", ex.request_id}, {"why", "upstream asked to close"}});
        }
        log_access(ex);
        co_return client_keep_alive;
    }
}

asio::awaitable<bool> DownstreamSession::tunnel(RequestParser& parser, Exchange& ex) {
    const auto& cfg = context_.config;
    auto& req = parser.get();
    strip_hop_by_hop(req, /*keep_upgrade=*/true);
    apply_forwarding_headers(req, {client_ip_, cfg.upstream.host_header, cfg.preserve_host, ex.request_id});
    req.version(11);
    if (log::enabled(LogLevel::debug))
        log::write(LogLevel::debug, "upgrade request: tunnelling to the upstream",
                   {{"rid", ex.request_id}, {"upgrade", std::string_view(req[http::field::upgrade])}});
    Lease lease = co_await context_.pool.connect(ex.request_id, deadline_);
    if (!lease.connection) {
        context_.counters.bad_gateway.fetch_add(1, std::memory_order_relaxed);
        co_return co_await reply_error(ex, http::status::bad_gateway, "bad_gateway", lease.detail, false);
    }
    deadline_.watch_upstream(&lease.connection->socket);
    ex.connection = "new";
    auto& up = *lease.connection;
    auto sent = co_await relay_message(deadline_, {socket_, Side::client, cfg.idle_timeout}, buffer_, parser,
                                       {up.socket, Side::upstream, cfg.upstream_timeout}, true, nullptr, [] {});
    if (!sent.ok()) {
        context_.counters.bad_gateway.fetch_add(1, std::memory_order_relaxed);
        co_return co_await reply_error(ex, http::status::bad_gateway, "bad_gateway",
                                       "sending the upgrade request failed", false);
    }
    const auto sent_at = Clock::now();
    http::response_parser<http::buffer_body> rp;
    rp.body_limit(boost::none);
    deadline_.expect(Side::upstream, cfg.upstream_timeout);
    auto [rec, rn] = co_await http::async_read_header(up.socket, up.buffer, rp, use_nothrow);
    (void)rn;
    deadline_.clear();
    if (rec) {
        const bool timeout = deadline_.expired();
        (timeout ? context_.counters.gateway_timeout : context_.counters.bad_gateway)
            .fetch_add(1, std::memory_order_relaxed);
        co_return co_await reply_error(ex, timeout ? http::status::gateway_timeout : http::status::bad_gateway,
                                       timeout ? "gateway_timeout" : "bad_gateway",
                                       "upstream did not answer the upgrade request: " + rec.message(), false);
    }
    ex.upstream_ms = ms_between(sent_at, Clock::now());
    auto& res = rp.get();
    ex.status = res.result_int();
    if (res.result() != http::status::switching_protocols) {
        // Upgrade declined: an ordinary response; the upstream connection is not reused.
        strip_hop_by_hop(res);
        if (res.count("X-Request-ID") == 0) res.set("X-Request-ID", ex.request_id);
        res.keep_alive(false);
        auto got = co_await relay_message(deadline_, {up.socket, Side::upstream, cfg.upstream_timeout}, up.buffer, rp,
                                          {socket_, Side::client, cfg.idle_timeout}, true, nullptr, [] {});
        deadline_.clear();
        ex.bytes_out = got.body_bytes;
        log_access(ex);
        co_return false;
    }
    if (res.count("X-Request-ID") == 0) res.set("X-Request-ID", ex.request_id);
    std::string head;
    serialize_head(res.base(), head);
    deadline_.expect(Side::client, cfg.idle_timeout);
    auto [wec, wn] = co_await asio::async_write(socket_, asio::buffer(head), use_nothrow);
    (void)wn;
    if (wec) co_return false;
    // Bytes that arrived with the headers belong to the tunnel: pass them on first.
    error_code ignored;
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
                   {{"rid", ex.request_id}, {"bytes_to_upstream", bytes.client_to_upstream},
                    {"bytes_to_client", bytes.upstream_to_client}});
    co_return false;
}

asio::awaitable<bool> DownstreamSession::reply_error(Exchange& ex, http::status status, std::string_view error,
                                                     std::string detail, bool keep_alive, std::string_view upgrade) {
    if (context_.draining.load(std::memory_order_relaxed)) keep_alive = false;
    ex.status = static_cast<unsigned>(status);
    ex.error = detail;
    // 5xx answers get their own warn line (the upstream is in trouble); for 4xx the access line,
    // which carries the error code, is the one info line, and this one is debug.
    const auto level = static_cast<unsigned>(status) >= 500 ? LogLevel::warn : LogLevel::debug;
    if (log::enabled(level))
        log::write(level, "crudcast answered itself",
               {{"rid", ex.request_id}, {"client", client_address_}, {"status", ex.status}, {"error", error},
                {"detail", detail}});
    auto res = error_response(status, error, detail, ex.request_id, 11, keep_alive);
    if (!upgrade.empty()) res.set(http::field::upgrade, upgrade);
    ex.bytes_out = res.body().size();
    deadline_.expect(Side::client, context_.config.idle_timeout);
    std::string wire;
    serialize_head(res.base(), wire);
    wire += res.body();
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(wire), use_nothrow);
    deadline_.clear();
    (void)n;
    log_access(ex);
    co_return keep_alive && !ec;
}

void DownstreamSession::log_access(const Exchange& ex) const {
    context_.counters.count_response(ex.method, ex.status);
    context_.counters.bytes_in.fetch_add(ex.bytes_in, std::memory_order_relaxed);
    context_.counters.bytes_out.fetch_add(ex.bytes_out, std::memory_order_relaxed);
    if (ex.upstream_ms) context_.counters.observe_upstream(*ex.upstream_ms);
    const double total = ms_between(ex.start, Clock::now());
    context_.recent.record(ex.request_id, ex.method, ex.target, ex.status, total, ex.note, ex.error);
    if (!log::enabled(LogLevel::info)) return;
    thread_local std::vector<log::Field> fields;
    fields.clear();
    fields.emplace_back("client", client_address_);
    fields.emplace_back("method", ex.method);
    fields.emplace_back("target", ex.target);
    fields.emplace_back("status", ex.status);
    fields.emplace_back("bytes", ex.bytes_out);
    if (ex.upstream_ms) {
        fields.emplace_back("upstream_ms", *ex.upstream_ms);
    } else {
        fields.emplace_back("upstream_ms", "-");
    }
    fields.emplace_back("total_ms", total);
    fields.emplace_back("conn", ex.connection);
    fields.emplace_back("rid", ex.request_id);
    for (const auto& [key, value] : ex.note) fields.emplace_back(key, value);
    if (!ex.error.empty()) fields.emplace_back("error", ex.error);
    log::write(LogLevel::info, "request", fields);
}

}  // namespace crudcast::proxy
