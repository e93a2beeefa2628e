// events_test.cpp: events over real sockets: an in-process crudcast in front of a scriptable
// upstream, Beast WebSocket clients subscribing at the ws path, writes made through the proxy.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <rapidjson/document.h>
#include <sys/socket.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/error.hpp>

#include "testkit.hpp"
#include "tests/hex.hpp"
#include "tests/ws_subscriber.hpp"

namespace crudcast {
namespace {

using namespace testkit;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;

std::string json_response(int status, std::string_view body, std::string_view type = "application/json") {
    HeaderList h;
    h.items.emplace_back("Content-Type", std::string(type));
    return http_response(status, status == 204 ? "No Content" : "OK", h, body);
}

// An upstream that answers like a REST API: POST -> 201 with an id, PUT/PATCH echo, DELETE 204,
// and special paths for the negative cases.
UpstreamReply rest_api(const RecordedRequest& r) {
    UpstreamReply reply;
    if (r.target.starts_with("/missing")) {
        reply.bytes = json_response(404, R"({"error":"not found"})");
    } else if (r.target.starts_with("/broken")) {
        reply.bytes = json_response(500, R"({"error":"boom"})");
    } else if (r.target.starts_with("/text")) {
        reply.bytes = json_response(200, "plain words", "text/plain");
    } else if (r.target.starts_with("/api/big")) {
        reply.bytes = json_response(200, "{\"blob\":\"" + std::string(4096, 'x') + "\"}");
    } else if (r.target.starts_with("/flarch")) {
        reply.bytes = json_response(200, R"({"value":{"id":7,"name":"Ada"},"status_code":200,"errors":null})");
    } else if (r.method == "DELETE") {
        reply.bytes = json_response(204, "");
    } else if (r.method == "POST") {
        reply.bytes = json_response(201, r.body.empty() ? "{\"id\":1}" : r.body);
    } else {
        reply.bytes = json_response(200, r.body.empty() ? R"([{"id":1},{"id":2}])" : r.body);
    }
    return reply;
}

std::string write_request(std::string_view method, std::string_view target, std::string_view body) {
    return std::string(method) + " " + std::string(target) +
           " HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

class Events : public ::testing::Test {
protected:
    void start(std::function<void(config::Config&)> tweak = {}) {
        upstream_ = std::make_unique<RawUpstream>(rest_api);
        auto cfg = test_config(upstream_->port());
        if (tweak) tweak(cfg);
        gateway_ = start_gateway(cfg);
        port_ = gateway_->port();
    }
    Response send(std::string_view method, std::string_view target, std::string_view body = "") {
        return exchange(port_, write_request(method, target, body));
    }

    std::unique_ptr<RawUpstream> upstream_;
    std::unique_ptr<gateway::Gateway> gateway_;
    std::uint16_t port_ = 0;
};

TEST_F(Events, EachWriteMethodMakesOneEventWithTheContractFields) {
    start();
    Subscriber sub(port_, "/ws?topic=author");
    EXPECT_EQ(send("POST", "/api/authors", R"({"id":42,"name":"Ada"})").status, 201u);
    EXPECT_EQ(send("PUT", "/api/authors/42", R"({"id":42,"name":"Ada L."})").status, 200u);
    EXPECT_EQ(send("PATCH", "/api/v1/authors/42", R"({"born":1815})").status, 200u);
    EXPECT_EQ(send("DELETE", "/api/authors/42").status, 204u);

    const auto raw = sub.next_raw();
    EXPECT_EQ(raw.find("{\"ts\":"), 0u) << raw;
    const auto order = {raw.find("\"ts\""),   raw.find("\"model\""),   raw.find("\"method\""), raw.find("\"id\""),
                        raw.find("\"many\""), raw.find("\"payload\""), raw.find("\"seq\"")};
    EXPECT_TRUE(std::is_sorted(order.begin(), order.end())) << raw;
    rapidjson::Document post;
    post.Parse(raw.c_str());
    EXPECT_STREQ(post["model"].GetString(), "author");
    EXPECT_STREQ(post["method"].GetString(), "POST");
    EXPECT_EQ(post["id"].GetInt(), 42);  // from the payload: POST /authors has no id in the URL
    EXPECT_FALSE(post["many"].GetBool());
    EXPECT_STREQ(post["payload"]["name"].GetString(), "Ada");
    EXPECT_GT(post["ts"].GetInt64(), 1'600'000'000'000);

    auto put = sub.next();
    EXPECT_STREQ(put["method"].GetString(), "PUT");
    EXPECT_EQ(put["id"].GetInt(), 42);
    auto patch = sub.next();
    EXPECT_STREQ(patch["method"].GetString(), "PATCH");
    EXPECT_EQ(patch["id"].GetInt(), 42);
    auto del = sub.next();
    EXPECT_STREQ(del["method"].GetString(), "DELETE");
    EXPECT_TRUE(del["payload"].IsNull());
    EXPECT_EQ(del["id"].GetInt(), 42);
    EXPECT_EQ(put["seq"].GetUint64(), post["seq"].GetUint64() + 1);
    EXPECT_EQ(del["seq"].GetUint64(), post["seq"].GetUint64() + 3);
}

TEST_F(Events, GetPublishesOnlyWhenConfigured) {
    start([](config::Config& c) { c.publish_methods = {"GET", "POST"}; });
    Subscriber sub(port_, "/ws");
    send("GET", "/api/books");
    auto e = sub.next();
    EXPECT_STREQ(e["method"].GetString(), "GET");
    EXPECT_STREQ(e["model"].GetString(), "book");
    EXPECT_TRUE(e["many"].GetBool());
    EXPECT_TRUE(e["id"].IsNull());
}

TEST_F(Events, NoEventForFailuresNonJsonOversizeOrReads) {
    start([](config::Config& c) { c.max_event_bytes = 1024; });
    Subscriber sub(port_, "/ws");
    EXPECT_EQ(send("POST", "/missing/authors").status, 404u);
    EXPECT_EQ(send("POST", "/broken/authors").status, 500u);
    EXPECT_EQ(send("POST", "/text/authors").status, 200u);
    auto big = send("POST", "/api/big");
    EXPECT_EQ(big.status, 200u);
    EXPECT_GT(big.body.size(), 4096u);  // forwarded untouched all the same
    EXPECT_EQ(send("GET", "/api/authors").status, 200u);
    // A marker event: had any of the above made an event, it would arrive first.
    send("POST", "/api/markers", R"({"id":1})");
    auto e = sub.next();
    EXPECT_STREQ(e["model"].GetString(), "marker");
}

TEST_F(Events, TopicsFilterAndAllIsExactlyOnce) {
    start();
    Subscriber authors(port_, "/ws?topic=author");
    Subscriber both(port_, "/ws?topic=Author,BOOK");
    Subscriber repeated(port_, "/ws?topic=book&topic=author");
    Subscriber all_and_author(port_, "/ws?topic=author&topic=all");
    Subscriber all(port_, "/ws");
    send("POST", "/api/books", R"({"id":1})");
    send("POST", "/api/authors", R"({"id":2})");
    send("POST", "/api/publishers", R"({"id":3})");
    send("POST", "/api/authors", R"({"id":4})");

    EXPECT_EQ(authors.next()["id"].GetInt(), 2);
    EXPECT_EQ(authors.next()["id"].GetInt(), 4);
    for (auto* s : {&both, &repeated}) {
        EXPECT_EQ(s->next()["id"].GetInt(), 1);
        EXPECT_EQ(s->next()["id"].GetInt(), 2);
        EXPECT_EQ(s->next()["id"].GetInt(), 4);
    }
    for (auto* s : {&all_and_author, &all}) {
        for (int id : {1, 2, 3, 4}) EXPECT_EQ(s->next()["id"].GetInt(), id);  // once each, in order
    }
    // A final marker proves nothing else (no duplicate) was queued before it.
    send("POST", "/api/authors", R"({"id":99})");
    EXPECT_EQ(authors.next()["id"].GetInt(), 99);
    EXPECT_EQ(all_and_author.next()["id"].GetInt(), 99);
    EXPECT_EQ(all.next()["id"].GetInt(), 99);
}

TEST_F(Events, FlarchitectEnvelopeWithValuePointer) {
    start([](config::Config& c) { c.payload_pointer = "/value"; });
    Subscriber sub(port_, "/ws?topic=flarch");
    send("POST", "/flarch");
    auto e = sub.next();
    EXPECT_STREQ(e["payload"]["name"].GetString(), "Ada");
    EXPECT_EQ(e["id"].GetInt(), 7);
    EXPECT_FALSE(e["payload"].HasMember("status_code"));
}

TEST_F(Events, ConcurrentWritersEverySubscriberSeesTheSameGapFreeOrder) {
    start([](config::Config& c) { c.threads = 2; });
    std::vector<std::unique_ptr<Subscriber>> subs;
    for (int i = 0; i < 4; ++i) subs.push_back(std::make_unique<Subscriber>(port_, "/ws"));  // both threads
    constexpr int writers = 8, per_writer = 50;
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
        threads.emplace_back([this, w] {
            Client client(port_);
            for (int i = 0; i < per_writer; ++i) {
                const auto body = "{\"id\":" + std::to_string(w * 1000 + i) + "}";
                auto r = client.roundtrip(write_request("POST", "/api/items", body));
                ASSERT_EQ(r.status, 201u);
            }
        });
    }
    for (auto& t : threads) t.join();
    std::vector<std::vector<std::pair<std::uint64_t, int>>> seen(subs.size());
    for (std::size_t s = 0; s < subs.size(); ++s) {
        for (int i = 0; i < writers * per_writer; ++i) {
            auto e = subs[s]->next();
            seen[s].emplace_back(e["seq"].GetUint64(), e["id"].GetInt());
        }
        for (std::size_t i = 1; i < seen[s].size(); ++i) ASSERT_EQ(seen[s][i].first, seen[s][i - 1].first + 1);
    }
    for (std::size_t s = 1; s < subs.size(); ++s) EXPECT_EQ(seen[s], seen[0]);
    // Each writer's own events keep their order too.
    std::map<int, int> last;
    for (auto [seq, id] : seen[0]) {
        const int w = id / 1000;
        if (last.count(w)) {
            EXPECT_GT(id, last[w]);
        }
        last[w] = id;
    }
}

TEST_F(Events, ASubscriberThatNeverReadsIsClosedWith1013WhileOthersGetEverything) {
    start([](config::Config& c) {
        c.ws_max_queue_messages = 8;
        c.ws_max_queue_bytes = 1024 * 1024;
        c.ws_close_timeout = std::chrono::minutes(2);  // the close frame waits until the end is read
    });
    Subscriber slow(port_, "/ws", 4096);  // tiny receive buffer, never read until the end
    Subscriber fast(port_, "/ws");
    const std::string payload = "{\"id\":1,\"blob\":\"" + std::string(60 * 1024, 'y') + "\"}";
    constexpr int events = 200;
    std::atomic<int> fast_got{0};
    std::thread reader([&] {
        for (int i = 0; i < events; ++i) {
            if (std::string_view(fast.next()["model"].GetString()) == "blob") ++fast_got;
        }
    });
    for (int i = 0; i < events; ++i) send("PUT", "/api/blobs/1", payload);
    reader.join();
    EXPECT_EQ(fast_got.load(), events);
    // Now drain the slow one: some events, then a close frame with 1013.
    int received = 0;
    beast::error_code ec;
    for (;;) {
        beast::flat_buffer buffer;
        slow.read(buffer, ec);
        if (ec) break;
        ++received;
    }
    EXPECT_EQ(ec, websocket::error::closed) << ec.message();
    EXPECT_EQ(slow.close_code(), 1013);
    EXPECT_LT(received, events);
}

TEST_F(Events, ATopicSubscriberIsJudgedByTheBacklogOfItsOwnTopicsOnly) {
    start([](config::Config& c) {
        c.ws_max_queue_messages = 8;
        c.ws_max_queue_bytes = 1024 * 1024;
        c.ws_close_timeout = std::chrono::minutes(2);  // the close frame waits until the end is read
    });
    Subscriber slow_blobs(port_, "/ws?topic=blob", 4096);  // never read until the end: closed
    Subscriber idle_authors(port_, "/ws?topic=author");    // not read until the end, but few events
    Subscriber fast(port_, "/ws");
    const std::string payload = "{\"id\":1,\"blob\":\"" + std::string(60 * 1024, 'y') + "\"}";
    constexpr int blobs = 200;
    std::atomic<int> fast_got{0};
    std::thread reader([&] {
        for (int i = 0; i < blobs + 3; ++i) {
            fast.next();
            ++fast_got;
        }
    });
    for (int i = 0; i < blobs; ++i) {
        send("PUT", "/api/blobs/1", payload);
        if (i % 70 == 0) send("POST", "/api/authors", R"({"id":5,"name":"Ada"})");  // 3 author events
    }
    reader.join();
    EXPECT_EQ(fast_got.load(), blobs + 3);
    // 200 blob events went past the author subscriber: they are not its backlog.
    for (int i = 0; i < 3; ++i) EXPECT_STREQ(idle_authors.next()["model"].GetString(), "author");
    send("POST", "/api/authors", R"({"id":6,"name":"Grace"})");
    const auto late = idle_authors.next();
    EXPECT_EQ(late["id"].GetInt(), 6);
    int received = 0;
    beast::error_code ec;
    for (;;) {
        beast::flat_buffer buffer;
        slow_blobs.read(buffer, ec);
        if (ec) break;
        ++received;
    }
    EXPECT_EQ(ec, websocket::error::closed) << ec.message();
    EXPECT_EQ(slow_blobs.close_code(), 1013);
    EXPECT_LT(received, blobs);
}

TEST_F(Events, AStuckTopicSubscriberCannotHoldOtherTopicsInMemoryBeyondTheByteLimit) {
    start([](config::Config& c) {
        c.threads = 1;  // both subscribers share one thread's log
        c.ws_max_queue_messages = 100000;
        c.ws_max_queue_bytes = 12 * 1024 * 1024;
        c.ws_close_timeout = std::chrono::minutes(2);  // the close frame waits until the end is read
    });
    // 10 MB of its own topic fills the kernel's buffers (4 MiB at most on the sending side) and
    // leaves a write stuck, yet its own backlog stays under 12 MiB; 13 MB of another topic then
    // passes while the log must keep it for this subscriber.
    Subscriber stuck(port_, "/ws?topic=blob", 4096);
    Subscriber fast(port_, "/ws");
    const std::string payload = "{\"id\":1,\"blob\":\"" + std::string(60 * 1024, 'y') + "\"}";
    constexpr int blobs = 170, authors = 220;
    std::thread reader([&] {
        for (int i = 0; i < blobs + authors; ++i) fast.next_raw();
    });
    for (int i = 0; i < blobs; ++i) send("PUT", "/api/blobs/1", payload);
    for (int i = 0; i < authors; ++i) send("PUT", "/api/authors/1", payload);
    reader.join();
    beast::error_code ec;
    for (;;) {
        beast::flat_buffer buffer;
        stuck.read(buffer, ec);
        if (ec) break;
    }
    EXPECT_EQ(ec, websocket::error::closed) << ec.message();
    EXPECT_EQ(stuck.close_code(), 1013);
    EXPECT_EQ(stuck.close_reason(), "subscriber too slow: not reading while ws-max-queue-bytes of events went by");
}

TEST_F(Events, ASubscriberGetsTheEventOfAWriteMadeRightAfterItsHandshake) {
    // The subscription exists before the 101 is written: a client that writes as soon as its
    // handshake returns sees its own event, every time (the race shows under load, so: many times).
    start([](config::Config& c) { c.threads = 2; });
    for (int i = 0; i < 100; ++i) {
        Subscriber sub(port_, "/ws?topic=author");
        send("POST", "/api/authors", "{\"id\":" + std::to_string(i) + "}");
        ASSERT_EQ(sub.next()["id"].GetInt(), i) << "iteration " << i;
    }
}

TEST_F(Events, AThousandSubscribersAllReceiveTheEvent) {
    start();
    std::vector<std::unique_ptr<Subscriber>> subs;
    for (int i = 0; i < 1000; ++i)
        subs.push_back(std::make_unique<Subscriber>(port_, i % 2 ? "/ws" : "/ws?topic=author"));
    send("POST", "/api/authors", R"({"id":5})");
    for (auto& s : subs) ASSERT_EQ(s->next()["id"].GetInt(), 5);
}

TEST_F(Events, SubscribersLeavingDuringFanOutPassesCostNobodyElseAFrame) {
    // One thread, 300 subscribers: a pass runs in several slices, and subscribers leave while
    // passes are under way; everyone who stays gets every event, in order.
    start([](config::Config& c) { c.threads = 1; });
    std::vector<std::unique_ptr<Subscriber>> subs;
    for (int i = 0; i < 300; ++i) subs.push_back(std::make_unique<Subscriber>(port_, "/ws"));
    constexpr int events = 60;
    std::thread writer([this] {
        for (int i = 0; i < events; ++i) send("POST", "/api/authors", "{\"id\":" + std::to_string(i) + "}");
    });
    for (int i = 0; i < 300; i += 3) {
        subs[i]->drop();  // gone without a close frame
    }
    writer.join();
    for (std::size_t i = 0; i < subs.size(); ++i) {
        if (i % 3 == 0) continue;
        std::int64_t last_seq = 0;
        for (int e = 0; e < events; ++e) {
            const auto doc = subs[i]->next();
            ASSERT_EQ(doc["id"].GetInt(), e) << "subscriber " << i;
            if (last_seq != 0) {
                ASSERT_EQ(doc["seq"].GetInt64(), last_seq + 1);
            }
            last_seq = doc["seq"].GetInt64();
        }
    }
}

TEST_F(Events, PlainRequestToTheWsPathGets426WithAHint) {
    start();
    auto r = exchange(port_, get_request("/ws?topic=author"));
    EXPECT_EQ(r.status, 426u);
    EXPECT_EQ(r.headers.get("Upgrade"), "websocket");
    EXPECT_NE(r.body.find("WebSocket"), std::string::npos);
    EXPECT_EQ(upstream_->request_count(), 0u);
}

TEST_F(Events, WsAllowedOriginsRefusesOtherBrowserOriginsWith403) {
    start([](config::Config& c) { c.ws_allowed_origins = {"https://app.example.com"}; });
    ReadOptions head_only;  // a 101 has no body; nor has the 403 we care about here beyond its status
    head_only.head_request = true;
    auto handshake = [this, &head_only](std::string_view origin_header) {
        return exchange(port_,
                        "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
                            std::string(origin_header) + "\r\n",
                        head_only);
    };
    const auto evil = handshake("Origin: https://evil.example\r\n");
    EXPECT_EQ(evil.status, 403u);
    EXPECT_EQ(handshake("Origin: https://APP.example.com\r\n").status, 101u);
    EXPECT_EQ(handshake("").status, 101u);  // not a browser: no Origin, not affected
    // A real client from the allowed origin receives events.
    Subscriber sub(port_, "/ws", 0, "https://app.example.com");
    send("POST", "/api/authors", R"({"id":9})");
    EXPECT_EQ(sub.next()["id"].GetInt(), 9);
    EXPECT_EQ(upstream_->request_count(), 1u);  // the handshakes never reached the upstream
}

constexpr std::string_view raw_handshake_headers =
    "Host: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

TEST_F(Events, AMalformedTopicQueryIsRefusedWith400InsteadOfWidenedToEveryTopic) {
    start();
    for (const char* target : {"/ws?topic=%zz", "/ws?topic=author%", "/ws?topic=a|b"}) {
        SCOPED_TRACE(target);
        const auto r =
            exchange(port_, "GET " + std::string(target) + " HTTP/1.1\r\n" + std::string(raw_handshake_headers));
        EXPECT_EQ(r.status, 400u);
        EXPECT_EQ(r.headers.get("Content-Type"), "application/json");
        EXPECT_NE(r.body.find(R"("error":"bad_request")"), std::string::npos) << r.body;
        EXPECT_FALSE(r.headers.get("X-Request-ID").empty());
    }
    // Percent escapes that are well formed still name topics.
    Subscriber authors(port_, "/ws?topic=%61uthor");
    send("POST", "/api/books", R"({"id":1})");
    send("POST", "/api/authors", R"({"id":2})");
    EXPECT_EQ(authors.next()["id"].GetInt(), 2);
    EXPECT_EQ(upstream_->request_count(), 2u);  // the refused handshakes never reached the upstream
}

TEST_F(Events, BadFramesAndClosesFromTheClientGetTheRightCloseFrameBack) {
    struct Row {
        const char* name;
        std::string bytes;
        unsigned close_code;
    };
    const auto close = [](unsigned code, std::string_view reason = "") {
        return ws_client_frame(
            0x88, std::string{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)} + std::string(reason));
    };
    const std::string ping = ws_client_frame(0x89, "still there?");
    const std::vector<Row> rows = {
        {"unmasked frame", std::string("\x81\x02hi", 4), 1002},
        {"frame over 64 KiB", std::string("\x82\xff\x00\x00\x00\x00\x00\x01\x00\x01\x11\x22\x33\x44", 14), 1009},
        {"ping over 125 bytes", std::string("\x89\xfe\x00\x7e\x11\x22\x33\x44", 8), 1002},
        {"reserved data opcode", ws_client_frame(0x83, ""), 1002},
        {"reserved control opcode", ws_client_frame(0x8b, ""), 1002},
        {"reserved bit (RSV1) set", ws_client_frame(0xc1, "x"), 1002},
        {"fragmented ping", ws_client_frame(0x09, ""), 1002},
        {"continuation with no message begun", ws_client_frame(0x80, "x"), 1002},
        {"text frame inside a fragmented message", ws_client_frame(0x01, "a") + ws_client_frame(0x81, "b"), 1002},
        {"text that is not UTF-8", ws_client_frame(0x81, "bad \xff"), 1007},
        {"fragmented text ending inside a character", ws_client_frame(0x01, "a") + ws_client_frame(0x80, "\xe2\x82"),
         1007},
        {"a message over 64 KiB in two fragments",
         ws_client_frame(0x02, std::string(40000, 'x')) + ws_client_frame(0x80, std::string(40000, 'x')), 1009},
        {"input after a protocol error is ignored (no pong)", ws_client_frame(0xc1, "x") + ping, 1002},
        {"close 1000", close(1000), 1000},
        {"close 4001 with a reason", close(4001, "bye"), 4001},
        {"close 1014, registered since RFC 6455", close(1014), 1014},
        {"bare close", ws_client_frame(0x88, ""), 1000},
        {"a fragmented text split inside a character, then close 1000",
         ws_client_frame(0x01, "\xe2") + ping + ws_client_frame(0x80, "\x82\xac") + close(1000), 1000},
        {"close of one byte", ws_client_frame(0x88, "\x03"), 1002},
        {"close 1005, which may not be sent", close(1005), 1002},
        {"close 999", close(999), 1002},
        {"close 1016, unassigned", close(1016), 1002},
        {"close 5000", close(5000), 1002},
        {"close reason that is not UTF-8", close(1000, "\xc0\xaf"), 1007},
    };
    start();
    for (const auto& row : rows) {
        SCOPED_TRACE(row.name);
        Socket raw = Socket::connect(port_);
        ASSERT_TRUE(raw.send_all("GET /ws HTTP/1.1\r\n" + std::string(raw_handshake_headers)));
        const auto head = raw.read_until("\r\n\r\n", default_timeout);
        ASSERT_TRUE(head.has_value());
        ASSERT_EQ(head->rfind("HTTP/1.1 101", 0), 0u) << *head;
        const auto sent_at = std::chrono::steady_clock::now();
        ASSERT_TRUE(raw.send_all(row.bytes));
        auto header = raw.read_exactly(2, default_timeout);
        ASSERT_TRUE(header.has_value());
        if (static_cast<unsigned char>((*header)[0]) == 0x8au) {  // the pong of a ping before the close
            ASSERT_TRUE(raw.read_exactly(static_cast<unsigned char>((*header)[1]), default_timeout));
            header = raw.read_exactly(2, default_timeout);
            ASSERT_TRUE(header.has_value());
        }
        EXPECT_EQ(static_cast<unsigned char>((*header)[0]), 0x88u);  // nothing was published: the close comes first
        const auto payload = raw.read_exactly(static_cast<unsigned char>((*header)[1]), default_timeout);
        ASSERT_TRUE(payload.has_value() && payload->size() >= 2);
        const unsigned code =
            static_cast<unsigned char>((*payload)[0]) << 8 | static_cast<unsigned char>((*payload)[1]);
        EXPECT_EQ(code, row.close_code);
        // Nothing follows our close, and the connection ends once it is written: when the peer
        // closed first, or when crudcast failed the connection (it sends FIN after its close).
        std::string after;
        Socket::Status status;
        while ((status = raw.fill(default_timeout)) == Socket::Status::data) {
            after += raw.buffered();
            raw.consume(raw.buffered().size());
        }
        EXPECT_EQ(crudcast::test::hex(after), "");
        EXPECT_NE(status, Socket::Status::timeout);
        EXPECT_LT(std::chrono::steady_clock::now() - sent_at, std::chrono::seconds(2))
            << "the connection waited for the close grace instead of ending once our close was written";
    }
}

TEST_F(Events, APeerThatPingsWithoutReadingIsClosedWith1008InsteadOfQueueingPongs) {
    start();
    // A small receive buffer, set before connecting (the window is scaled for it), as Subscriber's.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    Socket raw(fd);
    const int small = 4096;
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port_);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    ASSERT_TRUE(raw.send_all("GET /ws HTTP/1.1\r\n" + std::string(raw_handshake_headers)));
    ASSERT_TRUE(raw.read_until("\r\n\r\n", default_timeout).has_value());
    // 12 MB of pings, none read meanwhile: 12 MB of pongs is more than the kernel's buffers hold (at
    // most 4 MiB on crudcast's side), so pongs queue until crudcast gives up on the peer.
    const std::string ping = ws_client_frame(0x89, std::string(125, 'p'));
    std::string burst;
    for (int i = 0; i < 1000; ++i) burst += ping;
    constexpr int bursts = 96;
    for (int i = 0; i < bursts; ++i) ASSERT_TRUE(raw.send_all(burst)) << "burst " << i;
    // Now read: pongs, then crudcast's close, then the end of the connection.
    std::size_t pongs = 0;
    std::optional<unsigned> close_code;
    Socket::Status status = Socket::Status::data;
    for (;;) {
        auto header = raw.read_exactly(2, default_timeout);
        if (!header) break;
        const auto size = static_cast<unsigned char>((*header)[1]);
        auto payload = raw.read_exactly(size, default_timeout);
        ASSERT_TRUE(payload.has_value());
        const auto first = static_cast<unsigned char>((*header)[0]);
        if (first == 0x8a) {
            ASSERT_FALSE(close_code.has_value()) << "a pong after the close";
            ++pongs;
        } else if (first == 0x88) {
            ASSERT_GE(size, 2);
            close_code = static_cast<unsigned char>((*payload)[0]) << 8 | static_cast<unsigned char>((*payload)[1]);
        }
    }
    status = raw.fill(std::chrono::milliseconds(100));
    EXPECT_NE(status, Socket::Status::timeout) << "the connection did not end after the close";
    EXPECT_EQ(close_code, 1008u);
    EXPECT_GT(pongs, 0u);
    EXPECT_LT(pongs, std::size_t{bursts} * 1000);  // not every ping was answered: no queue grew with them
}

TEST_F(Events, ClientMessagesAndPingsAreHarmless) {
    start();
    Subscriber sub(port_, "/ws");
    sub.send_text("hello");
    sub.ping();
    send("POST", "/api/authors", R"({"id":8})");
    EXPECT_EQ(sub.next()["id"].GetInt(), 8);  // the pong was consumed by Beast's read
    sub.close();
}

TEST_F(Events, APeerThatNeverAnswersPingsIsClosed) {
    start([](config::Config& c) { c.ws_ping_interval = std::chrono::milliseconds(200); });
    // A raw client: it completes the handshake, then never answers a ping.
    Socket raw = Socket::connect(port_);
    ASSERT_TRUE(
        raw.send_all("GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
    auto head = raw.read_until("\r\n\r\n", default_timeout);
    ASSERT_TRUE(head.has_value());
    EXPECT_EQ(head->rfind("HTTP/1.1 101", 0), 0u) << *head;
    EXPECT_NE(head->find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string::npos) << *head;
    bool saw_ping = false;
    Socket::Status status;
    while ((status = raw.fill(default_timeout)) == Socket::Status::data) {
        const auto bytes = raw.buffered();
        if (bytes.find("\x89\x00") != std::string_view::npos) saw_ping = true;
        raw.consume(bytes.size());
    }
    EXPECT_TRUE(saw_ping);
    EXPECT_NE(status, Socket::Status::timeout) << "crudcast kept a peer that never answered its pings";
}

}  // namespace
}  // namespace crudcast
