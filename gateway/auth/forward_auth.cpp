// forward_auth.cpp: see forward_auth.hpp. One connection per question, closed after the answer
// (Connection: close): handshakes are rare next to requests, and a fresh connection cannot carry a
// half-read answer from the question before.
#include "gateway/auth/forward_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <charconv>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "common/asio.hpp"
#include "common/url.hpp"

namespace crudcast::gateway::auth {

namespace http = beast::http;
using Clock = std::chrono::steady_clock;
using Kind = ForwardAnswer::Kind;

namespace {

// An auth answer is a status and a few headers; anything bigger is not one.
constexpr std::uint32_t head_limit = 16 * 1024;
// A body is read only to see the answer end well; past this much the rest is not waited for (the
// connection closes anyway) and the answer stands.
constexpr std::size_t body_discard_limit = 64 * 1024;
// A name is resolved again now and then, so an auth service that moves (a new pod IP behind a name)
// is followed; a failed connect resolves again at once.
constexpr auto resolve_refresh = std::chrono::seconds(30);

// Where the question goes.
struct Target {
    std::string host;
    std::uint16_t port = 80;
    std::string host_header;
    std::string path;                      // the request target: path and query
    std::string text;                      // for the start-up log line
    std::optional<tcp::endpoint> literal;  // the host is an IP address: nothing to resolve
};

Target target_of(const config::Config& config) {
    const std::string& url = config.ws_auth_url;
    Target t;
    if (url.starts_with('/')) {
        // A path on the upstream, sent as written: it names the auth route itself.
        t.host = config.upstream.host;
        t.port = config.upstream.port;
        t.host_header = config.upstream.host_header;
        t.path = url;
        t.text = "http://" + t.host_header + t.path;
    } else {
        const auto parts = url::parse_url(url);
        if (!parts || parts->host.empty()) throw std::invalid_argument("ws-auth-url is neither a path nor a URL");
        t.host = parts->host;
        if (parts->port && !parts->port->empty()) {
            unsigned port = 0;
            const auto* end = parts->port->data() + parts->port->size();
            if (std::from_chars(parts->port->data(), end, port).ptr != end || port == 0 || port > 65535)
                throw std::invalid_argument("ws-auth-url has no valid port");
            t.port = static_cast<std::uint16_t>(port);
        }
        t.host_header = parts->authority;
        t.path = parts->target.empty() ? "/" : parts->target;
        t.text = url;
    }
    error_code ec;
    const auto address = asio::ip::make_address(t.host, ec);
    if (!ec) t.literal = tcp::endpoint(address, t.port);
    return t;
}

// SHA-256 of the credentials and topics, each length-prefixed so that no two questions share an
// input; the table then holds no credential as text.
std::string cache_key(const ForwardQuestion& q) {
    std::string input;
    for (const std::string* part : {&q.authorization, &q.cookie, &q.topics})
        input.append(std::to_string(part->size())).append(1, ':').append(*part);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    const bool ok = EVP_Digest(input.data(), input.size(), digest, &length, EVP_sha256(), nullptr) == 1;
    OPENSSL_cleanse(input.data(), input.size());
    if (!ok) return {};  // not cached: asking again is always correct
    return std::string(reinterpret_cast<const char*>(digest), length);
}

ForwardAnswer unavailable(std::string detail) {
    ForwardAnswer a;
    a.detail = std::move(detail);
    return a;
}

// Every value of a list header, joined as HTTP allows (RFC 9110 5.3); nullopt when absent.
std::optional<std::string> joined(const http::response_header<>& head, std::string_view name,
                                  std::string_view separator) {
    std::optional<std::string> out;
    for (auto [it, end] = head.equal_range(name); it != end; ++it) {
        if (out) {
            out->append(separator).append(it->value());
        } else {
            out.emplace(it->value());
        }
    }
    return out;
}

// The decision the status and headers make; the body cannot change it.
ForwardAnswer decide(const http::response_header<>& head) {
    ForwardAnswer a;
    a.status = head.result_int();
    a.detail = "auth endpoint answered " + std::to_string(a.status);
    if (a.status >= 200 && a.status < 300) {
        a.kind = Kind::allow;
        if (auto list = joined(head, "X-Crudcast-Allow-Topics", ",")) a.allow_topics = parse_allowed_topics(*list);
    } else if (a.status == 401 || a.status == 403) {
        a.kind = Kind::deny;
        if (a.status == 401) a.www_authenticate = joined(head, "WWW-Authenticate", ", ").value_or("");
    }
    // Anything else (1xx, 3xx never followed, 404, 5xx) says nothing about the credentials.
    return a;
}

http::request<http::empty_body> make_request(const Target& target, const ForwardQuestion& q) {
    http::request<http::empty_body> req{http::verb::get, target.path, 11};
    req.set(http::field::host, target.host_header);
    if (!q.authorization.empty()) req.set(http::field::authorization, q.authorization);
    if (!q.cookie.empty()) req.set(http::field::cookie, q.cookie);
    for (const auto& [name, value] : q.forwarded) req.insert(name, value);
    req.set("X-Crudcast-Topics", q.topics);  // always present: empty asks for every topic
    if (!q.request_id.empty()) req.set("X-Request-ID", q.request_id);
    req.set(http::field::user_agent, "crudcast-forward-auth");
    req.set(http::field::connection, "close");
    return req;
}

}  // namespace

struct ForwardAuth::Impl {
    struct Entry {
        ForwardAnswer answer;
        Clock::time_point expires;
    };

    Impl(const config::Config& config, std::function<Clock::time_point()> clock_)
        : target(target_of(config)),
          timeout(config.ws_auth_timeout),
          ttl(config.ws_auth_cache_ttl),
          clock(std::move(clock_)) {}

    const Target target;
    const std::chrono::milliseconds timeout;
    const std::chrono::milliseconds ttl;
    const std::function<Clock::time_point()> clock;

    mutable std::mutex mutex;
    std::vector<tcp::endpoint> endpoints;  // a resolved name; empty until the first question
    Clock::time_point endpoints_expiry{};
    std::unordered_map<std::string, Entry> cache;
    // Keys in insertion order. With one TTL for all, the oldest insert is also the first to expire,
    // so the front is what to evict either way. A key asked again after expiry, or dropped by
    // lookup(), leaves its older place here stale: evict_front() knows it by its expiry time.
    std::deque<std::pair<std::string, Clock::time_point>> order;

    std::string failure(std::string_view step, const error_code& ec) const;
    asio::awaitable<std::vector<tcp::endpoint>> resolve(Clock::time_point deadline, std::string& detail);
    asio::awaitable<ForwardAnswer> exchange(const ForwardQuestion& q);
    std::optional<ForwardAnswer> lookup(const std::string& key);
    void remember(const std::string& key, const ForwardAnswer& answer);
    void evict_front();
};

std::string ForwardAuth::Impl::failure(std::string_view step, const error_code& ec) const {
    if (ec == beast::error::timeout) return "no answer within " + config::format_duration(timeout);
    if (ec == http::error::end_of_stream || ec == asio::error::eof) return "closed without answering";
    if (ec == http::error::partial_message) return "closed before the answer ended";
    if (ec.category() == http::make_error_code(http::error::bad_version).category())
        return "malformed answer: " + ec.message();
    return std::string(step) + ": " + ec.message();
}

// The target's addresses, resolved on first use and kept; empty (and `detail` set) when the name
// does not resolve before the deadline. Asio resolves on a background thread that a cancel cannot
// interrupt, so the coroutine waits on a timer the resolution cancels, not on the resolution.
asio::awaitable<std::vector<tcp::endpoint>> ForwardAuth::Impl::resolve(Clock::time_point deadline,
                                                                       std::string& detail) {
    if (target.literal) co_return std::vector<tcp::endpoint>{*target.literal};
    {
        std::lock_guard lock(mutex);
        if (!endpoints.empty() && Clock::now() < endpoints_expiry) co_return endpoints;
    }
    struct Race {
        explicit Race(const asio::any_io_executor& executor) : resolver(executor), timer(executor) {}
        tcp::resolver resolver;
        asio::steady_timer timer;
        bool done = false;
        error_code ec;
        std::vector<tcp::endpoint> found;
    };
    // Shared with the resolution's handler, which may run after this coroutine has given up.
    auto race = std::make_shared<Race>(co_await asio::this_coro::executor);
    race->timer.expires_at(deadline);
    race->resolver.async_resolve(target.host, std::to_string(target.port),
                                 [race](const error_code& ec, const tcp::resolver::results_type& results) {
                                     if (race->done) return;
                                     race->done = true;
                                     race->ec = ec;
                                     for (const auto& entry : results) race->found.push_back(entry.endpoint());
                                     race->timer.cancel();
                                 });
    co_await race->timer.async_wait(use_nothrow);
    if (!race->done) {
        race->done = true;
        race->resolver.cancel();
        detail = "no answer within " + config::format_duration(timeout) + " (resolving " + target.host + ")";
        co_return std::vector<tcp::endpoint>{};
    }
    if (race->ec || race->found.empty()) {
        detail = "cannot resolve " + target.host + ": " + (race->ec ? race->ec.message() : "no address");
        co_return std::vector<tcp::endpoint>{};
    }
    std::lock_guard lock(mutex);
    endpoints = race->found;
    endpoints_expiry = Clock::now() + resolve_refresh;
    co_return std::move(race->found);
}

// One question on one connection; connect, write and read all inside one deadline.
asio::awaitable<ForwardAnswer> ForwardAuth::Impl::exchange(const ForwardQuestion& q) {
    const auto deadline = Clock::now() + timeout;
    std::string detail;
    const auto addresses = co_await resolve(deadline, detail);
    if (addresses.empty()) co_return unavailable(std::move(detail));

    beast::tcp_stream stream(co_await asio::this_coro::executor);
    stream.expires_at(deadline);  // covers every operation on the stream from here on
    auto [cec, peer] = co_await stream.async_connect(addresses, use_nothrow);
    (void)peer;
    if (cec) {
        std::lock_guard lock(mutex);
        endpoints_expiry = {};  // the address may be stale: resolve again next time
        co_return unavailable(failure("connect", cec));
    }
    auto req = make_request(target, q);
    auto [wec, written] = co_await http::async_write(stream, req, use_nothrow);
    (void)written;
    if (wec) co_return unavailable(failure("write", wec));

    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.header_limit(head_limit);
    parser.body_limit(boost::none);  // counted below instead: more than enough is not an error
    auto [hec, head_bytes] = co_await http::async_read_header(stream, buffer, parser, use_nothrow);
    (void)head_bytes;
    if (hec) co_return unavailable(failure("read", hec));
    auto answer = decide(parser.get().base());

    // Read the body into a scratch buffer and drop it, so an answer cut short is not taken.
    char scratch[4096];
    std::size_t discarded = 0;
    while (!parser.is_done() && discarded < body_discard_limit) {
        auto& body = parser.get().body();
        body.data = scratch;
        body.size = sizeof scratch;
        auto [rec, n] = co_await http::async_read(stream, buffer, parser, use_nothrow);
        (void)n;
        discarded += sizeof scratch - body.size;
        if (rec && rec != http::error::need_buffer) {
            ForwardAnswer broken = unavailable(failure("read", rec));
            broken.status = answer.status;
            co_return broken;
        }
    }
    co_return answer;
}

std::optional<ForwardAnswer> ForwardAuth::Impl::lookup(const std::string& key) {
    std::lock_guard lock(mutex);
    const auto it = cache.find(key);
    if (it == cache.end()) return std::nullopt;
    if (clock() >= it->second.expires) {
        cache.erase(it);
        return std::nullopt;
    }
    ForwardAnswer hit = it->second.answer;
    hit.cached = true;
    return hit;
}

void ForwardAuth::Impl::remember(const std::string& key, const ForwardAnswer& answer) {
    std::lock_guard lock(mutex);
    const auto now = clock();
    // Expired entries first, then the oldest while the table is full.
    while (!order.empty() && (order.front().second <= now || order.size() >= cache_capacity)) evict_front();
    const auto expires = now + ttl;
    cache.insert_or_assign(key, Entry{answer, expires});
    order.emplace_back(key, expires);
}

void ForwardAuth::Impl::evict_front() {
    const auto& [key, expires] = order.front();
    const auto it = cache.find(key);
    if (it != cache.end() && it->second.expires == expires) cache.erase(it);
    order.pop_front();
}

ForwardAuth::ForwardAuth(const config::Config& config, std::function<Clock::time_point()> clock)
    : impl_(std::make_unique<Impl>(config, std::move(clock))) {}

ForwardAuth::~ForwardAuth() = default;

asio::awaitable<ForwardAnswer> ForwardAuth::ask(const ForwardQuestion& question) {
    if (impl_->ttl.count() <= 0) co_return co_await impl_->exchange(question);
    const auto key = cache_key(question);
    auto hit = key.empty() ? std::nullopt : impl_->lookup(key);
    if (hit) co_return std::move(*hit);
    auto answer = co_await impl_->exchange(question);
    // An unavailable endpoint is asked again next time: it says nothing about the credentials.
    if (!key.empty() && answer.kind != Kind::unavailable) impl_->remember(key, answer);
    co_return answer;
}

std::string ForwardAuth::target_text() const { return impl_->target.text; }

std::size_t ForwardAuth::cache_size() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->cache.size();
}

}  // namespace crudcast::gateway::auth
