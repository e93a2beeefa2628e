// proxy_test.cpp: the request path over real loopback sockets: an in-process crudcast between a raw
// client and a scriptable raw upstream. Byte-exact passthrough, hop-by-hop headers, X-Forwarded-*,
// X-Request-ID, upstream keep-alive, HTTP/1.0 clients, 502/504, target forms and tunnelled upgrades.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "tests/testkit.hpp"

namespace {

using namespace crudcast;
using namespace crudcast::testkit;

class ProxyTest : public ::testing::Test {
protected:
    void start(const std::function<void(config::Config&)>& tweak = {}) {
        auto cfg = test_config(upstream.port());
        if (tweak) tweak(cfg);
        gateway = start_gateway(std::move(cfg));
    }
    std::uint16_t port() const { return gateway->port(); }

    RawUpstream upstream;
    std::unique_ptr<gateway::Gateway> gateway;  // declared last: stopped before the upstream
};

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

std::string line_name(std::string_view line) { return lower(line.substr(0, line.find(':'))); }

// Header lines of a raw head ("Name: value"), without the start line and the empty line.
std::vector<std::string> header_lines(std::string_view head) {
    std::vector<std::string> out;
    head.remove_prefix(head.find("\r\n") + 2);
    for (auto eol = head.find("\r\n"); eol != 0 && eol != std::string_view::npos; eol = head.find("\r\n")) {
        out.emplace_back(head.substr(0, eol));
        head.remove_prefix(eol + 2);
    }
    return out;
}

// The lines not named in `names`, grouped by name (stable): RFC 9110 §5.3 makes the order of
// same-named fields significant, not the order between different names (Beast groups them).
std::vector<std::string> without(const std::vector<std::string>& lines, const std::set<std::string>& names) {
    std::vector<std::string> out;
    for (const auto& l : lines)
        if (!names.count(line_name(l))) out.push_back(l);
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return line_name(a) < line_name(b); });
    return out;
}

bool is_hex32(const std::string& s) {
    return s.size() == 32 && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); });
}

// crudcast's own error answer: {"error": "...", "detail": "..."}.
void expect_json_error(const Response& r, const char* error) {
    rapidjson::Document doc;
    doc.Parse(r.body.c_str());
    ASSERT_FALSE(doc.HasParseError()) << r.body;
    ASSERT_TRUE(doc.IsObject()) << r.body;
    ASSERT_TRUE(doc.HasMember("error") && doc["error"].IsString()) << r.body;
    ASSERT_TRUE(doc.HasMember("detail") && doc["detail"].IsString()) << r.body;
    EXPECT_STREQ(doc["error"].GetString(), error);
    EXPECT_NE(std::string(doc["detail"].GetString()), "");
    EXPECT_TRUE(r.headers.get("Content-Type").starts_with("application/json"));
}

// ---- byte-exact passthrough, for every method and for odd-but-legal targets ----

const std::set<std::string> added_by_proxy{"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"};

class Passthrough : public ProxyTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(Passthrough, MethodTargetHeadersBodyAndResponseCrossUnchanged) {
    const std::string method = GetParam();
    const bool head = method == "HEAD";
    const bool with_body = method != "GET" && method != "HEAD";
    const std::string response_body = "{\"id\":7,\"name\":\"caf\xc3\xa9\"}\n";
    const std::string upstream_head =
        "HTTP/1.1 203 Odd But Fine\r\nContent-Type: application/json; charset=utf-8\r\n"
        "set-cookie: a=1; Path=/\r\nX-Odd-CASE: v1\r\nSet-Cookie: b=2\r\n"
        "Cache-Control: no-store\r\nContent-Length: " +
        std::to_string(response_body.size()) + "\r\n\r\n";
    upstream.set_handler([&](const RecordedRequest&) {
        return UpstreamReply{UpstreamReply::Kind::respond, upstream_head + (head ? "" : response_body), {}, false};
    });
    start();

    std::vector<std::string> targets{"/plain", "/a/%2F/b?x=%20&y=%zz", "/a//b/./c/../d", "/caf%C3%A9;v=1?q=a+b", "/?"};
    if (method == "OPTIONS") targets.push_back("*");
    Client client(port());  // one keep-alive connection for all targets
    for (std::size_t i = 0; i < targets.size(); ++i) {
        SCOPED_TRACE(method + " " + targets[i]);
        const std::string body = with_body ? std::string("line1\r\nline2\0\xff\x01 end", 19) + targets[i] : "";
        std::string request = method + " " + targets[i] +
                              " HTTP/1.1\r\nHost: backend.example:8080\r\n"
                              "user-agent: crudcast-test/1.0\r\nX-Multi: one\r\n"
                              "ACCEPT: application/json\r\nX-Multi: two\r\n"
                              "x-lower-case: MiXeD Value, with \"quotes\"\r\n";
        if (with_body) {
            request += "Content-Type: application/octet-stream\r\n";
            request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
        }
        request += "\r\n" + body;

        ReadOptions options;
        options.head_request = head;
        const auto res = client.roundtrip(request, options);
        ASSERT_TRUE(upstream.wait_for_requests(i + 1));
        const auto seen = upstream.request(i);

        EXPECT_EQ(seen.request_line, method + " " + targets[i] + " HTTP/1.1");
        EXPECT_EQ(seen.method, method);
        EXPECT_EQ(seen.target, targets[i]);
        EXPECT_EQ(without(seen.header_lines, added_by_proxy), without(header_lines(request), {}));
        EXPECT_EQ(seen.body, body);

        EXPECT_EQ(res.status, 203u);
        EXPECT_EQ(res.reason, "Odd But Fine");
        EXPECT_EQ(res.head.substr(0, res.head.find("\r\n")), "HTTP/1.1 203 Odd But Fine");
        // crudcast adds X-Request-ID and X-Crudcast-Seq (the stream position); nothing else changes.
        EXPECT_EQ(without(header_lines(res.head), {"x-request-id", "x-crudcast-seq"}),
                  without(header_lines(upstream_head), {}));
        EXPECT_EQ(res.headers.count("X-Request-ID"), 1u);
        EXPECT_EQ(res.headers.count("X-Crudcast-Seq"), 1u);
        EXPECT_EQ(res.headers.get("X-Request-ID"), seen.headers.get("X-Request-ID"));
        EXPECT_EQ(res.body, head ? "" : response_body);
    }
    EXPECT_EQ(upstream.request_count(), targets.size());
}

INSTANTIATE_TEST_SUITE_P(Methods, Passthrough,
                         ::testing::Values("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE",
                                           "X-CUSTOM"),
                         [](const auto& info) {
                             std::string name = info.param;
                             std::replace(name.begin(), name.end(), '-', '_');
                             return name;
                         });

// ---- hop-by-hop headers, both directions ----

TEST_F(ProxyTest, HopByHopHeadersAreNotForwardedInEitherDirection) {
    upstream.set_handler([](const RecordedRequest&) {
        return UpstreamReply{UpstreamReply::Kind::respond,
                             "HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nKeep-Alive: timeout=30\r\n"
                             "Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nTrailer: X-Sum\r\nTE: trailers\r\n"
                             "X-Internal: internal\r\nX-Public: public\r\nContent-Length: 2\r\n\r\nok",
                             {},
                             false};
    });
    start();
    for (const std::string connection : {"keep-alive, X-Secret", "close, X-Secret"}) {
        SCOPED_TRACE("Connection: " + connection);
        Client client(port());
        const auto res = client.roundtrip("POST /hop HTTP/1.1\r\nHost: test\r\nConnection: " + connection +
                                          "\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-Checksum\r\n"
                                          "Upgrade: h2c\r\nProxy-Connection: keep-alive\r\nX-Secret: s3cret\r\n"
                                          "X-Kept: yes\r\nContent-Length: 4\r\n\r\nabcd");
        const auto seen = upstream.request(upstream.request_count() - 1);
        for (const char* name :
             {"Connection", "Keep-Alive", "TE", "Trailer", "Upgrade", "Proxy-Connection", "X-Secret"})
            EXPECT_FALSE(seen.headers.has(name)) << name << " reached the upstream";
        EXPECT_EQ(seen.headers.get("X-Kept"), "yes");
        EXPECT_EQ(seen.body, "abcd");

        EXPECT_EQ(res.status, 200u);
        EXPECT_EQ(res.body, "ok");
        EXPECT_EQ(res.headers.get("X-Public"), "public");
        for (const char* name : {"Keep-Alive", "TE", "Trailer", "Upgrade", "Proxy-Connection", "X-Internal"})
            EXPECT_FALSE(res.headers.has(name)) << name << " reached the client";
        // Only crudcast's own connection management may appear.
        for (const auto& value : res.headers.all("Connection"))
            EXPECT_TRUE(value == "close" || value == "keep-alive") << value;
        if (connection.starts_with("close")) {
            EXPECT_TRUE(client.closed_by_peer());
        }
    }
}

// ---- X-Forwarded-*, Host, X-Request-ID ----

// A trusted peer's X-Forwarded-* (trusted-proxies); the untrusted side is in forwarded_test.cpp.
TEST_F(ProxyTest, XForwardedForIsAppendedToOrSet) {
    start([](config::Config& c) { c.trusted_proxies = {net::parse_cidr("127.0.0.1")}; });
    exchange(port(), get_request("/xff", "X-Forwarded-For: 1.2.3.4\r\n"));
    exchange(port(), get_request("/xff"));
    ASSERT_EQ(upstream.request_count(), 2u);
    EXPECT_EQ(upstream.request(0).headers.all("X-Forwarded-For"), std::vector<std::string>{"1.2.3.4, 127.0.0.1"});
    EXPECT_EQ(upstream.request(1).headers.all("X-Forwarded-For"), std::vector<std::string>{"127.0.0.1"});
}

TEST_F(ProxyTest, XForwardedProtoIsSetWhenAbsentAndKeptWhenPresent) {
    start([](config::Config& c) { c.trusted_proxies = {net::parse_cidr("127.0.0.1")}; });
    exchange(port(), get_request("/p"));
    exchange(port(), get_request("/p", "X-Forwarded-Proto: https\r\n"));
    ASSERT_EQ(upstream.request_count(), 2u);
    EXPECT_EQ(upstream.request(0).headers.all("X-Forwarded-Proto"), std::vector<std::string>{"http"});
    EXPECT_EQ(upstream.request(1).headers.all("X-Forwarded-Proto"), std::vector<std::string>{"https"});
}

TEST_F(ProxyTest, HostIsPreservedAndCopiedToXForwardedHost) {
    start();
    exchange(port(), "GET /h HTTP/1.1\r\nHost: shop.example:8443\r\n\r\n");
    const auto seen = upstream.request(0);
    EXPECT_EQ(seen.headers.all("Host"), std::vector<std::string>{"shop.example:8443"});
    EXPECT_EQ(seen.headers.get("X-Forwarded-Host"), "shop.example:8443");
}

TEST_F(ProxyTest, HostIsTheUpstreamsWithPreserveHostOff) {
    start([](config::Config& c) { c.preserve_host = false; });
    exchange(port(), "GET /h HTTP/1.1\r\nHost: shop.example:8443\r\n\r\n");
    const auto seen = upstream.request(0);
    EXPECT_EQ(seen.headers.all("Host"), std::vector<std::string>{"127.0.0.1:" + std::to_string(upstream.port())});
    EXPECT_EQ(seen.headers.get("X-Forwarded-Host"), "shop.example:8443");
}

TEST_F(ProxyTest, GivenRequestIdIsForwardedAndReturned) {
    start();
    const std::string id(128, 'a');  // the longest acceptable id
    for (const std::string& given : {std::string("req-42.a_b~c:d/e+f=g@h"), id}) {
        const auto res = exchange(port(), get_request("/id", "X-Request-ID: " + given + "\r\n"));
        const auto seen = upstream.request(upstream.request_count() - 1);
        EXPECT_EQ(seen.headers.all("X-Request-ID"), std::vector<std::string>{given});
        EXPECT_EQ(res.headers.all("X-Request-ID"), std::vector<std::string>{given});
    }
}

TEST_F(ProxyTest, MissingOrUnacceptableRequestIdIsGeneratedAndReturned) {
    start();
    for (const std::string& header : {std::string(""), std::string("X-Request-ID: has space\r\n"),
                                      "X-Request-ID: " + std::string(129, 'a') + "\r\n"}) {
        SCOPED_TRACE(header);
        const auto res = exchange(port(), get_request("/id", header));
        const auto seen = upstream.request(upstream.request_count() - 1);
        ASSERT_EQ(seen.headers.count("X-Request-ID"), 1u);
        const auto id = seen.headers.get("X-Request-ID");
        EXPECT_TRUE(is_hex32(id)) << id;
        EXPECT_EQ(res.headers.all("X-Request-ID"), std::vector<std::string>{id});
    }
}

// ---- keep-alive, HTTP/1.0 ----

TEST_F(ProxyTest, SequentialRequestsOnOneClientConnectionReuseOneUpstreamConnection) {
    start([](config::Config& c) { c.threads = 1; });
    Client client(port());
    for (int i = 0; i < 10; ++i) {
        const auto res = client.roundtrip(get_request("/ka/" + std::to_string(i)));
        ASSERT_EQ(res.status, 200u);
        EXPECT_TRUE(res.keep_alive);
    }
    EXPECT_EQ(upstream.request_count(), 10u);
    EXPECT_EQ(upstream.connections(), 1u);
}

TEST_F(ProxyTest, SeveralClientConnectionsShareUpstreamConnections) {
    start([](config::Config& c) { c.threads = 1; });
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 3; ++i) clients.push_back(std::make_unique<Client>(port()));
    for (int round = 0; round < 4; ++round)
        for (auto& c : clients) ASSERT_EQ(c->roundtrip(get_request("/shared")).status, 200u);
    clients.clear();
    for (int i = 0; i < 3; ++i) ASSERT_EQ(exchange(port(), get_request("/fresh")).status, 200u);
    EXPECT_EQ(upstream.request_count(), 15u);
    EXPECT_LT(upstream.connections(), 15u);
    EXPECT_EQ(upstream.connections(), 1u);  // one thread, strictly sequential requests
}

TEST_F(ProxyTest, Http10ClientWithoutKeepAliveIsAnsweredAndClosed) {
    start();
    Client client(port());
    const auto res = client.roundtrip("GET /old HTTP/1.0\r\nHost: test\r\n\r\n");
    EXPECT_EQ(res.status, 200u);
    EXPECT_EQ(res.body, "{\"ok\":true}");
    EXPECT_FALSE(res.keep_alive);
    EXPECT_TRUE(client.closed_by_peer());
    EXPECT_EQ(upstream.request(0).version, "HTTP/1.1");
}

TEST_F(ProxyTest, ChunkedUpstreamResponseReachesHttp10ClientEofDelimited) {
    upstream.set_handler([](const RecordedRequest&) {
        return UpstreamReply{UpstreamReply::Kind::respond,
                             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
                             {},
                             false};
    });
    start();
    Client client(port());
    const auto res = client.roundtrip("GET /chunks HTTP/1.0\r\nHost: test\r\n\r\n");
    EXPECT_EQ(res.status, 200u);
    EXPECT_FALSE(res.chunked);
    EXPECT_FALSE(res.headers.has("Transfer-Encoding"));
    EXPECT_FALSE(res.headers.has("Content-Length"));
    EXPECT_EQ(res.body, "hello, world");
    EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(ProxyTest, EofDelimitedUpstreamResponseIsChunkedForHttp11Client) {
    upstream.set_handler([](const RecordedRequest&) {
        return UpstreamReply{
            UpstreamReply::Kind::respond, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", {}, true};
    });
    start();
    Client client(port());
    const auto res = client.roundtrip(get_request("/eof"));
    EXPECT_EQ(res.status, 200u);
    EXPECT_EQ(res.body, "until close");
    EXPECT_TRUE(res.chunked);
    EXPECT_EQ(client.roundtrip(get_request("/again")).body, "until close");  // the client connection stayed open
}

// ---- upstream failures ----

TEST(ProxyUpstreamDown, BadGatewayWhileNothingListensThenPicksTheUpstreamUp) {
    const auto upstream_port = free_port();
    auto gw = start_gateway(test_config(upstream_port));
    const auto res = exchange(gw->port(), get_request("/down"));
    EXPECT_EQ(res.status, 502u);
    expect_json_error(res, "bad_gateway");
    EXPECT_TRUE(is_hex32(res.headers.get("X-Request-ID")));

    RawUpstream late({}, upstream_port);  // the upstream comes up on the same port
    const auto again = exchange(gw->port(), get_request("/up"));
    EXPECT_EQ(again.status, 200u);
    EXPECT_EQ(late.request_count(), 1u);
}

TEST_F(ProxyTest, GatewayTimeoutWhenTheUpstreamNeverAnswers) {
    upstream.set_handler([](const RecordedRequest&) { return UpstreamReply::never(); });
    start([](config::Config& c) { c.upstream_timeout = 300ms; });
    const auto started = std::chrono::steady_clock::now();
    const auto res = exchange(port(), get_request("/slow"));
    EXPECT_EQ(res.status, 504u);
    expect_json_error(res, "gateway_timeout");
    EXPECT_GE(std::chrono::steady_clock::now() - started, 300ms);
    EXPECT_EQ(upstream.request_count(), 1u);
}

TEST_F(ProxyTest, BadGatewayWhenTheUpstreamClosesWithoutAnswering) {
    upstream.set_handler([](const RecordedRequest&) { return UpstreamReply::close(); });
    start();
    const auto res = exchange(port(), get_request("/hangup"));
    EXPECT_EQ(res.status, 502u);
    expect_json_error(res, "bad_gateway");
    EXPECT_EQ(upstream.request_count(), 1u);
}

// ---- upgrades ----

TEST_F(ProxyTest, UpgradeIsTunnelledBothWays) {
    upstream.set_handler([](const RecordedRequest&) {
        UpstreamReply reply;
        reply.bytes = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";
        reply.then = [](Socket& s) {  // echo until the peer half-closes
            while (s.buffered().size() > 0 || s.fill(forever) == Socket::Status::data) {
                if (!s.send_all(s.buffered())) return;
                s.consume(s.buffered().size());
            }
        };
        return reply;
    });
    start();
    Client client(port());
    const auto res =
        client.roundtrip("GET /socket HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
    ASSERT_EQ(res.status, 101u);
    EXPECT_EQ(res.headers.get("Upgrade"), "echo");
    const auto seen = upstream.request(0);
    EXPECT_EQ(seen.target, "/socket");
    EXPECT_EQ(seen.headers.get("Upgrade"), "echo");
    EXPECT_NE(lower(seen.headers.get("Connection")).find("upgrade"), std::string::npos);

    client.send("ping");
    EXPECT_EQ(client.socket().read_exactly(4, default_timeout), "ping");
    std::string big(256 * 1024, '\0');
    fill_pattern(0, big.data(), big.size());
    client.send(big);
    EXPECT_EQ(client.socket().read_exactly(big.size(), default_timeout), big);
    client.socket().shutdown_write();  // the half-close crosses; the upstream ends; crudcast closes
    EXPECT_TRUE(client.closed_by_peer());
}

// The upstream's answer to an upgrade is read under the same 64 KiB head limit as every other
// answer: a 20 KiB head passes (Beast's own default, 8 KiB, refused it), 70 KiB is a 502.
TEST_F(ProxyTest, UpgradeAnswerHeadHasTheForwardingHeadLimit) {
    upstream.set_handler([](const RecordedRequest& r) {
        UpstreamReply reply;
        const std::size_t filler = r.target == "/big" ? 70 * 1024 : 20 * 1024;
        reply.bytes = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Filler: " +
                      std::string(filler, 'f') + "\r\n\r\n";
        return reply;
    });
    start();
    for (const auto& [target, status] : {std::pair{"/fits", 101u}, std::pair{"/big", 502u}}) {
        SCOPED_TRACE(target);
        Client client(port());
        const auto res = client.roundtrip(std::string("GET ") + target +
                                          " HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
        EXPECT_EQ(res.status, status);
    }
}

}  // namespace
