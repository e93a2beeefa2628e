// downstream_session.hpp: one client connection: reads requests (keep-alive, pipelined in order),
// forwards each to the upstream through the pool, streams the answer back, logs one access line.
// The connection loop and crudcast's own answers live in downstream_session.cpp, the way of one
// request to the upstream and back (and every failure on it) in downstream_forward.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "common/asio.hpp"
#include "proxy/deadline.hpp"
#include "proxy/exchange_failure.hpp"
#include "proxy/proxy_context.hpp"
#include "proxy/relay.hpp"

namespace crudcast::proxy {

namespace http = beast::http;

class DownstreamSession : public std::enable_shared_from_this<DownstreamSession> {
public:
    // The session shares ownership of its thread's ProxyContext, so the context outlives every session
    // even when the io_context destroys pending sessions at shutdown.
    DownstreamSession(tcp::socket socket, std::shared_ptr<ProxyContext> context);
    ~DownstreamSession();

    // Spawns the session's coroutine on its socket's executor; the coroutine keeps it alive.
    void start();
    // Drain: an idle connection (between requests) is closed now; a busy one after its response.
    void drain();
    // The per-thread sweep: closes the overdue side when the running timeout has passed.
    // Called by the thread's sweep (every 100 ms): the deadline, and a client watch due to start.
    void check_deadline(std::chrono::steady_clock::time_point now) {
        deadline_.check(now);
        if (watch_.active && !watch_.armed && now >= watch_.arm_at) arm_client_wait();
    }

private:
    using Clock = std::chrono::steady_clock;
    using RequestParser = http::request_parser<http::buffer_body>;
    using ResponseParser = http::response_parser<http::buffer_body>;
    // Extra headers on an answer crudcast gives itself (Upgrade on the 426, WWW-Authenticate, Retry-After).
    using HeaderList = std::span<const std::pair<std::string, std::string>>;

    // One request/response: ids, timings, outcome for the access line.
    struct Exchange {
        Clock::time_point start = Clock::now();
        std::string request_id;
        std::string method;
        std::string target;  // as the client sent it
        unsigned status = 0;
        std::uint64_t bytes_out = 0;  // response body bytes sent to the client
        std::uint64_t bytes_in = 0;   // request body bytes sent to the upstream
        std::optional<double> upstream_ms;
        const char* connection = "-";    // upstream connection: new, reused, or - (none)
        std::string error;               // why crudcast answered itself, or why the exchange broke
        NoteFields note;                 // the observer's fields for the access line (events)
        std::optional<Failure> failure;  // set by fail(): its warn line is limited per kind (FailureWarnings)
    };
    static double ms_since(Clock::time_point t) {
        return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
    }
    struct Forwarding;  // one request on its way upstream, across its attempts
    // A step of an exchange that failed: which way, and the error behind it.
    struct Failed {
        Failure kind;
        error_code ec;
        std::string_view pool_detail =
            {};  // the pool's sentence for connect failures, the framing refusal for head_framing (both outlive it)
    };

    asio::awaitable<void> run();
    // Waits for the first byte of the next request; false when the connection should end instead.
    asio::awaitable<void> linger_close();
    asio::awaitable<bool> await_request(bool first_request);
    // Answers a request whose header could not be read (when the client is still there to hear it).
    asio::awaitable<void> refuse_header(RequestParser& parser, const error_code& ec);
    // Serves one parsed request header; returns whether the connection may carry another request.
    asio::awaitable<bool> serve(RequestParser& parser);

    // downstream_forward.cpp: the request upstream, the response back. Each step of forward returns the
    // failure that stopped it, if any; forward retries or hands it to fail().
    asio::awaitable<bool> forward(RequestParser& parser, Exchange& ex);
    // A small body (client-body-buffer-bytes) not yet in the buffer: whether to read it whole before
    // an upstream connection is taken (cheap: no I/O), and reading it (under client-body-timeout).
    bool body_to_buffer(const RequestParser& parser) const;
    // The observer's position now (X-Crudcast-Seq of a response that makes no event); nullopt: none.
    std::optional<std::uint64_t> stream_position() const;
    asio::awaitable<std::optional<Failed>> buffer_body(const RequestParser& parser);
    // X-Forwarded-*, Host and X-Request-ID for the upstream (header_rules.hpp), and their debug line.
    void apply_forwarding(http::fields& fields, const Exchange& ex) const;
    asio::awaitable<std::optional<Failed>> send_request(Forwarding& fw, Exchange& ex);
    asio::awaitable<std::optional<Failed>> read_response_head(Forwarding& fw, Exchange& ex);
    asio::awaitable<std::optional<Failed>> relay_response(Forwarding& fw, Exchange& ex);
    // While the upstream works on a request that cannot publish, the client socket is watched (from
    // 50 ms on, armed by the sweep: a fast answer costs no wait, no epoll_ctl, no cancel): bytes
    // that arrive are kept in the buffer (the next, pipelined request), EOF or a reset means the
    // client left, and the upstream connection is closed (the upstream sees the cancel).
    void watch_client(UpstreamConnection& up);
    void on_client_readable(std::uint64_t generation, const error_code& ec);
    void arm_client_wait();
    void inspect_client();  // once readable: one non-blocking read keeps bytes, or finds the client gone
    bool unwatch_client();  // stops watching; true when the client left meanwhile
    // The exchange went through: the upstream connection back to the pool (when it may be), the access line.
    void finish_exchange(Forwarding& fw, Exchange& ex);
    // The retry half of the failure funnel: true (after its debug line) when the rule replays the attempt.
    bool retries(const Failed& failed, const Forwarding& fw, const Exchange& ex) const;
    // An Upgrade request other than a WebSocket subscription: passed to the upstream on a fresh
    // connection; after its 101 the two connections are spliced byte for byte.
    asio::awaitable<bool> tunnel(RequestParser& parser, Exchange& ex);
    // `position`: the stream's position read before the upgrade request went upstream (X-Crudcast-Seq).
    asio::awaitable<bool> splice_upgraded(Exchange& ex, UpstreamConnection& up, http::response_header<>& res,
                                          std::optional<std::uint64_t> position);
    // The failure funnel: carries out failure_rule(kind) (counter, answer or log line, access line);
    // returns whether the connection may stay open.
    asio::awaitable<bool> fail(Exchange& ex, const Failed& failed, bool client_keep_alive = false,
                               bool has_body = false);

    // Answers with crudcast's own JSON error; returns whether the connection may stay open.
    asio::awaitable<bool> reply_error(Exchange& ex, http::status status, std::string_view error, std::string detail,
                                      bool keep_alive, HeaderList extra = {});
    // The handshake's view for the gateway's admission: the X-Forwarded-* this request would carry.
    ProxyContext::HandshakeInfo handshake_info(const http::request<http::buffer_body>& req, const Exchange& ex) const;
    // The level of a failure's warn line: warn, or debug when FailureWarnings has had one for its kind
    // this second; `repeated` is then the number of earlier failures the line speaks for.
    log::LogLevel failure_level(Failure kind, std::uint64_t& repeated) const;
    // The access line; also counts the exchange and records it for the admin live page.
    void log_access(const Exchange& ex) const;

    tcp::socket socket_;
    Deadline deadline_;
    beast::flat_buffer buffer_;
    std::shared_ptr<ProxyContext> owner_;
    ProxyContext& context_;
    std::list<DownstreamSession*>::iterator registration_;
    std::string client_ip_;
    std::string client_address_;  // "ip:port" for logs
    bool peer_trusted_ = false;   // the peer is one of trusted-proxies (its X-Forwarded-* are kept)
    bool idle_ = false;           // waiting for the first byte of a request
    struct ClientWatch {
        std::uint64_t generation = 0;  // a callback of an earlier watch finds a different one
        bool active = false;
        bool armed = false;  // the wait on the client socket is pending
        bool left = false;
        std::chrono::steady_clock::time_point arm_at;  // the sweep arms the wait from then on
        UpstreamConnection* upstream = nullptr;
    } watch_;
    // The chunk lines and trailers of request bodies (max-header-bytes) and of responses.
    ChunkLineLimit request_chunk_limit_;
    ChunkLineLimit response_chunk_limit_{upstream_header_limit};
    bool drain_requested_ = false;
};

}  // namespace crudcast::proxy
