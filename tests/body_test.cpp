// body_test.cpp: request bodies and the client side of forwarding, over real loopback sockets:
// chunk extensions and trailers held to the header limits (431 from a client, 502 from the
// upstream) in bounded memory, client-body-timeout (408), small bodies read whole before an upstream
// connection is taken (client-body-buffer-bytes), and the upstream request cancelled when the
// client of a request that cannot publish leaves (499 client_closed), but not when it can publish.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <future>
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

std::string chunked_post(const std::string& rid) {
    return "POST /api/things HTTP/1.1\r\nHost: t\r\nX-Request-ID: " + rid +
           "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
}

std::string sized_post(const std::string& target, const std::string& rid, std::size_t length) {
    return "POST " + target + " HTTP/1.1\r\nHost: t\r\nX-Request-ID: " + rid +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
}

// n trailer lines of 10 bytes each ("x-t: 1234\r\n" without the digits' variety: 10 bytes).
std::string trailer_lines(std::size_t n) {
    std::string out;
    out.reserve(n * 10);
    for (std::size_t i = 0; i < n; ++i) out += "x-t: 123\r\n";
    return out;
}

class Body : public ::testing::Test {
protected:
    void start(const std::function<void(config::Config&)>& tweak = {}) {
        auto cfg = test_config(upstream.port());
        cfg.admin_listen = config::Endpoint{"127.0.0.1", 0};
        cfg.threads = 1;  // one upstream pool: which connection a request takes is predictable
        if (tweak) tweak(cfg);
        gateway = start_gateway(std::move(cfg));
    }
    std::uint16_t port() const { return gateway->port(); }

    std::uint64_t stat(const char* key) const {
        const auto doc = parse_json(exchange(gateway->admin_port(), admin_request("/api/stats")).body);
        return doc[key].GetUint64();
    }
    // The access record of request `rid` (status, error); written just after the exchange ends: polled, bounded.
    std::pair<unsigned, std::string> record(const std::string& rid) const {
        const auto deadline = std::chrono::steady_clock::now() + default_timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            const auto doc = parse_json(exchange(gateway->admin_port(), admin_request("/api/requests")).body);
            for (const auto& r : doc["requests"].GetArray())
                if (r["rid"].GetString() == rid) return {r["status"].GetUint(), r["error"].GetString()};
            std::this_thread::sleep_for(20ms);  // a polling interval, not a synchronisation
        }
        ADD_FAILURE() << "no access record for " << rid;
        return {};
    }
    // crudcast's own JSON answer, then the connection closed.
    static void expect_answer_and_close(Client& client, unsigned status, const char* error, const std::string& detail) {
        const auto res = client.read_response();
        EXPECT_EQ(res.status, status) << res.body;
        const auto doc = parse_json(res.body);
        ASSERT_TRUE(doc.IsObject() && doc.HasMember("error") && doc.HasMember("detail")) << res.body;
        EXPECT_STREQ(doc["error"].GetString(), error);
        EXPECT_EQ(std::string(doc["detail"].GetString()), detail);
        EXPECT_FALSE(res.keep_alive);
        EXPECT_TRUE(client.closed_by_peer());
    }

    RawUpstream upstream;
    std::unique_ptr<gateway::Gateway> gateway;
};

// ---- chunk extensions and trailers: header bytes, held to the header limits ----

TEST_F(Body, RequestChunkExtensionsAndTrailersCountAgainstMaxHeaderBytes) {
    for (const std::size_t buffered : {std::size_t{0}, std::size_t{64 * 1024}}) {  // streamed, read whole first
        SCOPED_TRACE("client-body-buffer-bytes " + std::to_string(buffered));
        start([&](config::Config& c) {
            c.max_header_bytes = 1024;
            c.client_body_buffer_bytes = buffered;
        });
        const std::size_t before = upstream.request_count();
        const std::string detail = "request chunk extensions or trailers exceed max-header-bytes (1024 bytes)";
        {  // an extension of 1000 bytes is within the limit: the body goes through
            Client client(port());
            const auto res = client.roundtrip(chunked_post("rid-ext-ok") + "5;e=" + std::string(996, 'x') +
                                              "\r\nhello\r\n0\r\n\r\n");
            EXPECT_EQ(res.status, 200u);
        }
        const auto rid = [&](const char* name) { return name + std::to_string(buffered); };
        {
            Client client(port());
            client.send(chunked_post(rid("rid-ext")) + "5;e=" + std::string(2000, 'x') + "\r\nhello\r\n0\r\n\r\n");
            expect_answer_and_close(client, 431, "header_too_large", detail);
            EXPECT_EQ(record(rid("rid-ext")), std::make_pair(431u, detail));
        }
        {  // 150 trailer lines of 10 bytes: 1500 bytes
            Client client(port());
            client.send(chunked_post(rid("rid-trailers")) + "5\r\nhello\r\n0\r\n" + trailer_lines(150) + "\r\n");
            expect_answer_and_close(client, 431, "header_too_large", detail);
            EXPECT_EQ(record(rid("rid-trailers")), std::make_pair(431u, detail));
        }
        EXPECT_EQ(upstream.request_count(), before + 1) << "only the body within the limit arrived whole";
    }
}

// The limits hold memory too: a 1 MB chunk extension or 100k trailer lines are refused once the
// bounded read buffer is full, not collected (in a crudcast process of its own, to read its peak RSS).
TEST_F(Body, AHugeChunkExtensionOrTrailerSectionDoesNotGrowMemory) {
    const auto crudcast_port = free_port();
    ChildProcess crudcast(CRUDCAST_BINARY, {"--listen", "127.0.0.1:" + std::to_string(crudcast_port), "--upstream",
                                            "http://127.0.0.1:" + std::to_string(upstream.port()), "--admin-listen",
                                            "off", "--threads", "1", "--log-level", "info"});
    ASSERT_TRUE(crudcast.wait_for_stderr("crudcast started")) << crudcast.stderr_text();
    ASSERT_EQ(exchange(crudcast_port, chunked_post("rid-warm") + "5\r\nhello\r\n0\r\n\r\n").status, 200u);
    const auto baseline = crudcast.memory().hwm_kib;
    const std::string huge_extension = "5;e=" + std::string(1024 * 1024, 'x') + "\r\nhello\r\n0\r\n\r\n";
    const std::string many_trailers = "5\r\nhello\r\n0\r\n" + trailer_lines(100'000) + "\r\n";
    for (const auto& [rid, body] :
         {std::pair{"rid-huge-ext", &huge_extension}, {"rid-many-trailers", &many_trailers}}) {
        SCOPED_TRACE(rid);
        Client client(crudcast_port);
        client.socket().send_all(chunked_post(rid) + *body);  // may fail part-way: crudcast stops reading
        const auto res = client.read_response();
        EXPECT_EQ(res.status, 431u) << res.body;
        EXPECT_TRUE(client.closed_by_peer());
        ASSERT_TRUE(crudcast.wait_for_stderr(std::string("rid=") + rid));
    }
    const auto grown = crudcast.memory().hwm_kib - baseline;
    EXPECT_LT(grown, 512u) << "peak RSS grew by " << grown << " KiB";
}

TEST_F(Body, UpstreamChunkExtensionsOrTrailersOverTheResponseHeadLimitAre502) {
    const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
    upstream.set_handler([&](const RecordedRequest& r) {
        UpstreamReply reply;
        if (r.target == "/ext") {
            reply.bytes = head + "5;e=" + std::string(1024 * 1024, 'x') + "\r\nhello\r\n0\r\n\r\n";
        } else if (r.target == "/trailers") {
            reply.bytes = head + "0\r\n" + trailer_lines(100'000) + "\r\n";
        } else if (r.target == "/small-ext") {  // within the limit: relayed (the extension is not)
            reply.bytes = head + "5;e=" + std::string(1000, 'x') + "\r\nhello\r\n0\r\nx-t: 1\r\n\r\n";
        } else {
            reply.bytes = head + "5\r\nhello\r\n5;e=" + std::string(100'000, 'x') + "\r\nworld\r\n0\r\n\r\n";
        }
        reply.close_after = true;
        return reply;
    });
    start();
    const auto ok = exchange(port(), get_request("/small-ext"));
    EXPECT_EQ(ok.status, 200u);
    EXPECT_EQ(ok.body, "hello");
    const std::string detail = "upstream response's chunk extensions or trailers exceed 65536 bytes";
    for (const char* target : {"/ext", "/trailers"}) {
        SCOPED_TRACE(target);
        const std::string rid = std::string("rid-up") + target;
        Client client(port());
        const auto res = client.roundtrip(get_request(target, "X-Request-ID: " + rid + "\r\n"));
        EXPECT_EQ(res.status, 502u) << res.body;
        EXPECT_EQ(std::string(parse_json(res.body)["detail"].GetString()), detail);
        EXPECT_EQ(record(rid), std::make_pair(502u, detail));
    }
    EXPECT_EQ(stat("bad_gateway"), 2u);
    // Past the first chunk the head is already with the client: the response breaks off.
    Client client(port());
    client.send(get_request("/mid", "X-Request-ID: rid-mid\r\n"));
    EXPECT_THROW(client.read_response(), std::runtime_error);
    const auto [status, error] = record("rid-mid");
    EXPECT_EQ(status, 200u);
    EXPECT_EQ(error, "upstream failed mid-response: header limit exceeded");
}

// ---- client-body-timeout ----

TEST_F(Body, ABodyStalledPastClientBodyTimeoutIs408AndItsUpstreamConnectionIsDropped) {
    for (const std::size_t buffered : {std::size_t{0}, std::size_t{64 * 1024}}) {
        SCOPED_TRACE("client-body-buffer-bytes " + std::to_string(buffered));
        RawUpstream fresh;
        upstream.set_handler({});
        auto cfg = test_config(fresh.port());
        cfg.threads = 1;  // and no admin listener: its readiness probe would be an upstream connection too
        cfg.client_body_timeout = 300ms;
        cfg.idle_timeout = 30s;  // not the one that applies
        cfg.client_body_buffer_bytes = buffered;
        gateway = start_gateway(std::move(cfg));
        const std::string rid = "rid-stall" + std::to_string(buffered);
        const std::string detail = "request body stalled past client-body-timeout (300ms)";
        const auto started = std::chrono::steady_clock::now();
        Client client(port());
        client.send(sized_post("/api/things", rid, 100) + "0123456789");
        expect_answer_and_close(client, 408, "request_timeout", detail);
        EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
        // Streamed, the upstream had the head and part of the body: that connection is never used again.
        // Read whole first, the upstream never saw the request.
        EXPECT_EQ(fresh.connections(), buffered == 0 ? 1u : 0u);
        EXPECT_EQ(exchange(port(), get_request("/after")).status, 200u);
        ASSERT_TRUE(fresh.wait_for_requests(1));
        EXPECT_EQ(fresh.request(0).target, "/after");
        EXPECT_EQ(fresh.request(0).connection, buffered == 0 ? 2u : 1u);
        gateway.reset();
    }
}

}  // namespace
