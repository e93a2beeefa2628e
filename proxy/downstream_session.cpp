// downstream_session.cpp: see downstream_session.hpp. The connection loop: reading requests, routing
// each (WebSocket hand-off, tunnel, forward), crudcast's own answers and the access line.
#include "proxy/downstream_session.hpp"

#include <algorithm>
#include <limits>
#include <optional>

#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include "common/cidr.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "common/url.hpp"
#include "proxy/error_response.hpp"
#include "proxy/framing.hpp"
#include "proxy/header_rules.hpp"
#include "proxy/wire.hpp"

namespace crudcast::proxy {

using config::LogLevel;

namespace {

// Beast calls the second of Content-Length and Transfer-Encoding the bad one ("bad Content-Length");
// whoever reads the answer or the log needs to hear that the request had both (RFC 9112 §6.3: a
// request smuggling attempt or a broken client).
std::string head_error_text(const http::fields& fields, const error_code& ec) {
    if ((ec == http::error::bad_content_length && fields.count(http::field::transfer_encoding) > 0) ||
        (ec == http::error::bad_transfer_encoding && fields.count(http::field::content_length) > 0)) {
        return "both Content-Length and Transfer-Encoding";
    }
    return ec.message();
}

}  // namespace

DownstreamSession::DownstreamSession(tcp::socket socket, std::shared_ptr<ProxyContext> context)
    : socket_(std::move(socket)), owner_(std::move(context)), context_(*owner_) {
    // Every read buffer has a maximum: a header, a small body read whole, and one read's worth more.
    // Past it (a chunk extension or trailer section without end) reading fails instead of growing.
    const auto& cfg = context_.config;
    buffer_.max_size(cfg.max_header_bytes + cfg.client_body_buffer_bytes + relay_buffer_size);
    request_chunk_limit_.limit = cfg.max_header_bytes;
    deadline_.watch_client(&socket_);
    error_code ec;
    const auto peer = socket_.remote_endpoint(ec);
    client_ip_ = ec ? std::string("unknown") : peer.address().to_string();
    client_address_ =
        ec ? client_ip_
           : (peer.address().is_v6() ? "[" + client_ip_ + "]" : client_ip_) + ":" + std::to_string(peer.port());
    peer_trusted_ = !ec && net::contains_any(context_.config.trusted_proxies, peer.address());
    socket_.set_option(tcp::no_delay(true), ec);
    registration_ = context_.sessions.insert(context_.sessions.end(), this);
    context_.counters.open_client_connections.fetch_add(1, std::memory_order_relaxed);
}

DownstreamSession::~DownstreamSession() {
    context_.counters.open_client_connections.fetch_sub(1, std::memory_order_relaxed);
    context_.sessions.erase(registration_);
}

void DownstreamSession::start() {
    asio::co_spawn(
        socket_.get_executor(), [self = shared_from_this()] { return self->run(); }, asio::detached);
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
    bool linger = false;  // the loop ended on an answer that closes, and the client may still be sending
    error_code ignored;
    if (log::enabled(LogLevel::debug)) log::write(LogLevel::debug, "client connected", {{"client", client_address_}});
    for (;;) {
        if (drain_requested_ || context_.draining.load(std::memory_order_relaxed)) break;
        if (buffer_.size() == 0 && !co_await await_request(first_request)) break;
        deadline_.expect(Side::client, cfg.client_header_timeout);
        RequestParser parser;
        limit_request_parser(parser, cfg.max_header_bytes, cfg.max_body_bytes);
        auto [ec, n] = co_await http::async_read_header(socket_, buffer_, parser, use_nothrow);
        deadline_.clear();
        // Beast applies header_limit to the request line and to the header lines separately, so a head
        // could be twice max-header-bytes; the whole head (n bytes) is what the setting bounds.
        if (!ec && n > cfg.max_header_bytes) ec = http::error::header_limit;
        if (ec) {
            co_await refuse_header(parser, ec);
            linger = true;
            break;
        }
        const bool keep = co_await serve(parser);
        first_request = false;
        if (!keep) {
            // As nginx decides: only when the client may still be sending (its body unread, or more
            // bytes already here), not for a client that got its whole answer and simply stays.
            linger = !parser.is_done() || buffer_.size() > 0 || socket_.available(ignored) > 0;
            break;
        }
    }
    deadline_.clear();
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    if (linger && !context_.draining.load(std::memory_order_relaxed)) co_await linger_close();
    socket_.close(ignored);
}

// After an answer that ends the connection, the client may still be sending (a body crudcast
// refused, a pipelined request). Closing with unread bytes is a reset, which fails the client's
// writes before it reads the answer. So, as nginx's lingering close: the send side is already shut,
// read and discard what still comes until the client closes, at most linger_time in all.
asio::awaitable<void> DownstreamSession::linger_close() {
    constexpr auto linger_time = std::chrono::seconds(5);
    deadline_.expect(Side::client, linger_time);
    idle_ = true;  // a drain cuts the linger short (drain() cancels an idle session's read)
    for (;;) {
        buffer_.clear();
        auto [ec, n] = co_await socket_.async_read_some(buffer_.prepare(16 * 1024), use_nothrow);
        if (ec) break;  // the client's FIN, a reset, or the deadline closing the socket
        (void)n;
    }
    deadline_.clear();
    if (deadline_.expired() && log::enabled(LogLevel::debug))
        log::write(LogLevel::debug, "client connection closed",
                   {{"client", client_address_}, {"why", "linger time over"}});
}

asio::awaitable<bool> DownstreamSession::await_request(bool first_request) {
    // Between requests the idle timeout applies; once a request's first byte is in, the
    // header must be complete within the client header timeout (slow-header clients).
    const auto& cfg = context_.config;
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
                                : drain_requested_       ? "draining"
                                : ec == asio::error::eof ? "client closed"
                                                         : ec.message()}});
        co_return false;
    }
    buffer_.commit(n);
    co_return true;
}

asio::awaitable<void> DownstreamSession::refuse_header(RequestParser& parser, const error_code& ec) {
    const auto& cfg = context_.config;
    Exchange ex;
    ex.request_id = generate_request_id();
    if (deadline_.expired()) {
        log::write(LogLevel::info, "client disconnected: request header not complete within client-header-timeout",
                   {{"client", client_address_},
                    {"timeout_ms", static_cast<std::int64_t>(cfg.client_header_timeout.count())},
                    {"rid", ex.request_id}});
        co_return;
    }
    if (is_client_gone(ec)) {
        if (log::enabled(LogLevel::debug))
            log::write(LogLevel::debug, "client closed the connection mid-header",
                       {{"client", client_address_}, {"rid", ex.request_id}});
        co_return;
    }
    // The parser stores the request line as soon as it is whole, so a header refused after it
    // (repeated Content-Length, both framing headers...) still names its request in the access line.
    ex.method = std::string(parser.get().method_string());
    ex.target = std::string(parser.get().target());
    if (ec == http::error::header_limit) {
        co_await reply_error(
            ex, http::status::request_header_fields_too_large, "header_too_large",
            "request header exceeds max-header-bytes (" + std::to_string(cfg.max_header_bytes) + " bytes)", false);
    } else if (ec == http::error::body_limit) {
        co_await reply_error(ex, http::status::payload_too_large, "body_too_large",
                             "request body exceeds max-body-bytes (" + std::to_string(cfg.max_body_bytes) + " bytes)",
                             false);
    } else {
        co_await reply_error(ex, http::status::bad_request, "bad_request",
                             "malformed request: " + head_error_text(parser.get(), ec), false);
    }
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
    if (const auto refused = check_request_head(req); !refused.ok()) {
        co_return co_await reply_error(ex, static_cast<http::status>(refused.status),
                                       refused.status == 501 ? "not_implemented" : "bad_request",
                                       std::string(refused.reason), false);
    }

    const auto& cfg = context_.config;
    auto decision = decide_target(ex.target, cfg.upstream.base_path, context_.own_authorities);
    if (ex.target == "*" && req.method() != http::verb::options) {  // RFC 9112 §3.2.4: server-wide OPTIONS only
        decision = {TargetDecision::reject, {}, "the asterisk-form target is for OPTIONS only", {}};
    }
    if (decision.kind == TargetDecision::reject) {
        co_return co_await reply_error(ex, http::status::bad_request, "bad_request", decision.reason, false);
    }
    const auto path = std::string_view(ex.target).substr(0, ex.target.find('?'));
    if (context_.websocket_handoff && path == cfg.ws_path) {
        const bool websocket = is_upgrade_request(req) && iequals(req[http::field::upgrade], "websocket");
        const bool sse =
            !websocket && req.method() == http::verb::get && accepts_event_stream(req[http::field::accept]);
        if (websocket || sse) {
            // Not a ?: around co_await: g++ 12 destroys such a temporary twice.
            ProxyContext::WebSocketAdmission admission;
            if (context_.websocket_admission)
                admission = co_await context_.websocket_admission(req, handshake_info(req, ex));
            if (admission.status != 0) {
                ex.note.emplace_back("ws", "denied");
                ex.note.emplace_back("reason", std::move(admission.reason));
                co_return co_await reply_error(ex, static_cast<http::status>(admission.status), admission.error,
                                               std::move(admission.detail), false, admission.headers);
            }
            ex.status = websocket ? 101 : 200;
            ex.note.emplace_back("ws", "subscribe");
            if (sse) ex.note.emplace_back("stream", "sse");
            admission.grant.sse = sse;
            if (admission.grant.topics) ex.note.emplace_back("topics", join(*admission.grant.topics));
            if (!admission.grant.who.empty()) ex.note.emplace_back("sub", admission.grant.who);
            log_access(ex);
            deadline_.clear();
            buffer_.max_size(std::numeric_limits<std::size_t>::max());  // the WebSocket side sets its own
            context_.websocket_handoff(std::move(socket_), parser.release(), std::move(buffer_), client_address_,
                                       ex.request_id, std::move(admission.grant));
            co_return false;
        }
        const auto host = req[http::field::host];
        std::string hint = "this is crudcast's event stream: connect with a WebSocket client, e.g. ws://" +
                           (host.empty() ? std::string("HOST:PORT") : std::string(host)) + cfg.ws_path +
                           "?topic=author, or GET it with Accept: text/event-stream (Server-Sent Events)";
        const bool keep = parser.is_done() && req.keep_alive();
        const std::pair<std::string, std::string> upgrade[] = {{"Upgrade", "websocket"}};
        co_return co_await reply_error(ex, http::status::upgrade_required, "upgrade_required", std::move(hint), keep,
                                       upgrade);
    }
    req.target(decision.target);
    if (!decision.authority.empty()) req.set(http::field::host, decision.authority);
    if (is_upgrade_request(req)) co_return co_await tunnel(parser, ex);
    co_return co_await forward(parser, ex);
}

asio::awaitable<bool> DownstreamSession::reply_error(Exchange& ex, http::status status, std::string_view error,
                                                     std::string detail, bool keep_alive, HeaderList extra) {
    if (context_.draining.load(std::memory_order_relaxed)) keep_alive = false;
    ex.status = static_cast<unsigned>(status);
    ex.error = detail;
    // 5xx answers get their own warn line (the upstream is in trouble); for 4xx, and for the 501 a
    // client's unsupported transfer coding gets (its fault, not the upstream's), the access line,
    // which carries the error code, is the one info line, and this one is debug.
    const bool upstream_trouble = static_cast<unsigned>(status) >= 500 && status != http::status::not_implemented;
    auto level = upstream_trouble ? LogLevel::warn : LogLevel::debug;
    std::uint64_t repeated = 0;
    if (upstream_trouble) {
        const auto decision = ex.failure ? context_.counters.failure_warnings.record(*ex.failure)
                                         : context_.counters.failure_warnings.record_own_refusal();
        repeated = decision.repeated;
        level = decision.log ? LogLevel::warn : LogLevel::debug;
    }
    if (log::enabled(level)) {
        const log::Field fields[] = {{"rid", ex.request_id}, {"client", client_address_}, {"status", ex.status},
                                     {"error", error},       {"detail", detail},          {"repeated", repeated}};
        log::write(level, "crudcast answered itself", std::span(fields, repeated > 0 ? 6 : 5));
    }
    auto res = error_response(status, error, detail, ex.request_id, 11, keep_alive);
    for (const auto& [name, value] : extra) res.set(name, value);
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

LogLevel DownstreamSession::failure_level(Failure kind, std::uint64_t& repeated) const {
    const auto decision = context_.counters.failure_warnings.record(kind);
    repeated = decision.repeated;
    return decision.log ? LogLevel::warn : LogLevel::debug;
}

void DownstreamSession::log_access(const Exchange& ex) const {
    context_.counters.count_response(ex.method, ex.status);
    context_.counters.bytes_in.fetch_add(ex.bytes_in, std::memory_order_relaxed);
    context_.counters.bytes_out.fetch_add(ex.bytes_out, std::memory_order_relaxed);
    if (ex.upstream_ms) context_.counters.observe_upstream(*ex.upstream_ms);
    const double total = ms_since(ex.start);
    // A bearer token in the query (browsers cannot send a WebSocket header) never reaches crudcast's logs.
    std::string redacted;
    const bool has_token = ex.target.find("access_token=") != std::string::npos;
    if (has_token) redacted = url::redact_query_value(ex.target, "access_token");
    const std::string& target = has_token ? redacted : ex.target;
    context_.recent.record(ex.request_id, ex.method, target, ex.status, total, ex.note, ex.error);
    if (!log::enabled(LogLevel::info)) return;
    thread_local std::vector<log::Field> fields;
    fields.clear();
    fields.emplace_back("client", client_address_);
    fields.emplace_back("method", ex.method);
    fields.emplace_back("target", target);
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
