// listener.hpp: accepts client connections on the proxy address and hands each to a worker thread
// (round robin), where it becomes a DownstreamSession owned by that thread.
#pragma once

#include <atomic>
#include <functional>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "common/asio.hpp"
#include "common/warn_summary.hpp"
#include "config/config.hpp"

namespace crudcast::gateway {

class Listener {
public:
    // `hand_off(i, socket)` is called on the listener's thread; it must post the socket to worker i.
    using HandOff = std::function<void(std::size_t worker, tcp::socket socket)>;

    Listener(asio::io_context& accept_context, std::vector<asio::io_context*> workers, const config::Config& config,
             std::function<std::int64_t()> open_connections, HandOff hand_off);

    // Binds and listens; throws std::system_error (e.g. address in use).
    void bind(const config::Endpoint& endpoint);
    std::uint16_t port() const { return port_; }
    void start();
    void close();  // thread-safe: posted to the accept context

private:
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> flush_loop();
    // Refusals and accept errors come in floods (a connection storm, a full descriptor table): at
    // most one warn line a second for each, carrying how many it stands for.
    enum Warning : std::size_t { refused = 0, accept_failed = 1, warning_kinds = 2 };
    void warn(Warning kind, const boost::system::error_code& ec = {});
    void flush_warnings(bool all);

    asio::io_context& accept_context_;
    std::vector<asio::io_context*> workers_;
    const config::Config& config_;
    std::function<std::int64_t()> open_connections_;  // HTTP connections (proxy sessions, tunnels included)
    HandOff hand_off_;
    tcp::acceptor acceptor_;
    asio::steady_timer flush_timer_;
    std::uint16_t port_ = 0;
    std::size_t next_worker_ = 0;
    log::WarnSummary warnings_{warning_kinds, std::chrono::seconds(1)};
};

}  // namespace crudcast::gateway
