// listener.cpp: see listener.hpp.
#include "gateway/listener.hpp"

#include <sys/socket.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/log.hpp"

namespace crudcast::gateway {

using config::LogLevel;

Listener::Listener(asio::io_context& accept_context, std::vector<asio::io_context*> workers,
                   const config::Config& config, std::function<std::int64_t()> open_connections, HandOff hand_off)
    : accept_context_(accept_context),
      workers_(std::move(workers)),
      config_(config),
      open_connections_(std::move(open_connections)),
      hand_off_(std::move(hand_off)),
      acceptor_(accept_context),
      flush_timer_(accept_context) {}

void Listener::bind(const config::Endpoint& endpoint) {
    tcp::resolver resolver(accept_context_);
    auto results = resolver.resolve(endpoint.host, std::to_string(endpoint.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service);
    const tcp::endpoint ep = *results.begin();
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    port_ = acceptor_.local_endpoint().port();
}

void Listener::start() {
    asio::co_spawn(accept_context_, accept_loop(), asio::detached);
    asio::co_spawn(accept_context_, flush_loop(), asio::detached);
}

void Listener::close() {
    asio::post(accept_context_, [this] {
        error_code ignored;
        acceptor_.close(ignored);
        flush_timer_.cancel();
        flush_warnings(/*all=*/true);  // no refusal or accept failure goes uncounted
    });
}

asio::awaitable<void> Listener::accept_loop() {
    for (;;) {
        auto& worker = *workers_[next_worker_];
        auto [ec, socket] = co_await acceptor_.async_accept(worker, use_nothrow);
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        if (ec) {
            // EMFILE and friends leave the connection in the backlog, so accepting again at once
            // fails again at once: a spinning thread and a flood of lines. Say so (at most once a
            // second) and pause 100 ms, leaving the backlog to the kernel until descriptors free up.
            warn(accept_failed, ec);
            asio::steady_timer pause(accept_context_, std::chrono::milliseconds(100));
            co_await pause.async_wait(use_nothrow);
            continue;
        }
        if (static_cast<std::size_t>(open_connections_()) >= config_.max_connections) {
            // Over the limit: a tiny 503 written without waiting, then close. No session is created.
            static const std::string busy = [] {
                const std::string body =
                    "{\"error\":\"too_many_connections\",\"detail\":\"crudcast is at max-connections\"}\n";
                return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                       "Connection: close\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body;
            }();
            [[maybe_unused]] auto sent =
                ::send(socket.native_handle(), busy.data(), busy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            warn(refused);
            error_code ignored;
            socket.close(ignored);
            continue;
        }
        hand_off_(next_worker_, std::move(socket));
        next_worker_ = (next_worker_ + 1) % workers_.size();
    }
}

void Listener::warn(Warning kind, const error_code& ec) {
    const auto decision = warnings_.record(kind);
    if (!decision.log) return;
    const auto repeated = decision.repeated;
    const std::size_t n = repeated > 0 ? 2 : 1;  // `repeated` only when the line stands for more
    if (kind == refused) {
        const log::Field fields[] = {{"max_connections", static_cast<std::uint64_t>(config_.max_connections)},
                                     {"repeated", repeated}};
        log::write(LogLevel::warn, "connection refused: max-connections reached", std::span(fields, n));
    } else {
        const auto error = ec.message();  // a Field holds a view: the string must outlive the array
        const log::Field fields[] = {{"error", error}, {"repeated", repeated}};
        log::write(LogLevel::warn, "accept failed", std::span(fields, n));
    }
}

void Listener::flush_warnings(bool all) {
    warnings_.flush(
        [this](std::size_t kind, std::uint64_t repeated, std::uint32_t since_ms) {
            log::write(LogLevel::warn,
                       kind == refused ? "connections refused: max-connections reached" : "accept failures",
                       {{"max_connections", static_cast<std::uint64_t>(config_.max_connections)},
                        {"repeated", repeated},
                        {"in_last_ms", std::uint64_t{since_ms}}});
        },
        all);
}

// The count of a burst that no later line carried goes out within a second of the burst's end.
asio::awaitable<void> Listener::flush_loop() {
    while (acceptor_.is_open()) {
        flush_timer_.expires_after(std::chrono::milliseconds(250));
        auto [ec] = co_await flush_timer_.async_wait(use_nothrow);
        if (ec) co_return;
        flush_warnings(false);
    }
}

}  // namespace crudcast::gateway
