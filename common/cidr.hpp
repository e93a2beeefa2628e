// cidr.hpp: address ranges ("10.0.0.0/8", "fd00::/8", "127.0.0.1") read once and matched against a
// peer address. IPv4 ranges are kept as IPv4-mapped IPv6 (::ffff:0:0/96 + prefix), so an IPv4 peer
// seen on a dual-stack socket as ::ffff:10.1.2.3 matches 10.0.0.0/8 like 10.1.2.3 does. Pure, no I/O;
// tested in tests/cidr_test.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

namespace crudcast::net {

struct Cidr {
    std::array<std::uint8_t, 16> bytes{};  // the network, host bits zero; IPv4 as ::ffff:a.b.c.d
    unsigned prefix = 0;                   // 0..128 over `bytes`
    std::string text;                      // as written by the user, for --check-config

    bool contains(const boost::asio::ip::address& address) const;
};

// "a.b.c.d[/0..32]" or "v6[/0..128]"; without a prefix, the one address. Throws std::invalid_argument
// naming the problem: not an address, a zone index (fe80::1%eth0), a prefix that is not 0..32 (0..128),
// or host bits set past the prefix ("10.1.2.3/8": a typo for 10.0.0.0/8 or 10.1.2.3/32? refused).
Cidr parse_cidr(std::string_view text);

// True when any range contains `address`.
bool contains_any(const std::vector<Cidr>& ranges, const boost::asio::ip::address& address);

}  // namespace crudcast::net
