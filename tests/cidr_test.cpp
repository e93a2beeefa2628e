// cidr_test.cpp: the trusted-proxies ranges (common/cidr): what parses, what is refused and why,
// and which addresses each range contains, IPv4, IPv6 and IPv4-mapped IPv6.
#include <gtest/gtest.h>

#include <ostream>
#include <stdexcept>
#include <string>

#include "common/cidr.hpp"

namespace crudcast::net {
namespace {

boost::asio::ip::address addr(const char* text) { return boost::asio::ip::make_address(text); }

struct MatchCase {
    const char* range;
    const char* address;
    bool inside;
};

void PrintTo(const MatchCase& c, std::ostream* os) { *os << c.range << " vs " << c.address; }

class CidrMatch : public ::testing::TestWithParam<MatchCase> {};

TEST_P(CidrMatch, ContainsExactlyItsAddresses) {
    const auto& c = GetParam();
    EXPECT_EQ(parse_cidr(c.range).contains(addr(c.address)), c.inside) << c.range << " vs " << c.address;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CidrMatch,
    ::testing::Values(MatchCase{"10.0.0.0/8", "10.255.1.2", true}, MatchCase{"10.0.0.0/8", "11.0.0.0", false},
                      MatchCase{"10.0.0.0/8", "9.255.255.255", false},
                      // An IPv4 peer on a dual-stack socket is seen as IPv4-mapped IPv6.
                      MatchCase{"10.0.0.0/8", "::ffff:10.1.2.3", true},
                      MatchCase{"10.0.0.0/8", "::ffff:11.1.2.3", false},
                      MatchCase{"::ffff:10.0.0.0/104", "10.9.9.9", true},
                      // IPv4 ranges never contain IPv6 addresses that merely share the low bytes.
                      MatchCase{"10.0.0.0/8", "::a01:203", false}, MatchCase{"0.0.0.0/0", "::1", false},
                      MatchCase{"0.0.0.0/0", "203.0.113.7", true}, MatchCase{"0.0.0.0/0", "::ffff:1.2.3.4", true},
                      MatchCase{"::/0", "2001:db8::1", true}, MatchCase{"::/0", "10.0.0.1", true},
                      MatchCase{"127.0.0.2/32", "127.0.0.2", true}, MatchCase{"127.0.0.2/32", "127.0.0.1", false},
                      MatchCase{"127.0.0.1", "127.0.0.1", true}, MatchCase{"127.0.0.1", "127.0.0.2", false},
                      MatchCase{"::1/128", "::1", true}, MatchCase{"::1", "::2", false},
                      MatchCase{"fd00::/8", "fdab:cd::1", true}, MatchCase{"fd00::/8", "fc00::1", false},
                      MatchCase{"fc00::/7", "fdff::1", true}, MatchCase{"fc00::/7", "fe00::1", false},
                      // Prefixes that do not end on a byte boundary.
                      MatchCase{"172.16.0.0/12", "172.31.255.255", true},
                      MatchCase{"172.16.0.0/12", "172.32.0.0", false},
                      MatchCase{"2001:db8:8000::/33", "2001:db8:ffff::1", true},
                      MatchCase{"2001:db8:8000::/33", "2001:db8:7fff::1", false}));

TEST(Cidr, KeepsTheTextAsWritten) { EXPECT_EQ(parse_cidr("fd00::/8").text, "fd00::/8"); }

struct BadCase {
    const char* text;
    const char* problem;  // a part of the message
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << '"' << c.text << '"'; }

class CidrRefused : public ::testing::TestWithParam<BadCase> {};

TEST_P(CidrRefused, NamesTheProblem) {
    const auto& c = GetParam();
    try {
        parse_cidr(c.text);
        FAIL() << c.text << " was accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find(c.problem), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find('"'), std::string::npos) << "the value is quoted: " << e.what();
    }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CidrRefused,
    ::testing::Values(
        BadCase{"", "not an IPv4 or IPv6 address"}, BadCase{"junk", "not an IPv4 or IPv6 address"},
        BadCase{"10.0.0", "not an IPv4 or IPv6 address"}, BadCase{"10.0.0.0.0/8", "not an IPv4 or IPv6 address"},
        BadCase{"example.com", "not an IPv4 or IPv6 address"}, BadCase{" 10.0.0.0/8", "not an IPv4 or IPv6 address"},
        BadCase{"/8", "not an IPv4 or IPv6 address"}, BadCase{"10.0.0.0/33", "prefix length (expected 0..32)"},
        BadCase{"::/129", "prefix length (expected 0..128)"}, BadCase{"10.0.0.0/", "prefix length"},
        BadCase{"10.0.0.0/-1", "prefix length"}, BadCase{"10.0.0.0/+8", "prefix length"},
        BadCase{"10.0.0.0/8x", "prefix length"}, BadCase{"10.0.0.0/99999999999", "prefix length"},
        BadCase{"10.1.2.3/8", "host bits set"}, BadCase{"fd00::1/8", "host bits set"},
        BadCase{"10.0.0.1/0", "host bits set"}, BadCase{"fe80::1%eth0", "zone index"}));

TEST(Cidr, ContainsAnyOfAList) {
    const std::vector<Cidr> ranges{parse_cidr("10.0.0.0/8"), parse_cidr("fd00::/8"), parse_cidr("127.0.0.1")};
    EXPECT_TRUE(contains_any(ranges, addr("127.0.0.1")));
    EXPECT_TRUE(contains_any(ranges, addr("fd12::3")));
    EXPECT_TRUE(contains_any(ranges, addr("::ffff:10.0.0.1")));
    EXPECT_FALSE(contains_any(ranges, addr("127.0.0.2")));
    EXPECT_FALSE(contains_any(ranges, addr("::1")));
    EXPECT_FALSE(contains_any({}, addr("127.0.0.1")));
}

}  // namespace
}  // namespace crudcast::net
