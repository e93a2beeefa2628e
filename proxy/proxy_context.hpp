// proxy_context.hpp: what a downstream session needs from the worker thread that owns it: the
// configuration, this thread's upstream pool, the live-session list used for draining, its record
// of recent requests, and the hooks through which the gateway takes over WebSocket upgrades and
// observes responses.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>

#include "common/asio.hpp"
#include "config/config.hpp"
#include "proxy/counters.hpp"
#include "proxy/exchange_observer.hpp"
#include "proxy/recent_requests.hpp"
#include "proxy/upstream_pool.hpp"

namespace crudcast::proxy {

namespace http = beast::http;

class DownstreamSession;

struct ProxyContext {
    ProxyContext(asio::any_io_executor executor, const config::Config& cfg, ProxyCounters& shared,
                 std::atomic<bool>& draining_flag)
        : config(cfg), pool(executor, cfg, shared), counters(shared), draining(draining_flag) {}

    const config::Config& config;
    UpstreamPool pool;
    ProxyCounters& counters;
    std::atomic<bool>& draining;
    // Sessions living on this thread, so a drain can close the idle ones. Touched only by this thread.
    std::list<DownstreamSession*> sessions;
    // crudcast's own address as clients may name it ("127.0.0.1:8080", "localhost:8080") and the
    // upstream's: the only authorities accepted in absolute-form targets.
    std::vector<std::string> own_authorities;
    // This thread's last requests, for the admin live page (read by the admin listener's thread).
    RecentRequests recent;
    // Watches every forwarded exchange (events); may be null.
    ExchangeObserver* observer = nullptr;
    // What the gateway decided for a subscriber at the handshake, handed to the session it creates.
    struct SubscriberGrant {
        std::optional<std::vector<std::string>> topics;                // narrowed topics; nullopt: as the query asks
        std::optional<std::chrono::system_clock::time_point> expires;  // the credential's end: close with 1008
        std::string who;                                               // the token's subject, for logs
        bool sse = false;  // a GET with Accept: text/event-stream: served as Server-Sent Events
    };
    // Takes over a WebSocket upgrade (or an event-stream GET) at the ws path (the socket, the request, bytes read past
    // its head, the client's address for logs, the request id, the grant). Null: the ws path is proxied.
    std::function<void(tcp::socket, http::request<http::buffer_body>, beast::flat_buffer, std::string, std::string,
                       SubscriberGrant)>
        websocket_handoff;
    // The handshake as the gateway's admission sees it: who asks, and the X-Forwarded-* crudcast
    // would send upstream for this request (forward auth passes them on).
    struct HandshakeInfo {
        std::string_view client_ip;
        bool trusted_peer = false;  // the peer is one of trusted-proxies
        std::string_view request_id;
        std::vector<std::pair<std::string, std::string>> forwarded;
    };
    // Decides whether a subscription can be served: status 0 when it can (and then the handoff must
    // follow at once: the check may have reserved the subscriber's place), else the answer crudcast
    // gives (400 bad topics, 401/403 credentials, 429 handshake rate, 503 ws-max-subscribers or the
    // auth endpoint down), so the access line tells what the client got and why (`reason`).
    struct WebSocketAdmission {
        unsigned status = 0;  // 0: admitted
        std::string error;    // the JSON "error" code
        std::string detail;
        std::string reason;                                        // ws=denied reason=... on the access line
        std::vector<std::pair<std::string, std::string>> headers;  // WWW-Authenticate, Retry-After
        SubscriberGrant grant;
    };
    std::function<asio::awaitable<WebSocketAdmission>(const http::request<http::buffer_body>&, HandshakeInfo)>
        websocket_admission;
};

}  // namespace crudcast::proxy
