// proxy_failure_test.cpp: the failure funnel (proxy/exchange_failure) over real loopback sockets. For
// each way an exchange can fail: the status and JSON error the client gets, the counter that moves,
// what the access record says (the admin API's recent requests), whether the client connection stays
// open, and the one retry of a reused pooled connection on a fresh one.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <rapidjson/document.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "tests/testkit.hpp"

namespace {

using namespace crudcast;
using namespace crudcast::testkit;

rapidjson::Document parse_json(const std::string& text) {
    rapidjson::Document doc;
    doc.Parse(text.c_str(), text.size());
    return doc;
}

// A loopback listener that never accepts: connections complete in the kernel's queue and nothing
// reads them. With backlog 0 and one connection of the test's own in the queue, the next connect's
// SYN is dropped: it hangs until the connecting side gives up.
class SilentListener {
public:
    explicit SilentListener(int backlog) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, backlog) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
            throw std::runtime_error("cannot listen");
        port_ = ntohs(addr.sin_port);
    }
    ~SilentListener() { ::close(fd_); }
    SilentListener(const SilentListener&) = delete;
    SilentListener& operator=(const SilentListener&) = delete;
    std::uint16_t port() const { return port_; }
    int fd() const { return fd_; }

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

class FailureFunnel : public ::testing::Test {
protected:
    void start(std::uint16_t upstream_port, const std::function<void(config::Config&)>& tweak = {}) {
        auto cfg = test_config(upstream_port);
        cfg.admin_listen = config::Endpoint{"127.0.0.1", 0};
        cfg.threads = 1;  // one upstream pool: reuse is predictable
        if (tweak) tweak(cfg);
        gateway = start_gateway(std::move(cfg));
    }
    std::uint16_t port() const { return gateway->port(); }

    struct Counters {
        std::uint64_t bad_gateway = 0;
        std::uint64_t gateway_timeout = 0;
    };
    // The counters move before the answer is written: no polling needed.
    Counters counters() const {
        const auto doc = parse_json(exchange(gateway->admin_port(), admin_request("/api/stats")).body);
        return {doc["bad_gateway"].GetUint64(), doc["gateway_timeout"].GetUint64()};
    }
    std::pair<unsigned, std::string> record(const std::string& rid) const {
        return access_record(gateway->admin_port(), rid);
    }
    // crudcast's own answer: status, {"error": error, "detail": starting with detail}, and the access
    // record carrying the same status and detail.
    void expect_answer(const Response& r, const std::string& rid, unsigned status, const char* error,
                       const std::string& detail) const {
        EXPECT_EQ(r.status, status) << r.body;
        const auto doc = parse_json(r.body);
        ASSERT_TRUE(doc.IsObject() && doc.HasMember("error") && doc.HasMember("detail")) << r.body;
        EXPECT_STREQ(doc["error"].GetString(), error);
        const std::string got = doc["detail"].GetString();
        EXPECT_TRUE(got.starts_with(detail)) << got;
        EXPECT_EQ(r.headers.get("X-Request-ID"), rid);
        EXPECT_EQ(record(rid), std::make_pair(status, got));
    }
    static std::string get(const std::string& target, const std::string& rid, const std::string& extra = "") {
        return get_request(target, "X-Request-ID: " + rid + "\r\n" + extra);
    }
    // A POST head announcing `length` body bytes.
    static std::string post(const std::string& target, const std::string& rid, std::size_t length) {
        return "POST " + target + " HTTP/1.1\r\nHost: t\r\nX-Request-ID: " + rid +
               "\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
    }
    // A POST whose body is streamed from another thread until the connection breaks (or 256 MiB).
    static std::thread post_endlessly(Client& client, const std::string& rid) {
        client.send("POST /upload HTTP/1.1\r\nHost: t\r\nX-Request-ID: " + rid +
                    "\r\nContent-Length: 268435456\r\n\r\n");
        return std::thread([&client] {
            const std::string chunk(1 << 20, 'x');
            for (int i = 0; i < 256 && client.socket().send_all(chunk); ++i) {}
        });
    }

    RawUpstream upstream;
    std::unique_ptr<gateway::Gateway> gateway;  // declared last: stopped before the upstreams
};

// ---- no connection ----

TEST_F(FailureFunnel, ConnectRefusedIs502AndKeepsOnlyABodylessClientConnection) {
    const auto down = free_port();
    start(down);
    Client client(port());
    const auto res = client.roundtrip(get("/down", "rid-refused"));
    expect_answer(res, "rid-refused", 502, "bad_gateway",
                  "connect to upstream 127.0.0.1:" + std::to_string(down) + " failed: ");
    EXPECT_TRUE(res.keep_alive);
    const auto with_body = client.roundtrip(post("/down", "rid-refused-body", 4) + "abcd");
    expect_answer(with_body, "rid-refused-body", 502, "bad_gateway", "connect to upstream ");
    EXPECT_FALSE(with_body.keep_alive);
    EXPECT_TRUE(client.closed_by_peer());
    EXPECT_EQ(counters().bad_gateway, 2u);
    EXPECT_EQ(counters().gateway_timeout, 0u);
}

TEST_F(FailureFunnel, ConnectTimeoutIs502NotGatewayTimeout) {
    SilentListener full(0);
    Socket filler = Socket::connect(full.port());  // the queue's one place
    start(full.port(), [](config::Config& c) { c.connect_timeout = 200ms; });
    const auto res = exchange(port(), get("/slow-connect", "rid-connect-timeout"));
    expect_answer(res, "rid-connect-timeout", 502, "bad_gateway",
                  "connect to upstream 127.0.0.1:" + std::to_string(full.port()) + " timed out after 200ms");
    EXPECT_EQ(counters().bad_gateway, 1u);
    EXPECT_EQ(counters().gateway_timeout, 0u);
}

// ---- sending the request ----

TEST_F(FailureFunnel, UpstreamThatTakesNoRequestBytesIs504AndClosesTheClient) {
    SilentListener deaf(16);
    start(deaf.port(), [](config::Config& c) { c.upstream_timeout = 300ms; });
    Client client(port());
    auto sender = post_endlessly(client, "rid-send-timeout");
    const auto res = client.read_response();
    ::shutdown(client.socket().fd(), SHUT_RDWR);  // ends the sender
    sender.join();
    expect_answer(res, "rid-send-timeout", 504, "gateway_timeout",
                  "the upstream did not take the request within upstream-timeout");
    EXPECT_FALSE(res.keep_alive);
    EXPECT_EQ(counters().gateway_timeout, 1u);
    EXPECT_EQ(counters().bad_gateway, 0u);
}

TEST_F(FailureFunnel, UpstreamResetWhileTheBodyStreamsIs502AndClosesTheClient) {
    SilentListener listener(16);
    // Takes a little of the request, then resets the connection. Connections that send nothing (the
    // gateway's readiness probe of the upstream) are just closed.
    std::thread resetter([&] {
        for (;;) {
            const int fd = ::accept(listener.fd(), nullptr, nullptr);
            if (fd < 0) return;
            char buf[4096];
            if (::recv(fd, buf, sizeof buf, 0) > 0) {
                const linger reset{1, 0};
                ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
                ::close(fd);
                return;
            }
            ::close(fd);
        }
    });
    start(listener.port());
    Client client(port());
    auto sender = post_endlessly(client, "rid-send-reset");
    const auto res = client.read_response();
    ::shutdown(client.socket().fd(), SHUT_RDWR);
    sender.join();
    resetter.join();
    expect_answer(res, "rid-send-reset", 502, "bad_gateway", "sending the request to the upstream failed: ");
    EXPECT_FALSE(res.keep_alive);
    EXPECT_EQ(counters().bad_gateway, 1u);
}

// ---- the response head ----

TEST_F(FailureFunnel, NoResponseHeadIs504AndKeepsTheClient) {
    upstream.set_handler([](const RecordedRequest&) { return UpstreamReply::never(); });
    start(upstream.port(), [](config::Config& c) { c.upstream_timeout = 300ms; });
    Client client(port());
    const auto res = client.roundtrip(get("/slow", "rid-head-timeout"));
    expect_answer(res, "rid-head-timeout", 504, "gateway_timeout",
                  "no response from the upstream within upstream-timeout (300ms)");
    EXPECT_TRUE(res.keep_alive);
    EXPECT_EQ(counters().gateway_timeout, 1u);
    EXPECT_EQ(upstream.request_count(), 1u) << "a slow upstream is never asked twice";
}

TEST_F(FailureFunnel, UpstreamClosingBeforeAnsweringIs502AndKeepsTheClient) {
    upstream.set_handler([](const RecordedRequest&) { return UpstreamReply::close(); });
    start(upstream.port());
    Client client(port());
    const auto res = client.roundtrip(get("/hangup", "rid-head-closed"));
    expect_answer(res, "rid-head-closed", 502, "bad_gateway", "upstream closed the connection without a response");
    EXPECT_TRUE(res.keep_alive);
    EXPECT_EQ(counters().bad_gateway, 1u);
}

TEST_F(FailureFunnel, ResponseThatIsNotHttpIs502Invalid) {
    upstream.set_handler([](const RecordedRequest&) {
        return UpstreamReply{UpstreamReply::Kind::respond, "SSH-2.0-x\r\n\r\n", {}, true};
    });
    start(upstream.port());
    const auto res = exchange(port(), get("/ssh", "rid-head-invalid"));
    expect_answer(res, "rid-head-invalid", 502, "bad_gateway", "invalid response from the upstream: ");
    EXPECT_EQ(counters().bad_gateway, 1u);
}

// ---- the one retry ----

TEST_F(FailureFunnel, ReusedConnectionClosedUnansweredIsRetriedOnceOnAFreshOneForIdempotentRequestsOnly) {
    // The first connection closes on anything but /warm; later connections answer everything except /always.
    upstream.set_handler([](const RecordedRequest& r) {
        if (r.target == "/always" || (r.connection == 1 && r.target != "/warm")) return UpstreamReply::close();
        return UpstreamReply::ok();
    });
    start(upstream.port());
    Client client(port());
    ASSERT_EQ(client.roundtrip(get("/warm", "rid-warm")).status, 200u);
    EXPECT_EQ(client.roundtrip(get("/retried", "rid-retried")).status, 200u);
    EXPECT_EQ(upstream.connections(), 2u);
    EXPECT_EQ(counters().bad_gateway, 0u);
    EXPECT_EQ(record("rid-retried"), std::make_pair(200u, std::string()));

    // A POST is not replayed: connection 2 is pooled now, so make it close on the POST.
    upstream.set_handler(
        [](const RecordedRequest& r) { return r.method == "POST" ? UpstreamReply::close() : UpstreamReply::ok(); });
    const auto once = client.roundtrip(post("/once", "rid-post", 0));
    expect_answer(once, "rid-post", 502, "bad_gateway", "upstream closed the connection without a response");
    EXPECT_EQ(upstream.connections(), 2u);

    // A retry that fails too is answered, not retried again.
    upstream.set_handler(
        [](const RecordedRequest& r) { return r.target == "/always" ? UpstreamReply::close() : UpstreamReply::ok(); });
    ASSERT_EQ(client.roundtrip(get("/warm", "rid-warm-again")).status, 200u);  // a pooled connection again
    const auto before = upstream.request_count();
    const auto twice = client.roundtrip(get("/always", "rid-always"));
    expect_answer(twice, "rid-always", 502, "bad_gateway", "upstream closed the connection without a response");
    EXPECT_EQ(upstream.request_count() - before, 2u) << "one attempt and one retry";
    EXPECT_EQ(counters().bad_gateway, 2u);
}

// ---- the response body ----

TEST_F(FailureFunnel, ResponseBrokenOffClosesTheClientAndKeepsTheUpstreamsStatusInTheRecord) {
    upstream.set_handler([](const RecordedRequest&) {
        return UpstreamReply{
            UpstreamReply::Kind::respond, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", {}, true};
    });
    start(upstream.port());
    Client client(port());
    client.send(get("/short", "rid-broke-off"));
    const auto head = client.socket().read_until("\r\n\r\n", default_timeout);
    ASSERT_TRUE(head && head->starts_with("HTTP/1.1 200 OK")) << head.value_or("(nothing)");
    EXPECT_TRUE(client.closed_by_peer());
    const auto [status, error] = record("rid-broke-off");
    EXPECT_EQ(status, 200u);
    EXPECT_TRUE(error.starts_with("upstream failed mid-response: ")) << error;
    EXPECT_EQ(counters().bad_gateway, 0u);
}

// ---- tunnelled upgrades ----

TEST_F(FailureFunnel, UpgradeUnansweredIs504AndUpgradeHungUpIs502BothClosing) {
    upstream.set_handler([](const RecordedRequest& r) {
        return r.target == "/never" ? UpstreamReply::never() : UpstreamReply::close();
    });
    start(upstream.port(), [](config::Config& c) { c.upstream_timeout = 300ms; });
    for (const auto& [target, status, error] :
         {std::tuple{"/never", 504u, "gateway_timeout"}, std::tuple{"/hangup", 502u, "bad_gateway"}}) {
        SCOPED_TRACE(target);
        Client client(port());
        const std::string rid = std::string("rid-upgrade") + target;
        const auto res = client.roundtrip(get(target, rid, "Connection: Upgrade\r\nUpgrade: echo\r\n"));
        expect_answer(res, rid, status, error, "upstream did not answer the upgrade request: ");
        EXPECT_FALSE(res.keep_alive);
        EXPECT_TRUE(client.closed_by_peer());
    }
    EXPECT_EQ(counters().gateway_timeout, 1u);
    EXPECT_EQ(counters().bad_gateway, 1u);
}

// ---- the client's side ----

TEST_F(FailureFunnel, RequestBodyStalledIsAnswered408AndClosed) {
    start(upstream.port(), [](config::Config& c) { c.client_body_timeout = 300ms; });
    Client client(port());
    client.send(post("/stall", "rid-stalled", 100) + "0123456789");
    const auto res = client.read_response();
    expect_answer(res, "rid-stalled", 408, "request_timeout", "request body stalled past client-body-timeout (300ms)");
    EXPECT_FALSE(res.keep_alive);
    EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(FailureFunnel, ClientGoneMidBodyIsLogged499) {
    start(upstream.port());
    {
        Client client(port());
        client.send(post("/gone", "rid-gone", 100) + "0123456789");
    }  // closed half-way through the body
    const auto [status, error] = record("rid-gone");
    EXPECT_EQ(status, 499u);
    EXPECT_TRUE(error.starts_with("client request body: ")) << error;
}

TEST_F(FailureFunnel, MalformedChunkedBodyIs400) {
    start(upstream.port());
    Client client(port());
    const auto res = client.roundtrip(
        "POST /chunks HTTP/1.1\r\nHost: t\r\nX-Request-ID: rid-bad-chunk\r\n"
        "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
    expect_answer(res, "rid-bad-chunk", 400, "bad_request", "malformed request body: ");
    EXPECT_FALSE(res.keep_alive);
    EXPECT_EQ(counters().bad_gateway, 0u);
}

}  // namespace
