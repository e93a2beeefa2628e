// proxy_context.hpp: what a downstream session needs from the worker thread that owns it: the
// configuration, this thread's upstream pool, the live-session list used for draining, its record
// of recent requests, and the hooks through which the gateway takes over WebSocket upgrades and
// observes responses.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <string_view>
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
    // Takes over a WebSocket upgrade at the ws path (the socket, the request, bytes read past its
    // head, the client's address for logs, the request id). Null: the ws path is proxied.
    std::function<void(tcp::socket, http::request<http::buffer_body>, beast::flat_buffer, std::string, std::string)>
        websocket_handoff;
    // Checks a subscription's target before the handoff: status 0 when it can be served (and then
    // the handoff must follow at once: the check may have reserved the subscriber's place), else
    // the answer crudcast gives (400 for a bad topic list, 503 at ws-max-subscribers), so the
    // access line tells what the client got.
    struct WebSocketRefusal {
        unsigned status = 0;  // 0: accepted
        std::string error;    // the JSON "error" code
        std::string detail;
    };
    std::function<WebSocketRefusal(std::string_view target)> websocket_refusal;
};

}  // namespace crudcast::proxy
