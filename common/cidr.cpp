// cidr.cpp: see cidr.hpp.
#include "common/cidr.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "common/json_text.hpp"

namespace crudcast::net {

namespace ip = boost::asio::ip;

namespace {

std::array<std::uint8_t, 16> as_v6_bytes(const ip::address& address) {
    if (address.is_v6()) return address.to_v6().to_bytes();
    return ip::make_address_v6(ip::v4_mapped, address.to_v4()).to_bytes();
}

[[noreturn]] void refuse(std::string_view text, const std::string& why) {
    throw std::invalid_argument(json_string(text) + " " + why);
}

}  // namespace

bool Cidr::contains(const ip::address& address) const {
    const auto other = as_v6_bytes(address);
    const unsigned whole = prefix / 8, rest = prefix % 8;
    if (!std::equal(bytes.begin(), bytes.begin() + whole, other.begin())) return false;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (other[whole] & mask) == bytes[whole];
}

Cidr parse_cidr(std::string_view text) {
    const auto slash = text.find('/');
    const auto address_text = std::string(text.substr(0, slash));
    if (address_text.find('%') != std::string::npos) refuse(text, "has a zone index; give the address alone");
    boost::system::error_code ec;
    const auto address = ip::make_address(address_text, ec);
    if (ec) refuse(text, "is not an IPv4 or IPv6 address or range");
    const unsigned max = address.is_v4() ? 32 : 128;
    unsigned prefix = max;
    if (slash != std::string_view::npos) {
        const auto digits = text.substr(slash + 1);
        const auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (digits.empty() || err != std::errc() || end != digits.data() + digits.size() || prefix > max)
            refuse(text, "has an invalid prefix length (expected 0.." + std::to_string(max) + ")");
    }
    Cidr cidr;
    cidr.bytes = as_v6_bytes(address);
    cidr.prefix = address.is_v4() ? prefix + 96 : prefix;
    cidr.text = std::string(text);
    // Host bits past the prefix: refused rather than silently cleared (10.1.2.3/8 is most likely a typo).
    for (unsigned bit = cidr.prefix; bit < 128; ++bit) {
        if (cidr.bytes[bit / 8] & (0x80 >> (bit % 8)))
            refuse(text, "has host bits set past the prefix length (write the network address, e.g. 10.0.0.0/8)");
    }
    return cidr;
}

bool contains_any(const std::vector<Cidr>& ranges, const ip::address& address) {
    return std::any_of(ranges.begin(), ranges.end(), [&](const Cidr& c) { return c.contains(address); });
}

}  // namespace crudcast::net
