// tunnel.hpp: byte-for-byte relay in both directions between two sockets, used after an upstream
// answers 101 Switching Protocols to a tunnelled Upgrade request.
#pragma once

#include <cstdint>

#include "common/asio.hpp"

namespace crudcast::proxy {

struct TunnelBytes {
    std::uint64_t client_to_upstream = 0;
    std::uint64_t upstream_to_client = 0;
};

// Copies until both directions have ended. When one side ends its sending (EOF), the other side's
// sending is shut down too (half-close is passed on); an error on either side closes both.
asio::awaitable<TunnelBytes> splice(tcp::socket& client, tcp::socket& upstream);

}  // namespace crudcast::proxy
