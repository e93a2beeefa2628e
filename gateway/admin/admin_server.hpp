// admin_server.hpp: the admin listener (--admin-listen, default 127.0.0.1:9901), separate from
// the proxy port so it never shadows an upstream path: GET /healthz, /readyz, /metrics, and the
// live page (GET /) with the JSON it polls (/api/stats, /api/requests, /api/info).
// With admin-token-file every path but /healthz, /readyz and the page itself (static, no data)
// needs `Authorization: Bearer <token>`; the page sends it from its own URL's #token=.
// Readiness comes from a probe of the upstream (a TCP connect, or GET --upstream-health-path)
// every second.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include "config/config.hpp"

#include "common/asio.hpp"

namespace crudcast::gateway {

// Where the admin listener's answers come from; each is called on the admin listener's thread.
struct AdminContent {
    std::function<std::string()> metrics;   // Prometheus text
    std::function<std::string()> stats;     // JSON
    std::function<std::string()> requests;  // JSON, newest first
    std::function<std::string()> info;      // JSON
    std::function<std::string()> bus;       // "nats up", "memory up": a line of /readyz
};

// Whether the admin listener answers a request (against DNS rebinding): its Host is an IPv4 or
// bracketed IPv6 literal or `localhost`, each with an optional port, or one of `allowed_names`
// (admin-allowed-hosts: lower case, no port), compared case-insensitively. A request without Host
// is answered only on HTTP/1.0; two Host headers never. The others get 421 Misdirected Request.
bool host_allowed(std::string_view host_header, const std::vector<std::string>& allowed_names);
bool host_allowed(const beast::http::request<beast::http::string_body>& req,
                  const std::vector<std::string>& allowed_names);

// The admin token: the file's bytes with one trailing newline stripped. Throws
// config::ConfigError("admin-token-file", ...) when the file cannot be read, is empty, or holds a
// byte a header cannot carry (space, control).
std::string read_admin_token(const std::string& path);

// Whether an Authorization header value is "Bearer <token>" (scheme in any case), compared in
// constant time so the time of a refusal says nothing about how much of a guess was right.
bool bearer_token_matches(std::string_view authorization, std::string_view token);

class AdminServer {
public:
    // Reads admin-token-file when set: throws config::ConfigError as read_admin_token does.
    AdminServer(asio::io_context& context, const config::Config& config, AdminContent content,
                std::atomic<bool>& draining);

    void bind(const config::Endpoint& endpoint);  // throws std::system_error / boost::system::system_error
    std::uint16_t port() const { return port_; }
    void start();
    void close();  // thread-safe

    // For tests and logs: the current readiness verdict and why.
    std::pair<bool, std::string> readiness() const;

private:
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> serve(tcp::socket socket);
    // nullopt when the request may be answered; otherwise the 401 to send (logged at debug).
    std::optional<beast::http::response<beast::http::string_body>> refusal(
        const beast::http::request<beast::http::string_body>& req, tcp::socket& socket) const;
    beast::http::response<beast::http::string_body> answer(
        const beast::http::request<beast::http::string_body>& req) const;
    asio::awaitable<void> probe_loop();
    asio::awaitable<std::string> probe_once();  // "" when the upstream answered

    asio::io_context& context_;
    const config::Config& config_;
    AdminContent content_;
    std::atomic<bool>& draining_;
    std::string token_;  // "" = no token asked for
    tcp::acceptor acceptor_;
    std::uint16_t port_ = 0;
    asio::steady_timer probe_timer_;
    bool closed_ = false;

    mutable std::mutex mutex_;
    std::chrono::steady_clock::time_point last_ok_{};
    bool ever_ok_ = false;
    std::string last_error_ = "upstream not probed yet";
};

}  // namespace crudcast::gateway
