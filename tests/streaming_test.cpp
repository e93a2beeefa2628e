// streaming_test.cpp: bodies of any size cross crudcast in bounded memory. The real binary sits
// between a client and an upstream that both stream and checksum (nothing is buffered whole);
// each transfer must arrive intact and crudcast's peak RSS (VmHWM) must stay near its start.
// Size: env CRUDCAST_STREAM_BYTES (e.g. 64m, 1g; default 1 GiB). Also: Expect: 100-continue.
#include <gtest/gtest.h>

#include <cstdlib>
#include <future>
#include <sstream>

#include "tests/testkit.hpp"

namespace {

using namespace crudcast;
using namespace crudcast::testkit;

constexpr std::size_t block = 256 * 1024;

std::uint64_t stream_bytes() {
    const char* env = std::getenv("CRUDCAST_STREAM_BYTES");
    return env ? config::parse_size(env) : 1024ull * 1024 * 1024;
}

std::string hex(std::uint64_t n) {
    std::ostringstream out;
    out << std::hex << n;
    return out.str();
}

std::string upload_summary(std::uint64_t bytes, std::uint64_t checksum) {
    return "{\"bytes\":" + std::to_string(bytes) + ",\"checksum\":\"" + hex(checksum) + "\"}";
}

// Writes `total` pattern bytes through `send`, optionally chunk-framed; returns their checksum.
template <class Send>
std::uint64_t send_pattern(std::uint64_t total, bool chunked, Send&& send) {
    std::string buf(block, '\0');
    Checksum sum;
    for (std::uint64_t off = 0; off < total;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(block, total - off));
        fill_pattern(off, buf.data(), n);
        const std::string_view data(buf.data(), n);
        sum.update(data);
        if (chunked && !send(hex(n) + "\r\n")) break;
        if (!send(data)) break;
        if (chunked && !send("\r\n")) break;
        off += n;
    }
    if (chunked) send("0\r\n\r\n");
    return sum.value();
}

class Streaming : public ::testing::Test {
protected:
    void SetUp() override {
        upstream.keep_bodies(false);
        upstream.set_handler([this](const RecordedRequest& r) { return answer(r); });
        port = free_port();
        const char* asan = std::getenv("ASAN_OPTIONS");
        crudcast = std::make_unique<ChildProcess>(
            CRUDCAST_BINARY,
            std::vector<std::string>{"--listen", "127.0.0.1:" + std::to_string(port), "--upstream",
                                     "http://127.0.0.1:" + std::to_string(upstream.port()), "--admin-listen", "off",
                                     "--threads", "2", "--max-body-bytes", "0", "--upstream-timeout", "60s",
                                     "--idle-timeout", "60s", "--log-level", "info"},
            // Under ASan, a small quarantine keeps freed-but-held memory out of the RSS being bounded.
            std::map<std::string, std::string>{
                {"ASAN_OPTIONS", std::string(asan ? asan : "") + ":quarantine_size_mb=8"}});
        ASSERT_TRUE(crudcast->wait_for_stderr("crudcast started")) << crudcast->stderr_text();
        ASSERT_EQ(exchange(port, get_request("/warmup")).status, 200u);  // pools, buffers, threads touched
        baseline_hwm_kib = crudcast->memory().hwm_kib;
        ASSERT_GT(baseline_hwm_kib, 0u);
    }

    UpstreamReply answer(const RecordedRequest& r) {
        if (r.target == "/upload") return UpstreamReply::ok(upload_summary(r.body_size, r.body_checksum));
        if (!r.target.starts_with("/download")) return UpstreamReply::ok();
        const bool chunked = r.target.ends_with("chunked");
        UpstreamReply reply;
        reply.bytes = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n" +
                      (chunked ? std::string("Transfer-Encoding: chunked\r\n")
                               : "Content-Length: " + std::to_string(size) + "\r\n") +
                      "\r\n";
        reply.then = [this, chunked](Socket& s) {
            served.set_value(send_pattern(size, chunked, [&](std::string_view d) { return s.send_all(d); }));
        };
        return reply;
    }

    // Growth of VmHWM allowed over a transfer: 64 MiB, but at most a quarter of the body (so that
    // buffering a whole body fails with small sizes too), and at least 8 MiB.
    void expect_bounded_memory() {
        const std::uint64_t bound_kib =
            std::max<std::uint64_t>(8 * 1024, std::min<std::uint64_t>(64 * 1024, size / 4096));
        const auto m = crudcast->memory();
        EXPECT_LT(m.hwm_kib - baseline_hwm_kib, bound_kib)
            << "crudcast's peak RSS grew from " << baseline_hwm_kib << " KiB to " << m.hwm_kib << " KiB moving " << size
            << " bytes";
    }

    void upload(bool chunked) {
        Client client(port);
        client.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n" +
                    (chunked ? std::string("Transfer-Encoding: chunked\r\n")
                             : "Content-Length: " + std::to_string(size) + "\r\n") +
                    "\r\n");
        const auto sent = send_pattern(size, chunked, [&](std::string_view d) {
            client.send(d);
            return true;
        });
        ReadOptions options;
        options.timeout = 120s;
        const auto res = client.read_response(options);
        EXPECT_EQ(res.status, 200u);
        EXPECT_EQ(res.body, upload_summary(size, sent));
        ASSERT_EQ(upstream.request_count(), 2u);
        const auto seen = upstream.request(1);
        EXPECT_EQ(seen.chunked, chunked);
        EXPECT_EQ(seen.body_size, size);
        EXPECT_EQ(seen.body_checksum, sent);
        expect_bounded_memory();
    }

    void download(bool chunked) {
        auto expected = served.get_future();
        Checksum got;
        std::uint64_t count = 0;
        ReadOptions options;
        options.timeout = 120s;
        options.body_sink = [&](std::string_view d) {
            got.update(d);
            count += d.size();
        };
        Client client(port);
        const auto res = client.roundtrip(
            std::string("GET /download") + (chunked ? "?chunked" : "") + " HTTP/1.1\r\nHost: t\r\n\r\n", options);
        EXPECT_EQ(res.status, 200u);
        EXPECT_EQ(res.chunked, chunked);
        if (!chunked) {
            EXPECT_EQ(res.headers.get("Content-Length"), std::to_string(size));
        }
        EXPECT_EQ(count, size);
        ASSERT_EQ(expected.wait_for(10s), std::future_status::ready);
        EXPECT_EQ(got.value(), expected.get());
        expect_bounded_memory();
    }

    const std::uint64_t size = stream_bytes();
    std::promise<std::uint64_t> served;  // the checksum of what the upstream sent
    RawUpstream upstream;
    std::uint16_t port = 0;
    std::unique_ptr<ChildProcess> crudcast;  // stopped before the upstream
    std::uint64_t baseline_hwm_kib = 0;
};

TEST_F(Streaming, UploadWithContentLength) { upload(false); }
TEST_F(Streaming, UploadChunked) { upload(true); }
TEST_F(Streaming, DownloadWithContentLength) { download(false); }
TEST_F(Streaming, DownloadChunked) { download(true); }

TEST(ExpectContinue, CrudcastAnswers100ItselfThenForwardsTheBody) {
    RawUpstream upstream;  // never sends 100 Continue itself
    auto gw = start_gateway(test_config(upstream.port()));
    Client client(gw->port());
    client.send(
        "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
        "Expect: 100-continue\r\n\r\n");
    ReadOptions patience;
    patience.timeout = 5s;
    const auto interim = client.read_response(patience);  // before any body byte is sent
    EXPECT_EQ(interim.status, 100u);
    EXPECT_EQ(upstream.request_count(), 0u);

    client.send("hello world");
    const auto res = client.read_response();
    EXPECT_EQ(res.status, 200u);
    ASSERT_EQ(upstream.request_count(), 1u);
    const auto seen = upstream.request(0);
    EXPECT_EQ(seen.body, "hello world");
    EXPECT_FALSE(seen.headers.has("Expect")) << "the upstream would answer 100 a second time";

    // The connection stays usable, and a request without Expect gets no interim answer.
    const auto again = client.roundtrip("POST /plain HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
    EXPECT_EQ(again.status, 200u);
}

}  // namespace
