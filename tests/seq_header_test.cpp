// seq_header_test.cpp: X-Crudcast-Seq over real sockets: an in-process crudcast in front of a
// scriptable upstream, a WebSocket subscriber that sees the events' seq, and plain HTTP clients
// that read the header off proxied responses.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <charconv>
#include <cstdint>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include "testkit.hpp"
#include "tests/ws_subscriber.hpp"

namespace crudcast {
namespace {

using namespace testkit;
namespace beast = boost::beast;
using tcp = boost::asio::ip::tcp;

std::string json_response(int status, std::string_view reason, std::string_view body, HeaderList extra = {}) {
    extra.items.emplace(extra.items.begin(), "Content-Type", "application/json");
    return http_response(status, reason, extra, body);
}

std::string write_request(std::string_view method, std::string_view target, std::string_view body,
                          std::string_view extra_headers = "") {
    return std::string(method) + " " + std::string(target) +
           " HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n" + std::string(extra_headers) +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

// One chunk of a chunked body: its size line, its bytes, CRLF.
std::string chunk(std::string_view data) {
    char size[17];
    const auto end = std::to_chars(size, size + sizeof size, data.size(), 16).ptr;
    return std::string(size, end) + "\r\n" + std::string(data) + "\r\n";
}

// The one X-Crudcast-Seq of a response, as a number; fails the test when there is not exactly one.
std::uint64_t seq_of(const Response& res) {
    EXPECT_EQ(res.headers.count("X-Crudcast-Seq"), 1u) << res.head;
    const auto value = res.headers.get("X-Crudcast-Seq");
    return value.empty() ? 0 : std::stoull(value);
}

class SeqHeader : public ::testing::Test {
protected:
    // `handler` answers what the test is about; any other request gets a REST-like answer (POST:
    // 201 with the body, so it makes an event; anything else: 200 with a JSON list).
    void start(RawUpstream::Handler handler = {}, std::function<void(config::Config&)> tweak = {}) {
        upstream_ = std::make_unique<RawUpstream>([handler](const RecordedRequest& r) {
            if (handler) {
                auto reply = handler(r);
                if (!reply.bytes.empty() || reply.kind != UpstreamReply::Kind::respond) return reply;
            }
            UpstreamReply reply;
            reply.bytes = r.method == "POST" ? json_response(201, "Created", r.body.empty() ? "{\"id\":1}" : r.body)
                                             : json_response(200, "OK", R"([{"id":1}])");
            return reply;
        });
        auto cfg = test_config(upstream_->port());
        if (tweak) tweak(cfg);
        gateway_ = start_gateway(cfg);
        port_ = gateway_->port();
    }
    Response send(std::string_view method, std::string_view target, std::string_view body = "") {
        return exchange(port_, write_request(method, target, body));
    }

    ~SeqHeader() override { rest_.open(); }  // an upstream still holding a body back lets go

    Gate rest_;  // the upstream holds the rest of a body back until the test opens this
    std::unique_ptr<RawUpstream> upstream_;
    std::unique_ptr<gateway::Gateway> gateway_;
    std::uint16_t port_ = 0;
};

TEST_F(SeqHeader, AGetCarriesThePositionAndAWriteTheSeqItsSubscribersReceive) {
    start();
    Subscriber sub(port_, "/ws");
    const auto before = seq_of(send("GET", "/api/authors"));
    EXPECT_GT(before, 1'600'000'000'000'000u);  // numbered from the start time in microseconds

    const auto created = send("POST", "/api/authors", R"({"id":7,"name":"Ada"})");
    ASSERT_EQ(created.status, 201u);
    const auto event = sub.next_seq();
    EXPECT_EQ(seq_of(created), event);
    EXPECT_EQ(event, before + 1);  // the GET had the position then: the last seq published

    EXPECT_EQ(seq_of(send("GET", "/api/authors")), event);
    const auto second = send("PUT", "/api/authors/7", R"({"id":7,"name":"Ada L."})");
    EXPECT_EQ(seq_of(second), sub.next_seq());
    EXPECT_EQ(seq_of(second), event + 1);
    EXPECT_EQ(seq_of(send("GET", "/api/authors")), event + 1);
}

TEST_F(SeqHeader, AWriteThatMakesNoEventCarriesThePosition) {
    start([](const RecordedRequest& r) {
        UpstreamReply reply;
        if (r.target.starts_with("/missing")) reply.bytes = json_response(404, "Not Found", R"({"error":"no"})");
        if (r.target.starts_with("/text"))
            reply.bytes = http_response(200, "OK", {{{"Content-Type", "text/plain"}}}, "plain words");
        return reply;
    });
    Subscriber sub(port_, "/ws");
    const auto made = seq_of(send("POST", "/api/authors", R"({"id":1})"));
    EXPECT_EQ(made, sub.next_seq());
    const auto missing = send("POST", "/missing/authors", R"({"id":2})");
    EXPECT_EQ(missing.status, 404u);
    EXPECT_EQ(seq_of(missing), made);
    const auto text = send("POST", "/text/authors", R"({"id":3})");
    EXPECT_EQ(text.body, "plain words");
    EXPECT_EQ(seq_of(text), made);
    // Had either of them made an event, the marker's would not be the next seq.
    const auto marker = seq_of(send("POST", "/api/markers", R"({"id":4})"));
    EXPECT_EQ(marker, sub.next_seq());
    EXPECT_EQ(marker, made + 1);
}

// The chunks of an event's body arrive apart (the upstream holds the last ones back); the head,
// held until the body is complete, still says the event's seq.
TEST_F(SeqHeader, AChunkedEventResponseCarriesTheEventsSeqInItsHead) {
    start([this](const RecordedRequest& r) {
        UpstreamReply reply;
        if (r.target != "/api/chunked") return reply;
        reply.bytes =
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            "7\r\n{\"id\":9\r\n";
        reply.then = [this](Socket& s) {
            if (!rest_.wait()) return;
            s.send_all("c\r\n,\"name\":\"Bo\"\r\n");
            s.send_all("1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n");
        };
        return reply;
    });
    Subscriber sub(port_, "/ws");
    const auto before = seq_of(send("GET", "/api/authors"));
    Client client(port_);
    client.send(write_request("POST", "/api/chunked", R"({"id":9,"name":"Bo"})"));
    ASSERT_TRUE(upstream_->wait_for_requests(2));
    // Held while the body is incomplete: nothing of the response has reached the client yet.
    EXPECT_EQ(client.socket().fill(200ms), Socket::Status::timeout) << client.socket().buffered();
    rest_.open();
    const auto res = client.read_response();
    EXPECT_EQ(res.status, 201u);
    EXPECT_TRUE(res.chunked);
    EXPECT_EQ(res.body, R"({"id":9,"name":"Bo"})");
    EXPECT_FALSE(res.headers.has("X-Trailer"));  // trailers are not forwarded, nor moved into the head
    const auto event = sub.next_seq();
    EXPECT_EQ(seq_of(res), event);
    EXPECT_EQ(event, before + 1);
}

// Larger than max-event-bytes: no event can come of it, so it streams (its first bytes reach the
// client while the upstream still holds the rest back) and carries the position.
TEST_F(SeqHeader, AResponseLargerThanMaxEventBytesStreamsAndCarriesThePosition) {
    const std::string first(3000, 'a');
    start(
        [this, first](const RecordedRequest& r) {
            UpstreamReply reply;
            if (r.target != "/api/big") return reply;
            reply.bytes =
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                chunk("{\"id\":1,\"blob\":\"" + first);
            reply.then = [this](Socket& s) {
                if (rest_.wait()) s.send_all("2\r\n\"}\r\n0\r\n\r\n");
            };
            return reply;
        },
        [](config::Config& c) { c.max_event_bytes = 1024; });
    Subscriber sub(port_, "/ws");
    const auto made = seq_of(send("POST", "/api/authors", R"({"id":1})"));
    ASSERT_EQ(made, sub.next_seq());
    Client client(port_);
    client.send(write_request("POST", "/api/big", R"({"id":1})"));
    const auto head = client.socket().read_until("\r\n\r\n", default_timeout);
    ASSERT_TRUE(head) << "the head did not arrive while the upstream held the rest of the body";
    EXPECT_NE(head->find("\r\nX-Crudcast-Seq: " + std::to_string(made) + "\r\n"), std::string::npos) << *head;
    const auto body_start = client.socket().read_until(first.substr(0, 100), default_timeout);
    EXPECT_TRUE(body_start) << "body bytes did not arrive while the upstream held the rest";
    rest_.open();
    const auto end = client.socket().read_until("0\r\n\r\n", default_timeout);
    ASSERT_TRUE(end);
    // No event came of it: the next one is the marker's, right after `made`.
    EXPECT_EQ(seq_of(send("POST", "/api/markers", R"({"id":2})")), made + 1);
    EXPECT_EQ(sub.next_seq(), made + 1);
}

TEST_F(SeqHeader, HeadNoContentAndNotModifiedCarryIt) {
    start([](const RecordedRequest& r) {
        UpstreamReply reply;
        if (r.method == "HEAD")
            reply.bytes = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n";
        if (r.method == "DELETE") reply.bytes = "HTTP/1.1 204 No Content\r\n\r\n";
        if (r.target == "/api/cached") reply.bytes = "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n";
        return reply;
    });
    Subscriber sub(port_, "/ws");
    const auto made = seq_of(send("POST", "/api/authors", R"({"id":1})"));
    EXPECT_EQ(made, sub.next_seq());

    ReadOptions head_options;
    head_options.head_request = true;
    const auto head = exchange(port_, "HEAD /api/authors HTTP/1.1\r\nHost: test\r\n\r\n", head_options);
    EXPECT_EQ(head.status, 200u);
    EXPECT_EQ(seq_of(head), made);

    const auto cached = exchange(port_, get_request("/api/cached", "If-None-Match: \"v1\"\r\n"));
    EXPECT_EQ(cached.status, 304u);
    EXPECT_EQ(seq_of(cached), made);

    // A 204 to a DELETE makes an event: the header is its seq.
    const auto deleted = send("DELETE", "/api/authors/1");
    EXPECT_EQ(deleted.status, 204u);
    EXPECT_EQ(seq_of(deleted), sub.next_seq());
    EXPECT_EQ(seq_of(deleted), made + 1);
}

TEST_F(SeqHeader, CrossOriginResponsesExposeItAndKeepTheirOwnList) {
    start([](const RecordedRequest& r) {
        UpstreamReply reply;
        if (r.target == "/api/cors")
            reply.bytes = json_response(200, "OK", "[]", {{{"Access-Control-Allow-Origin", "https://app.example"}}});
        if (r.target == "/api/cors-list")
            reply.bytes = json_response(
                200, "OK", "[]",
                {{{"Access-Control-Allow-Origin", "*"}, {"Access-Control-Expose-Headers", "X-Total-Count, ETag"}}});
        if (r.target == "/api/cors-named")
            reply.bytes = json_response(
                200, "OK", "[]",
                {{{"Access-Control-Allow-Origin", "*"}, {"Access-Control-Expose-Headers", "x-crudcast-seq"}}});
        return reply;
    });
    const auto plain = send("GET", "/api/authors");
    EXPECT_FALSE(plain.headers.has("Access-Control-Expose-Headers"));
    seq_of(plain);
    const auto cors = send("GET", "/api/cors");
    EXPECT_EQ(cors.headers.all("Access-Control-Expose-Headers"), std::vector<std::string>{"X-Crudcast-Seq"});
    seq_of(cors);
    const auto listed = send("GET", "/api/cors-list");
    EXPECT_EQ(listed.headers.all("Access-Control-Expose-Headers"),
              std::vector<std::string>{"X-Total-Count, ETag, X-Crudcast-Seq"});
    const auto named = send("GET", "/api/cors-named");
    EXPECT_EQ(named.headers.all("Access-Control-Expose-Headers"), std::vector<std::string>{"x-crudcast-seq"});
}

TEST_F(SeqHeader, TheUpstreamsOwnSeqHeaderIsReplaced) {
    start([](const RecordedRequest& r) {
        UpstreamReply reply;
        if (r.target == "/api/claims")
            reply.bytes = json_response(200, "OK", "[]", {{{"X-Crudcast-Seq", "1"}, {"x-crudcast-seq", "2"}}});
        if (r.target == "/api/claims-write")
            reply.bytes = json_response(201, "Created", R"({"id":5})", {{{"X-Crudcast-Seq", "3"}}});
        return reply;
    });
    Subscriber sub(port_, "/ws");
    const auto position = seq_of(send("GET", "/api/authors"));
    EXPECT_EQ(seq_of(send("GET", "/api/claims")), position);
    const auto write = send("POST", "/api/claims-write", R"({"id":5})");
    EXPECT_EQ(seq_of(write), sub.next_seq());
    EXPECT_EQ(seq_of(write), position + 1);
}

// An upgrade to something other than the ws path goes to the upstream on its own connection; when
// the upstream declines it, its answer is a proxied response like any other.
TEST_F(SeqHeader, ADeclinedUpgradeCarriesThePosition) {
    start([](const RecordedRequest& r) {
        UpstreamReply reply;
        if (r.headers.has("Upgrade"))
            reply.bytes = json_response(200, "OK", "[]", {{{"X-Crudcast-Seq", "1"}, {"Connection", "close"}}});
        return reply;
    });
    const auto position = seq_of(send("GET", "/api/authors"));
    const auto declined = exchange(
        port_,
        get_request("/api/authors", "Connection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"));
    EXPECT_EQ(declined.status, 200u);
    EXPECT_EQ(seq_of(declined), position);
}

TEST_F(SeqHeader, CrudcastsOwnAnswersHaveNone) {
    start();
    const auto ok = send("GET", "/api/authors");
    seq_of(ok);
    // 400: a target crudcast refuses (absolute-form naming another host).
    const auto refused = exchange(port_, "GET http://elsewhere.example/x HTTP/1.1\r\nHost: test\r\n\r\n");
    EXPECT_EQ(refused.status, 400u);
    EXPECT_FALSE(refused.headers.has("X-Crudcast-Seq")) << refused.head;
    // 502: the upstream is gone.
    upstream_.reset();
    const auto gone = send("GET", "/api/authors");
    EXPECT_EQ(gone.status, 502u);
    EXPECT_FALSE(gone.headers.has("X-Crudcast-Seq")) << gone.head;
}

}  // namespace
}  // namespace crudcast
