// upstream_pool.cpp: see upstream_pool.hpp.
#include "proxy/upstream_pool.hpp"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>

#include "common/log.hpp"

namespace crudcast::proxy {

using config::LogLevel;

namespace {

// A pooled connection the upstream has closed (FIN already received) or that holds stray bytes is
// not reusable. One non-blocking peek tells, and spares most "stale keep-alive" failures.
bool still_usable(UpstreamConnection& c) {
    if (c.buffer.size() > 0) return false;
    char byte;
    const auto n = ::recv(c.socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

UpstreamPool::UpstreamPool(asio::any_io_executor executor, const config::Config& config, ProxyCounters& counters)
    : executor_(executor), config_(config), counters_(counters), resolver_(executor) {}

asio::awaitable<Lease> UpstreamPool::acquire(std::string_view request_id, Deadline& deadline) {
    const auto now = std::chrono::steady_clock::now();
    while (!idle_.empty()) {
        Idle idle = std::move(idle_.back());
        idle_.pop_back();
        auto& c = *idle.connection;
        if (now - idle.since > config_.upstream_keepalive_timeout) {
            if (log::enabled(LogLevel::debug))
                log::write(LogLevel::debug, "pool: dropping idle upstream connection",
                           {{"rid", request_id}, {"conn", c.id}, {"why", "idle past upstream-keepalive-timeout"}});
            continue;
        }
        if (!still_usable(c)) {
            if (log::enabled(LogLevel::debug))
                log::write(LogLevel::debug, "pool: dropping idle upstream connection",
                           {{"rid", request_id}, {"conn", c.id}, {"why", "closed by upstream"}});
            continue;
        }
        counters_.pool_hits.fetch_add(1, std::memory_order_relaxed);
        if (log::enabled(LogLevel::debug))
            log::write(LogLevel::debug, "pool: hit, reusing upstream connection",
                       {{"rid", request_id}, {"conn", c.id}, {"requests", c.requests}});
        co_return Lease{std::move(idle.connection), true, false, {}};
    }
    counters_.pool_misses.fetch_add(1, std::memory_order_relaxed);
    if (log::enabled(LogLevel::debug))
        log::write(LogLevel::debug, "pool: miss, opening upstream connection", {{"rid", request_id}});
    co_return co_await connect(request_id, deadline);
}

asio::awaitable<Lease> UpstreamPool::connect(std::string_view request_id, Deadline& deadline) {
    Lease lease;
    const auto now = std::chrono::steady_clock::now();
    const auto& up = config_.upstream;
    if (endpoints_.empty() || now >= endpoints_expiry_) {
        auto [ec, results] = co_await resolver_.async_resolve(up.host, std::to_string(up.port), use_nothrow);
        if (ec) {
            lease.detail = "cannot resolve upstream host " + up.host + ": " + ec.message();
            co_return lease;
        }
        endpoints_ = std::move(results);
        // Re-resolve now and then so a moved upstream (a new pod IP behind a name) is followed.
        endpoints_expiry_ = now + std::chrono::seconds(30);
    }
    auto connection = std::make_unique<UpstreamConnection>(executor_);
    deadline.watch_upstream(&connection->socket);
    deadline.expect(Side::upstream, config_.connect_timeout);
    auto [ec, endpoint] = co_await asio::async_connect(connection->socket, endpoints_, use_nothrow);
    deadline.clear();
    if (ec) {
        endpoints_expiry_ = {};  // resolve again next time
        lease.timed_out = deadline.expired();
        lease.detail = lease.timed_out ? "connect to upstream " + up.host_header + " timed out after " +
                                             std::to_string(config_.connect_timeout.count()) + "ms"
                                       : "connect to upstream " + up.host_header + " failed: " + ec.message();
        co_return lease;
    }
    error_code ignored;
    connection->socket.set_option(tcp::no_delay(true), ignored);
    connection->id = next_id_++;
    connection->open_gauge = &counters_.open_upstream_connections;
    counters_.open_upstream_connections.fetch_add(1, std::memory_order_relaxed);
    if (log::enabled(LogLevel::debug))
        log::write(LogLevel::debug, "pool: connected to upstream",
                   {{"rid", request_id},
                    {"conn", connection->id},
                    {"peer", endpoint.address().to_string() + ":" + std::to_string(endpoint.port())}});
    lease.connection = std::move(connection);
    co_return lease;
}

void UpstreamPool::release(std::unique_ptr<UpstreamConnection> connection) {
    if (config_.upstream_max_idle == 0) return;  // pooling disabled: the connection closes here
    if (idle_.size() >= config_.upstream_max_idle) {
        // Drop the coldest one: the warm end (back) is what acquire() takes.
        idle_.pop_front();
    }
    idle_.push_back({std::move(connection), std::chrono::steady_clock::now()});
}

void UpstreamPool::close_idle() { idle_.clear(); }

void UpstreamPool::close_expired(std::chrono::steady_clock::time_point now) {
    // The front is the coldest: release() appends, acquire() takes from the back.
    while (!idle_.empty() && now - idle_.front().since > config_.upstream_keepalive_timeout) {
        if (log::enabled(LogLevel::debug))
            log::write(LogLevel::debug, "pool: closing idle upstream connection",
                       {{"conn", idle_.front().connection->id}, {"why", "idle past upstream-keepalive-timeout"}});
        idle_.pop_front();
    }
}

}  // namespace crudcast::proxy
