// forwarded_test.cpp: trusted-proxies over real loopback sockets. The client connects from 127.0.0.2
// (or ::1) to be a different peer than 127.0.0.1; the upstream records exactly which X-Forwarded-*
// and Forwarded lines crudcast sent. Also: the setting's refusals on the real binary (exit code 2).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/testkit.hpp"

namespace {

using namespace crudcast;
using namespace crudcast::testkit;
using Lines = std::vector<std::string>;

// A TCP connection from `source` to `destination`:`port` (both IPv4 or both IPv6 literals);
// std::nullopt when the source address cannot be bound here (no IPv6 on this machine).
std::optional<Socket> connect_from(const std::string& source, const std::string& destination, std::uint16_t port) {
    const bool v6 = source.find(':') != std::string::npos;
    sockaddr_storage from{}, to{};
    socklen_t size = 0;
    if (v6) {
        auto* f = reinterpret_cast<sockaddr_in6*>(&from);
        auto* t = reinterpret_cast<sockaddr_in6*>(&to);
        f->sin6_family = t->sin6_family = AF_INET6;
        t->sin6_port = htons(port);
        if (inet_pton(AF_INET6, source.c_str(), &f->sin6_addr) != 1) return std::nullopt;
        if (inet_pton(AF_INET6, destination.c_str(), &t->sin6_addr) != 1) return std::nullopt;
        size = sizeof(sockaddr_in6);
    } else {
        auto* f = reinterpret_cast<sockaddr_in*>(&from);
        auto* t = reinterpret_cast<sockaddr_in*>(&to);
        f->sin_family = t->sin_family = AF_INET;
        t->sin_port = htons(port);
        if (inet_pton(AF_INET, source.c_str(), &f->sin_addr) != 1) return std::nullopt;
        if (inet_pton(AF_INET, destination.c_str(), &t->sin_addr) != 1) return std::nullopt;
        size = sizeof(sockaddr_in);
    }
    const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::nullopt;
    Socket s(fd);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&from), size) != 0) return std::nullopt;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), size) != 0) return std::nullopt;
    return s;
}

// True when an IPv6 socket can be bound to ::1 here (some containers have no IPv6).
bool have_ipv6_loopback() {
    const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

// Sends `request` and reads the response head and its Content-Length body; returns the head.
std::string roundtrip(Socket& s, std::string_view request) {
    EXPECT_TRUE(s.send_all(request));
    const auto head = s.read_until("\r\n\r\n", default_timeout);
    if (!head) return {};
    std::size_t length = 0;
    if (const auto at = head->find("Content-Length: "); at != std::string::npos)
        length = std::stoul(head->substr(at + 16));
    EXPECT_TRUE(s.read_exactly(length, default_timeout));
    return *head;
}

const std::string spoofing_request =
    "GET /who HTTP/1.1\r\nHost: api.example\r\n"
    "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7, 8.8.8.8\r\n"
    "X-Forwarded-Proto: https\r\nX-Forwarded-Host: bank.example\r\nForwarded: for=6.6.6.6;proto=https\r\n\r\n";

class Forwarded : public ::testing::Test {
protected:
    // crudcast on `listen` (port 0) trusting `trusted` ("" = the default: nobody).
    void start(const std::string& trusted, const std::string& listen = "127.0.0.1") {
        auto cfg = test_config(upstream.port());
        cfg.listen = {listen, 0};
        if (!trusted.empty()) cfg.trusted_proxies = {net::parse_cidr(trusted)};
        gateway = start_gateway(std::move(cfg));
    }
    // The request from `source` as the upstream saw it.
    RecordedRequest send_from(const std::string& source, const std::string& request = spoofing_request,
                              const std::string& destination = "127.0.0.1") {
        auto s = connect_from(source, destination, gateway->port());
        if (!s) throw std::runtime_error("cannot connect from " + source + ": " + std::strerror(errno));
        const auto before = upstream.request_count();
        const auto head = roundtrip(*s, request);
        EXPECT_TRUE(head.starts_with("HTTP/1.1 200")) << head;
        EXPECT_TRUE(upstream.wait_for_requests(before + 1));
        return upstream.request(before);
    }
    static void expect_own_values(const RecordedRequest& seen, const std::string& peer) {
        EXPECT_EQ(seen.headers.all("X-Forwarded-For"), Lines{peer});
        EXPECT_EQ(seen.headers.all("X-Forwarded-Proto"), Lines{"http"});
        EXPECT_EQ(seen.headers.all("X-Forwarded-Host"), Lines{"api.example"});
        EXPECT_EQ(seen.headers.count("Forwarded"), 0u);
    }

    RawUpstream upstream;
    std::unique_ptr<gateway::Gateway> gateway;  // declared last: stopped before the upstream
};

TEST_F(Forwarded, UntrustedPeerCannotSpoofItsAddressSchemeOrHost) {
    start("127.0.0.2/32");
    expect_own_values(send_from("127.0.0.1"), "127.0.0.1");
}

TEST_F(Forwarded, TrustedPeerChainIsKeptAndThePeerAppended) {
    start("127.0.0.2/32");
    const auto seen = send_from("127.0.0.2");
    EXPECT_EQ(seen.headers.all("X-Forwarded-For"), Lines{"6.6.6.6, 7.7.7.7, 8.8.8.8, 127.0.0.2"});
    EXPECT_EQ(seen.headers.all("X-Forwarded-Proto"), Lines{"https"});
    EXPECT_EQ(seen.headers.all("X-Forwarded-Host"), Lines{"bank.example"});
    EXPECT_EQ(seen.headers.all("Forwarded"), Lines{"for=6.6.6.6;proto=https"});
    EXPECT_EQ(seen.headers.all("Host"), Lines{"api.example"});
}

TEST_F(Forwarded, TrustedPeerWithoutHeadersGetsCrudcastsOwn) {
    start("127.0.0.2/32");
    const auto seen = send_from("127.0.0.2", get_request("/plain"));
    EXPECT_EQ(seen.headers.all("X-Forwarded-For"), Lines{"127.0.0.2"});
    EXPECT_EQ(seen.headers.all("X-Forwarded-Proto"), Lines{"http"});
    EXPECT_EQ(seen.headers.all("X-Forwarded-Host"), Lines{"test"});
}

TEST_F(Forwarded, TrustedPeerRepeatedProtoOrHostIsReplaced) {
    start("127.0.0.2/32");
    const auto seen = send_from("127.0.0.2",
                                "GET /r HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: 1.1.1.1\r\n"
                                "X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n"
                                "X-Forwarded-Host: a.example\r\nX-Forwarded-Host: b.example\r\n\r\n");
    EXPECT_EQ(seen.headers.all("X-Forwarded-For"), Lines{"1.1.1.1, 127.0.0.2"});
    EXPECT_EQ(seen.headers.all("X-Forwarded-Proto"), Lines{"http"});
    EXPECT_EQ(seen.headers.all("X-Forwarded-Host"), Lines{"api.example"});
}

TEST_F(Forwarded, ByDefaultNoPeerIsTrusted) {
    start("");
    expect_own_values(send_from("127.0.0.1"), "127.0.0.1");
    expect_own_values(send_from("127.0.0.2"), "127.0.0.2");
}

TEST_F(Forwarded, TunnelledUpgradeFollowsTheSameRules) {
    start("127.0.0.2/32");
    const std::string upgrade =
        "GET /chat HTTP/1.1\r\nHost: api.example\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: bank.example\r\n"
        "Forwarded: for=6.6.6.6\r\n\r\n";
    expect_own_values(send_from("127.0.0.1", upgrade), "127.0.0.1");
    EXPECT_EQ(send_from("127.0.0.2", upgrade).headers.all("X-Forwarded-For"), Lines{"6.6.6.6, 127.0.0.2"});
}

TEST_F(Forwarded, Ipv6PeersAreMatchedToo) {
    if (!have_ipv6_loopback()) GTEST_SKIP() << "no IPv6 loopback here";
    start("::1", "::1");
    const auto seen = send_from("::1", spoofing_request, "::1");
    EXPECT_EQ(seen.headers.all("X-Forwarded-For"), Lines{"6.6.6.6, 7.7.7.7, 8.8.8.8, ::1"});
    EXPECT_EQ(seen.headers.all("X-Forwarded-Proto"), Lines{"https"});
    gateway.reset();
    start("fd00::/8", "::1");
    expect_own_values(send_from("::1", spoofing_request, "::1"), "::1");
}

// An IPv4 client of a dual-stack listener is an IPv4-mapped IPv6 peer: an IPv4 range still matches it.
TEST_F(Forwarded, Ipv4MappedPeerMatchesAnIpv4Range) {
    if (!have_ipv6_loopback()) GTEST_SKIP() << "no IPv6 here";
    start("127.0.0.2/32", "::");
    EXPECT_EQ(send_from("127.0.0.2").headers.all("X-Forwarded-For"),
              Lines{"6.6.6.6, 7.7.7.7, 8.8.8.8, ::ffff:127.0.0.2"});
    expect_own_values(send_from("127.0.0.1"), "::ffff:127.0.0.1");
}

struct BadValue {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    std::string mentions;
};

TEST(TrustedProxiesSetting, BadValueIsOneLineNamingItAndExitCode2) {
    const std::vector<BadValue> cases = {
        {{"--trusted-proxies", "10.1.2.3/8"}, {}, "host bits set"},
        {{"--trusted-proxies", "10.0.0.0/8,,127.0.0.1"}, {}, "empty entry"},
        {{"--trusted-proxies=10.0.0.0/33"}, {}, "prefix length"},
        {{}, {{"CRUDCAST_TRUSTED_PROXIES", "10.0.0.0/8, localhost"}}, "\"localhost\" is not an IPv4 or IPv6"},
    };
    for (const auto& c : cases) {
        auto args = c.args;
        args.insert(args.begin(), {"--upstream", "http://127.0.0.1:1", "--check-config"});
        ChildProcess crudcast(CRUDCAST_BINARY, args, c.env);
        EXPECT_EQ(crudcast.wait(), 2);
        crudcast.wait_for_stderr("\n");  // no line holds a newline: this waits for the end of stderr
        const auto err = crudcast.stderr_text();
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
        EXPECT_TRUE(err.starts_with("crudcast: invalid setting trusted-proxies: ")) << err;
        EXPECT_NE(err.find(c.mentions), std::string::npos) << err;
    }
}

TEST(TrustedProxiesSetting, CheckConfigShowsTheRanges) {
    ChildProcess given(CRUDCAST_BINARY, {"--upstream", "http://127.0.0.1:1", "--check-config", "--trusted-proxies",
                                         "10.0.0.0/8, fd00::/8,127.0.0.1"});
    ASSERT_TRUE(given.wait_for_stdout("trusted-proxies = 10.0.0.0/8,fd00::/8,127.0.0.1  (flag)"));
    EXPECT_EQ(given.wait(), 0);
    ChildProcess none(CRUDCAST_BINARY, {"--upstream", "http://127.0.0.1:1", "--check-config"});
    ASSERT_TRUE(none.wait_for_stdout("trusted-proxies = none  (default)"));
    EXPECT_EQ(none.wait(), 0);
}

}  // namespace
