// forward_auth.hpp: ws-auth forward, crudcast's client for the API's own auth endpoint (in the manner
// of nginx's auth_request). One GET per handshake to --ws-auth-url carrying the handshake's
// credentials and the topics asked for; the status decides (2xx allow, 401/403 deny, anything else
// unavailable), and allow and deny answers may be reused for --ws-auth-cache-ttl.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "config/config.hpp"
#include "gateway/auth/admission.hpp"

namespace crudcast::gateway::auth {

struct ForwardQuestion {
    std::string authorization;  // the handshake's Authorization, "" when absent
    std::string cookie;         // the handshake's Cookie(s) joined with "; ", "" when absent
    // X-Forwarded-For / -Proto / -Host exactly as crudcast sets them on proxied requests (the caller
    // computes them), sent as given.
    std::vector<std::pair<std::string, std::string>> forwarded;
    std::string topics;      // "author,book"; "" = all topics
    std::string request_id;  // sent as X-Request-ID
};

struct ForwardAnswer {
    enum class Kind { allow, deny, unavailable };
    Kind kind = Kind::unavailable;
    unsigned status = 0;  // the endpoint's status (0 when none came)
    // X-Crudcast-Allow-Topics when present (nullopt: not narrowed). A header that is present but
    // names no topic is an empty list: the endpoint allowed the connection and no topic on it, and
    // reading it as "every topic" would turn the narrowest answer into the widest.
    AllowedTopics allow_topics;
    std::string www_authenticate;  // the endpoint's WWW-Authenticate with a 401, to pass back
    // One line for logs: "auth endpoint answered 403", "connect: Connection refused", "no answer
    // within 3s". Never credentials.
    std::string detail;
    bool cached = false;
};

class ForwardAuth {
public:
    // clock: injectable for cache-expiry tests (the request deadline always runs on steady_clock).
    explicit ForwardAuth(const config::Config& config,
                         std::function<std::chrono::steady_clock::time_point()> clock = std::chrono::steady_clock::now);
    ~ForwardAuth();
    ForwardAuth(const ForwardAuth&) = delete;
    ForwardAuth& operator=(const ForwardAuth&) = delete;

    // Runs on the calling coroutine's executor (a worker thread's io_context, run by one thread);
    // callable from several threads at once (the cache and the resolved address are shared under one
    // mutex). `question` must outlive the co_await.
    boost::asio::awaitable<ForwardAnswer> ask(const ForwardQuestion& question);

    std::string target_text() const;  // "http://127.0.0.1:3000/auth/ws" for the start-up log line

    std::size_t cache_size() const;  // entries held now (expired ones included until evicted)
    static constexpr std::size_t cache_capacity = 10'000;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace crudcast::gateway::auth
