// proxy_limits_test.cpp: what crudcast refuses (ambiguous framing, oversized headers and bodies,
// malformed request lines, slow clients), that it keeps serving afterwards, and graceful shutdown
// (in process, and the real binary on SIGTERM).
#include <gtest/gtest.h>

#include <csignal>
#include <future>
#include <sstream>

#include "tests/testkit.hpp"

namespace {

using namespace crudcast;
using namespace crudcast::testkit;

// Tries new connections until one is refused (the listener closes asynchronously after
// shutdown(), and nothing signals it); false if they are still accepted at the deadline.
bool refused_within(std::uint16_t port, Duration timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        try {
            Socket::connect(port);
        } catch (const std::system_error& e) {
            // Reset: the SYN raced the listener's close (nothing accepted it either).
            if (e.code() == std::errc::connection_refused || e.code() == std::errc::connection_reset) return true;
            throw;
        }
        std::this_thread::sleep_for(1ms);  // a polling interval, not a synchronisation
    }
    return false;
}

// ---- rejected requests ----

struct Rejection {
    std::string name;
    std::string request;
    unsigned status;
    std::function<void(config::Config&)> tweak = {};
    bool head_may_reach_upstream = false;  // the body is streamed: the head may already be upstream
    bool close_instead_ok = false;         // a close without an answer is acceptable too
};

void PrintTo(const Rejection& r, std::ostream* os) { *os << r.name; }

class Rejected : public ::testing::TestWithParam<Rejection> {};

TEST_P(Rejected, AnswersClosesAndKeepsServing) {
    const auto& c = GetParam();
    RawUpstream upstream;
    auto cfg = test_config(upstream.port());
    if (c.tweak) c.tweak(cfg);
    auto gw = start_gateway(std::move(cfg));

    Client client(gw->port());
    client.send(c.request);
    std::optional<Response> res;
    try {
        res = client.read_response();
    } catch (const std::runtime_error& e) {
        EXPECT_TRUE(c.close_instead_ok) << "no response: " << e.what();
    }
    if (res) {
        EXPECT_EQ(res->status, c.status) << res->body;
        EXPECT_FALSE(res->keep_alive);
    }
    EXPECT_TRUE(client.closed_by_peer()) << "crudcast kept a connection with broken framing open";
    EXPECT_EQ(upstream.request_count(), 0u) << "the upstream received a complete request";
    if (!c.head_may_reach_upstream) {
        EXPECT_EQ(upstream.connections(), 0u);
    }

    const auto after = exchange(gw->port(), get_request("/after"));  // crudcast keeps serving
    EXPECT_EQ(after.status, 200u);
    ASSERT_TRUE(upstream.wait_for_requests(1));
    EXPECT_EQ(upstream.requests().back().target, "/after");
    EXPECT_EQ(upstream.request_count(), 1u);
}

const auto small_body_limit = [](config::Config& c) { c.max_body_bytes = 1000; };

std::string chunk(std::size_t n, char fill) {
    std::ostringstream size;
    size << std::hex << n;
    return size.str() + "\r\n" + std::string(n, fill) + "\r\n";
}

INSTANTIATE_TEST_SUITE_P(
    Limits, Rejected,
    ::testing::Values(
        Rejection{"ContentLengthAndTransferEncoding",
                  "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n0\r\n\r\n",
                  400},
        Rejection{"TwoDifferentContentLengths",
                  "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
        Rejection{"InvalidContentLength", "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\nabc", 400},
        Rejection{"NegativeContentLength", "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400},
        Rejection{"HeaderOverMaxHeaderBytes",
                  "GET /x HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n", 431,
                  [](config::Config& c) { c.max_header_bytes = 1024; }},
        Rejection{"ContentLengthOverMaxBodyBytes", "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n", 413,
                  small_body_limit},
        Rejection{"ChunkedBodyOverMaxBodyBytes",
                  "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(600, 'a') +
                      chunk(600, 'b') + "0\r\n\r\n",
                  413, small_body_limit, true, true},
        Rejection{"RequestLineWithExtraToken", "GET /x HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400},
        Rejection{"RequestLineWithBadMethod", "G@T /x HTTP/1.1\r\nHost: t\r\n\r\n", 400},
        Rejection{"RequestLineWithBadVersion", "GET /x HTTX/1.1\r\nHost: t\r\n\r\n", 400},
        Rejection{"RequestLineWithoutTarget", "GET\r\nHost: t\r\n\r\n", 400}),
    [](const auto& info) { return info.param.name; });

// ---- slow clients ----

TEST(SlowClient, HalfAHeaderIsDisconnectedAfterClientHeaderTimeout) {
    RawUpstream upstream;
    auto cfg = test_config(upstream.port());
    cfg.client_header_timeout = 300ms;
    auto gw = start_gateway(std::move(cfg));
    for (const std::string partial : {"GET /slow HTTP/1.1\r\nHost: t\r\n", ""}) {
        SCOPED_TRACE(partial.empty() ? "nothing sent" : "half a header sent");
        Client client(gw->port());
        const auto started = std::chrono::steady_clock::now();
        if (!partial.empty()) client.send(partial);
        EXPECT_TRUE(client.closed_by_peer(10s));  // the bound is the test's patience, not the assertion
        EXPECT_GE(std::chrono::steady_clock::now() - started, 280ms) << "closed before client-header-timeout";
    }
    EXPECT_EQ(upstream.connections(), 0u);
    EXPECT_EQ(exchange(gw->port(), get_request("/after")).status, 200u);
}

// ---- graceful shutdown ----

TEST(GracefulShutdown, InFlightRequestCompletesNewConnectionsAreRefused) {
    Gate release;
    RawUpstream upstream([&](const RecordedRequest& r) {
        if (r.target == "/slow") release.wait();
        return UpstreamReply::ok("{\"slow\":\"done\"}");
    });
    auto gw = start_gateway(test_config(upstream.port()));
    const auto port = gw->port();

    Client idle(port);  // a keep-alive connection between requests
    ASSERT_EQ(idle.roundtrip(get_request("/warm")).status, 200u);
    Client busy(port);
    busy.send(get_request("/slow"));
    ASSERT_TRUE(upstream.wait_for_requests(2));  // the slow request is upstream, held

    gw->shutdown();
    EXPECT_TRUE(refused_within(port, 5s)) << "still accepting after shutdown()";
    EXPECT_TRUE(idle.closed_by_peer()) << "idle connection not closed by the drain";

    release.open();
    const auto res = busy.read_response();
    EXPECT_EQ(res.status, 200u);
    EXPECT_EQ(res.body, "{\"slow\":\"done\"}");
    EXPECT_FALSE(res.keep_alive);
    EXPECT_TRUE(busy.closed_by_peer());

    auto waited = std::async(std::launch::async, [&] { gw->wait(); });
    EXPECT_EQ(waited.wait_for(10s), std::future_status::ready) << "wait() did not return after the drain";
}

TEST(GracefulShutdown, BinaryExitsZeroOnSigtermAfterFinishingInFlightRequest) {
    Gate release;
    RawUpstream upstream([&](const RecordedRequest& r) {
        if (r.target == "/slow") release.wait();
        return UpstreamReply::ok();
    });
    const auto port = free_port();
    ChildProcess crudcast(CRUDCAST_BINARY, {"--listen", "127.0.0.1:" + std::to_string(port), "--upstream",
                                            "http://127.0.0.1:" + std::to_string(upstream.port()), "--admin-listen",
                                            "off", "--log-level", "info", "--threads", "2"});
    ASSERT_TRUE(crudcast.wait_for_stderr("crudcast started")) << crudcast.stderr_text();
    EXPECT_EQ(exchange(port, get_request("/first")).status, 200u);

    Client busy(port);
    busy.send(get_request("/slow"));
    ASSERT_TRUE(upstream.wait_for_requests(2));
    crudcast.signal(SIGTERM);
    ASSERT_TRUE(crudcast.wait_for_stderr("signal received"));
    release.open();
    EXPECT_EQ(busy.read_response().status, 200u);
    EXPECT_EQ(crudcast.wait(10s), 0);
}

// A request refused in its header, after a whole request line, is named by its access line: the
// operator reading "status=400" at 3 a.m. sees which request it was.
TEST(RefusedHeaders, TheAccessLineNamesTheRequestLineBeforeTheBadHeader) {
    RawUpstream upstream;
    const auto port = free_port();
    ChildProcess crudcast(CRUDCAST_BINARY, {"--listen", "127.0.0.1:" + std::to_string(port), "--upstream",
                                            "http://127.0.0.1:" + std::to_string(upstream.port()), "--admin-listen",
                                            "off", "--log-level", "info"});
    ASSERT_TRUE(crudcast.wait_for_stderr("crudcast started")) << crudcast.stderr_text();
    struct Row {
        const char* request;
        const char* error;
        const char* named;  // what the access line must say of the request
    };
    for (const Row& row : {
             Row{"POST /api/authors HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                 "both Content-Length and Transfer-Encoding", "method=POST target=/api/authors status=400"},
             Row{"PUT /api/authors/7 HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                 "multiple Content-Length", "method=PUT target=/api/authors/7 status=400"},
         }) {
        SCOPED_TRACE(row.request);
        Client client(port);
        client.send(row.request);
        EXPECT_EQ(client.read_response().status, 400u);
        const auto line = crudcast.wait_for_stderr(row.error);
        ASSERT_TRUE(line.has_value()) << crudcast.stderr_text();
        EXPECT_NE(line->find(row.named), std::string::npos) << *line;
    }
    EXPECT_EQ(upstream.requests().size(), 0u);
}

}  // namespace

namespace {

// A client still sending when crudcast answers early and closes (413 for a body that announced
// 4 MiB against a 64 KiB limit) reads its answer: crudcast half-closes and drains what still comes
// before closing (a close with unread bytes is a reset, and a reset fails the client's writes
// before it ever reads the answer).
TEST(LingeringClose, AClientStillSendingItsBodyReadsThe413) {
    RawUpstream upstream;
    auto cfg = test_config(upstream.port());
    cfg.max_body_bytes = 64 * 1024;
    auto gw = start_gateway(std::move(cfg));
    for (const bool sized : {true, false}) {
        SCOPED_TRACE(sized ? "Content-Length" : "chunked");
        const std::size_t body = 4 * 1024 * 1024;
        Client client(gw->port());
        std::string head = "POST /upload HTTP/1.1\r\nHost: t\r\n";
        head += sized ? "Content-Length: " + std::to_string(body) + "\r\n\r\n" : "Transfer-Encoding: chunked\r\n\r\n";
        client.send(head);
        // Like a real uploader: the whole body goes out in blocking writes, then the answer is read.
        const std::string chunk(64 * 1024, 'x');
        const std::string framed = sized ? chunk : "10000\r\n" + chunk + "\r\n";
        bool sent_all = true;
        for (std::size_t sent = 0; sent < body && sent_all; sent += chunk.size())
            sent_all = client.socket().send_all(framed);
        EXPECT_TRUE(sent_all) << "crudcast reset the connection while the client was sending";
        const auto res = client.read_response();
        EXPECT_EQ(res.status, 413u);
        EXPECT_TRUE(client.closed_by_peer());
    }
}

}  // namespace
