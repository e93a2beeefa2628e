// downstream_session.hpp: one client connection: reads requests (keep-alive, pipelined in order),
// forwards each to the upstream through the pool, streams the answer back, logs one access line.
#pragma once

#include <chrono>
#include <list>
#include <memory>
#include <string>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "common/asio.hpp"
#include "proxy/deadline.hpp"
#include "proxy/proxy_context.hpp"

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
    void check_deadline(std::chrono::steady_clock::time_point now) { deadline_.check(now); }

private:
    using RequestParser = http::request_parser<http::buffer_body>;
    struct Exchange;  // one request/response: ids, timings, outcome for the access line

    asio::awaitable<void> run();
    // Serves one parsed request header; returns whether the connection may carry another request.
    asio::awaitable<bool> serve(RequestParser& parser);
    asio::awaitable<bool> forward(RequestParser& parser, Exchange& ex);
    asio::awaitable<bool> tunnel(RequestParser& parser, Exchange& ex);
    // Answers with crudcast's own JSON error; returns whether the connection may stay open.
    asio::awaitable<bool> reply_error(Exchange& ex, http::status status, std::string_view error,
                                      std::string detail, bool keep_alive, std::string_view upgrade = {});
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
    bool idle_ = false;          // waiting for the first byte of a request
    bool drain_requested_ = false;
};

}  // namespace crudcast::proxy
