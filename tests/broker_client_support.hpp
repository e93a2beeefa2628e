// broker_client_support.hpp: what the broker client tests (nats_broker_test, redis_broker_test)
// share: a free loopback port for their server, and one append waited for with its outcome.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "bus/broker.hpp"

namespace crudcast::testkit {

// A port nothing listens on now: bound, read and released.
inline std::uint16_t free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        addr.sin_port = 0;
    ::close(fd);
    return ntohs(addr.sin_port);
}

struct AppendResult {
    std::optional<std::uint64_t> seq;
    std::string error;
    std::chrono::microseconds took{};  // from append() to its completion
};

// One append, waited for (its completion runs on a client thread).
inline AppendResult append_and_wait(bus::BrokerClient& client, std::string_view model, std::string event) {
    using Clock = std::chrono::steady_clock;
    auto promise = std::make_shared<std::promise<AppendResult>>();
    auto future = promise->get_future();
    const auto started = Clock::now();
    client.append(
        model, std::move(event), [promise, started](std::optional<std::uint64_t> seq, std::string_view error) {
            promise->set_value({seq, std::string(error),
                                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started)});
        });
    return future.get();
}

}  // namespace crudcast::testkit
