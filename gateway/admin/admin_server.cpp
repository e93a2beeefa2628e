// admin_server.cpp: see admin_server.hpp. Not a hot path: Beast's tcp_stream and string bodies.
#include "gateway/admin/admin_server.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <openssl/crypto.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "common/log.hpp"
#include "common/text.hpp"
#include "common/url.hpp"
#include "gateway/admin/admin_page.hpp"
#include "proxy/error_response.hpp"

namespace crudcast::gateway {

namespace http = beast::http;
using config::LogLevel;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto probe_period = std::chrono::seconds(1);
constexpr auto ready_window = std::chrono::seconds(3);  // the last good probe must be this recent

// A browser on a DNS-rebinding name (evil.example resolving to 127.0.0.1) sends that name as Host;
// crudcast's own clients (the kubelet, Prometheus, curl, the live page) use an address or localhost.
http::response<http::string_body> misdirected(const http::request<http::string_body>& req, tcp::socket& socket) {
    const bool has_host = req.count(http::field::host) != 0;
    const std::string host(req[http::field::host]);
    error_code ec;
    const auto peer = socket.remote_endpoint(ec);
    log::write(LogLevel::warn, "admin request refused: Host is not an address, localhost or in admin-allowed-hosts",
               {{"client", ec ? std::string("-") : peer.address().to_string()},
                {"host", has_host ? host : std::string("(none)")},
                {"target", std::string(req.target())}});
    const std::string detail = has_host ? "Host " + host +
                                              " is not served here; use the listener's address, localhost, or a "
                                              "name listed in admin-allowed-hosts"
                                        : "an HTTP/1.1 request needs a Host header";
    return proxy::error_response(http::status::misdirected_request, "misdirected_request", detail, "-", req.version(),
                                 req.keep_alive());
}

// Open whatever the token: the probes (a kubelet sends no token) and the page, which is the same
// static HTML for every install and gets its data from the /api paths that do need the token.
bool open_path(std::string_view path) { return path == "/healthz" || path == "/readyz" || path == "/"; }

}  // namespace

std::string read_admin_token(const std::string& path) {
    const auto fail = [&](const std::string& why) { throw config::ConfigError("admin-token-file", why); };
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) fail("cannot read " + config::quoted(path) + ": it is a directory");
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot read " + config::quoted(path) + ": " + std::strerror(errno));
    std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) fail("cannot read " + config::quoted(path) + ": " + std::strerror(errno));
    if (token.ends_with('\n')) {
        token.pop_back();
        if (token.ends_with('\r')) token.pop_back();  // a file saved with CRLF
    }
    if (token.empty()) fail(config::quoted(path) + " is empty");
    if (std::ranges::any_of(token, [](unsigned char c) { return c <= ' ' || c == 0x7f; }))
        fail(config::quoted(path) + " holds a space, newline or control character, which a bearer token cannot");
    return token;
}

bool bearer_token_matches(std::string_view authorization, std::string_view token) {
    constexpr std::string_view scheme = "bearer ";
    if (authorization.size() < scheme.size() || !iequals(authorization.substr(0, scheme.size()), scheme)) return false;
    const auto given = trim(authorization.substr(scheme.size()));
    // The length is not secret (the admin can see it in the file); the bytes are.
    return given.size() == token.size() && !token.empty() &&
           CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
}

AdminServer::AdminServer(asio::io_context& context, const config::Config& config, AdminContent content,
                         std::atomic<bool>& draining)
    : context_(context),
      config_(config),
      content_(std::move(content)),
      draining_(draining),
      token_(config.admin_token_file.empty() ? std::string() : read_admin_token(config.admin_token_file)),
      acceptor_(context),
      probe_timer_(context) {}

void AdminServer::bind(const config::Endpoint& endpoint) {
    tcp::resolver resolver(context_);
    const tcp::endpoint ep = *resolver
                                  .resolve(endpoint.host, std::to_string(endpoint.port),
                                           tcp::resolver::passive | tcp::resolver::numeric_service)
                                  .begin();
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
}

void AdminServer::start() {
    asio::co_spawn(context_, accept_loop(), asio::detached);
    asio::co_spawn(context_, probe_loop(), asio::detached);
}

void AdminServer::close() {
    asio::post(context_, [this] {
        closed_ = true;
        error_code ignored;
        acceptor_.close(ignored);
        probe_timer_.cancel();
    });
}

std::pair<bool, std::string> AdminServer::readiness() const {
    if (draining_.load()) return {false, "draining: crudcast is shutting down"};
    std::lock_guard lock(mutex_);
    if (ever_ok_ && Clock::now() - last_ok_ <= ready_window) return {true, "upstream answered"};
    return {false, last_error_};
}

asio::awaitable<void> AdminServer::accept_loop() {
    for (;;) {
        auto [ec, socket] = co_await acceptor_.async_accept(use_nothrow);
        if (ec || closed_) co_return;
        asio::co_spawn(context_, serve(std::move(socket)), asio::detached);
    }
}

asio::awaitable<void> AdminServer::serve(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        http::request<http::string_body> req;
        stream.expires_after(std::chrono::seconds(30));
        auto [ec, n] = co_await http::async_read(stream, buffer, req, use_nothrow);
        (void)n;
        if (ec) co_return;
        http::response<http::string_body> res;
        if (!host_allowed(req, config_.admin_allowed_hosts)) res = misdirected(req, stream.socket());
        else if (auto refused = refusal(req, stream.socket())) res = std::move(*refused);
        else res = answer(req);
        res.set(http::field::server, "crudcast");
        res.set(http::field::cache_control, "no-store");
        res.set("X-Content-Type-Options", "nosniff");
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        if (req.method() == http::verb::head) res.body().clear();
        auto [wec, wn] = co_await http::async_write(stream, res, use_nothrow);
        (void)wn;
        if (wec || !req.keep_alive()) co_return;
    }
}

std::optional<http::response<http::string_body>> AdminServer::refusal(const http::request<http::string_body>& req,
                                                                      tcp::socket& socket) const {
    const auto path = std::string_view(req.target()).substr(0, req.target().find('?'));
    if (token_.empty() || open_path(path)) return std::nullopt;
    const auto headers = req.count(http::field::authorization);
    if (headers == 1 && bearer_token_matches(req[http::field::authorization], token_)) return std::nullopt;
    if (log::enabled(LogLevel::debug)) {
        error_code ec;
        const auto peer = socket.remote_endpoint(ec);
        // The path without its query, and never the header: a wrong guess may be a real token's typo.
        log::write(LogLevel::debug, "admin request refused: bearer token missing or wrong",
                   {{"client", ec ? std::string("-") : peer.address().to_string()},
                    {"path", path},
                    {"reason", headers == 0 ? "missing" : "wrong"}});
    }
    auto res = proxy::error_response(http::status::unauthorized, "unauthorized",
                                     "this admin path needs Authorization: Bearer <token> (admin-token-file)", "-",
                                     req.version(), req.keep_alive());
    res.set(http::field::www_authenticate, "Bearer realm=\"crudcast-admin\"");
    return res;
}

http::response<http::string_body> AdminServer::answer(const http::request<http::string_body>& req) const {
    http::response<http::string_body> res{http::status::ok, req.version()};
    const auto target = std::string_view(req.target()).substr(0, req.target().find('?'));
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
        res.result(http::status::method_not_allowed);
        res.set(http::field::allow, "GET, HEAD");
        res.set(http::field::content_type, "text/plain");
        res.body() = "only GET and HEAD\n";
    } else if (target == "/healthz") {
        res.set(http::field::content_type, "text/plain");
        res.body() = "ok\n";
    } else if (target == "/readyz") {
        auto [ready, why] = readiness();
        res.result(ready ? http::status::ok : http::status::service_unavailable);
        res.set(http::field::content_type, "text/plain");
        res.body() = (ready ? "ready: " : "not ready: ") + why + "\n";
        // The bus does not make crudcast unready: proxying works while a broker is down.
        if (content_.bus) res.body() += "bus: " + content_.bus() + "\n";
    } else if (target == "/metrics") {
        res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        res.body() = content_.metrics();
    } else if (target == "/") {
        res.set(http::field::content_type, "text/html; charset=utf-8");
        // Inline script and style only; the page talks to this listener and to the events
        // WebSocket on the proxy port, and may not be framed.
        res.set("Content-Security-Policy",
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
                "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
        res.set("Referrer-Policy", "no-referrer");
        res.body() = admin_page_html();
    } else if (target == "/api/stats" || target == "/api/requests" || target == "/api/info") {
        res.set(http::field::content_type, "application/json");
        res.body() = target == "/api/stats"      ? content_.stats()
                     : target == "/api/requests" ? content_.requests()
                                                 : content_.info();
    } else {
        res.result(http::status::not_found);
        res.set(http::field::content_type, "text/plain");
        res.body() = "not found; try /, /healthz, /readyz, /metrics, /api/stats, /api/requests or /api/info\n";
    }
    return res;
}

asio::awaitable<void> AdminServer::probe_loop() {
    bool was_ready = false;
    for (;;) {
        const auto error = co_await probe_once();
        const bool ok = error.empty();
        {
            std::lock_guard lock(mutex_);
            if (ok) {
                last_ok_ = Clock::now();
                ever_ok_ = true;
            } else {
                last_error_ = error;
            }
        }
        if (ok != was_ready) {
            log::write(ok ? LogLevel::info : LogLevel::warn,
                       ok ? "upstream is answering: ready" : "upstream probe failed: not ready",
                       {{"upstream", config_.upstream.host_header}, {"detail", ok ? std::string("-") : error}});
            was_ready = ok;
        }
        probe_timer_.expires_after(probe_period);
        auto [ec] = co_await probe_timer_.async_wait(use_nothrow);
        if (ec || closed_) co_return;
    }
}

asio::awaitable<std::string> AdminServer::probe_once() {
    const auto& up = config_.upstream;
    tcp::resolver resolver(context_);
    auto [rec, results] = co_await resolver.async_resolve(up.host, std::to_string(up.port), use_nothrow);
    if (rec) co_return "cannot resolve " + up.host + ": " + rec.message();
    beast::tcp_stream stream(context_);
    stream.expires_after(config_.connect_timeout);
    auto [cec, ep] = co_await stream.async_connect(results, use_nothrow);
    (void)ep;
    if (cec) co_return "connect to " + up.host_header + " failed: " + cec.message();
    if (config_.upstream_health_path.empty()) co_return std::string();
    http::request<http::empty_body> req{http::verb::get, up.base_path + config_.upstream_health_path, 11};
    req.set(http::field::host, up.host_header);
    req.set(http::field::user_agent, "crudcast-readiness-probe");
    req.keep_alive(false);
    stream.expires_after(config_.upstream_timeout);
    auto [wec, wn] = co_await http::async_write(stream, req, use_nothrow);
    (void)wn;
    if (wec) co_return "health request to " + up.host_header + " failed: " + wec.message();
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    auto [hec, hn] = co_await http::async_read(stream, buffer, res, use_nothrow);
    (void)hn;
    if (hec) co_return "no answer to GET " + config_.upstream_health_path + ": " + hec.message();
    if (res.result_int() / 100 != 2)
        co_return "GET " + config_.upstream_health_path + " answered " + std::to_string(res.result_int());
    co_return std::string();
}

bool host_allowed(const http::request<http::string_body>& req, const std::vector<std::string>& allowed_names) {
    const auto hosts = req.count(http::field::host);
    if (hosts == 0) return req.version() < 11;  // HTTP/1.0 may leave it out; 1.1 must send it (RFC 9112)
    return hosts == 1 && host_allowed(req[http::field::host], allowed_names);
}

bool host_allowed(std::string_view host_header, const std::vector<std::string>& allowed_names) {
    const auto parts = url::parse_authority(host_header);
    if (!parts || parts->has_userinfo ||
        (parts->port && !parts->port->empty() &&
         !std::ranges::all_of(*parts->port, [](char c) { return c >= '0' && c <= '9'; })))
        return false;
    if (parts->ipv6) return true;  // [::1], [fd00::5]: Boost.URL checked the address
    error_code ec;
    (void)asio::ip::make_address_v4(parts->host, ec);
    if (!ec) return true;  // 127.0.0.1, 10.1.2.3
    const std::string name = ascii_lower(parts->host);
    return name == "localhost" || std::ranges::find(allowed_names, name) != allowed_names.end();
}

}  // namespace crudcast::gateway
