// gateway.hpp: one running crudcast: the worker threads (one io_context each), the listener,
// and graceful shutdown. main.cpp and the in-process integration tests drive it the same way.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "config/config.hpp"

namespace crudcast::gateway {

class Gateway {
public:
    explicit Gateway(config::Config config);
    ~Gateway();  // stops and joins the threads if still running
    Gateway(const Gateway&) = delete;
    Gateway& operator=(const Gateway&) = delete;

    // Binds the proxy listener (and the admin listener) and starts the worker threads. Throws
    // std::system_error / boost::system::system_error when the proxy address cannot be bound,
    // std::runtime_error naming --admin-listen when the admin address cannot.
    void start();
    // The bound proxy port (useful with --listen 127.0.0.1:0). Valid after start().
    std::uint16_t port() const;
    // The bound admin port (/healthz, /readyz, /metrics, the live page); 0 when --admin-listen is off.
    std::uint16_t admin_port() const;
    // The seq of the last event published (at start: this process's base, below its first event).
    std::uint64_t stream_position() const;
    // How subscribers are admitted, for the start-up line: "none", "jwt RS256 (jwt-jwks-file)", ...
    std::string subscriber_auth() const;
    // Stops accepting, lets in-flight requests finish (bounded by drain_timeout), closes idle
    // connections. Returns at once; thread-safe; idempotent.
    void shutdown();
    // Blocks until every worker thread has finished after shutdown().
    void wait();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace crudcast::gateway
