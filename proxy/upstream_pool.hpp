// upstream_pool.hpp: one thread's pool of keep-alive connections to the upstream. Owned by a
// worker thread and used only from it, so it takes no lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "common/asio.hpp"
#include "config/config.hpp"
#include "proxy/counters.hpp"
#include "proxy/deadline.hpp"
#include "proxy/exchange_failure.hpp"

namespace crudcast::proxy {

struct UpstreamConnection {
    tcp::socket socket;
    beast::flat_buffer buffer;   // bytes read from the upstream but not yet parsed
    std::uint64_t id = 0;        // for logs: "upstream connection #12"
    std::uint64_t requests = 0;  // requests sent on it so far
    // Room for a full relay chunk per read: Beast reads at most the buffer's spare capacity (512
    // bytes when the buffer only ever held a response head), which made downloads 8x costlier.
    // Bounded: a response head, chunk line or trailer section larger than upstream_header_limit
    // ends in an error rather than a growing buffer.
    explicit UpstreamConnection(asio::any_io_executor ex) : socket(std::move(ex)), buffer(2 * upstream_header_limit) {
        buffer.reserve(64 * 1024);
    }
    ~UpstreamConnection() {
        if (open_gauge) open_gauge->fetch_sub(1, std::memory_order_relaxed);
    }
    UpstreamConnection(const UpstreamConnection&) = delete;
    UpstreamConnection& operator=(const UpstreamConnection&) = delete;
    std::atomic<std::int64_t>* open_gauge = nullptr;  // counts connected upstream sockets
};

struct Lease {
    std::unique_ptr<UpstreamConnection> connection;  // null on error
    bool reused = false;
    bool timed_out = false;  // connect timeout rather than refusal
    std::string detail;      // human-readable cause when connection is null
};

class UpstreamPool {
public:
    UpstreamPool(asio::any_io_executor executor, const config::Config& config, ProxyCounters& counters);

    // An idle connection when one is alive (LIFO: the warmest), otherwise a new one.
    // `request_id` only labels debug lines; `deadline` bounds the connect (connect-timeout).
    asio::awaitable<Lease> acquire(std::string_view request_id, Deadline& deadline);
    // A fresh connection, never from the idle list (retries, tunnels).
    asio::awaitable<Lease> connect(std::string_view request_id, Deadline& deadline);
    // Gives back a connection whose last exchange ended cleanly and may be reused.
    void release(std::unique_ptr<UpstreamConnection> connection);

    // Closes every idle connection (shutdown).
    void close_idle();
    // Closes idle connections unused for upstream-keepalive-timeout (called by the sweep).
    void close_expired(std::chrono::steady_clock::time_point now);

private:
    struct Idle {
        std::unique_ptr<UpstreamConnection> connection;
        std::chrono::steady_clock::time_point since;
    };

    asio::any_io_executor executor_;
    const config::Config& config_;
    ProxyCounters& counters_;
    tcp::resolver resolver_;
    tcp::resolver::results_type endpoints_;
    std::chrono::steady_clock::time_point endpoints_expiry_{};
    std::deque<Idle> idle_;
    std::uint64_t next_id_ = 1;
};

}  // namespace crudcast::proxy
