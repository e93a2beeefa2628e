// resume_test.cpp: positions, history and resume over real sockets: a subscriber that reconnects
// with ?since= gets exactly what it missed, then live events, while writers race it; the gap
// message for each reason; Server-Sent Events at the ws path with Last-Event-ID.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <thread>

#include "testkit.hpp"
#include "tests/ws_subscriber.hpp"

namespace crudcast {
namespace {

using namespace testkit;

std::uint64_t seq_of(const rapidjson::Document& doc) { return doc["seq"].GetUint64(); }

class Resume : public ::testing::Test {
protected:
    void start(std::function<void(config::Config&)> tweak = {}) {
        upstream_ = std::make_unique<RawUpstream>(echo_created);
        auto cfg = test_config(upstream_->port());
        if (tweak) tweak(cfg);
        gateway_ = start_gateway(cfg);
        port_ = gateway_->port();
        watcher_ = std::make_unique<Subscriber>(port_, "/ws");
    }
    // Writes one event through crudcast and returns its seq, as a subscriber of all saw it.
    std::uint64_t write(std::string_view model, int id) {
        const auto r =
            exchange(port_, json_post("/api/" + std::string(model) + "s", R"({"id":)" + std::to_string(id) + "}"));
        EXPECT_EQ(r.status, 201u);
        const auto doc = watcher_->next();
        EXPECT_EQ(std::string(doc["model"].GetString()), model);
        return seq_of(doc);
    }

    // Writes an author with a 100 KB member over `writer`, and waits until the watcher saw its event.
    void write_big(Client& writer, int id) {
        static const std::string pad(100000, 'x');
        ASSERT_EQ(
            writer.roundtrip(json_post("/api/authors", R"({"id":)" + std::to_string(id) + R"(,"pad":")" + pad + "\"}"))
                .status,
            201u);
        watcher_->next();
    }

    std::unique_ptr<RawUpstream> upstream_;
    std::unique_ptr<gateway::Gateway> gateway_;
    std::unique_ptr<Subscriber> watcher_;
    std::uint16_t port_ = 0;
};

TEST_F(Resume, ReconnectWithSinceGetsExactlyTheMissedEventsThenLive) {
    start();
    const auto a = write("author", 1);
    const auto b = write("author", 2);
    const auto c = write("book", 3);
    const auto d = write("author", 4);
    ASSERT_EQ(b, a + 1);
    Subscriber all(port_, "/ws?since=" + std::to_string(a));
    Subscriber authors(port_, "/ws?topic=author&since=" + std::to_string(a));
    for (const auto want : {b, c, d}) {
        const auto got = all.next();
        EXPECT_FALSE(got.HasMember("type"));
        EXPECT_EQ(seq_of(got), want);
    }
    EXPECT_EQ(seq_of(authors.next()), b);
    EXPECT_EQ(seq_of(authors.next()), d);
    const auto e = write("author", 5);
    EXPECT_EQ(seq_of(all.next()), e);
    EXPECT_EQ(seq_of(authors.next()), e);
}

TEST_F(Resume, SinceTheCurrentPositionReplaysNothingAndGoesLive) {
    start();
    const auto a = write("author", 1);
    Subscriber sub(port_, "/ws?since=" + std::to_string(a));
    const auto b = write("author", 2);
    const auto got = sub.next();
    EXPECT_FALSE(got.HasMember("type"));
    EXPECT_EQ(seq_of(got), b);
}

TEST_F(Resume, EventsOlderThanTheHistoryAreAnnouncedByAGapNamingTheNextOne) {
    start([](config::Config& c) { c.history_size = 2; });
    const auto a = write("author", 1);
    write("author", 2);
    const auto c = write("book", 3);
    const auto d = write("author", 4);
    Subscriber all(port_, "/ws?since=" + std::to_string(a));
    EXPECT_EQ(all.next_raw(), R"({"type":"gap","reason":"history","since":)" + std::to_string(a) + R"(,"next":)" +
                                  std::to_string(c) + "}");
    EXPECT_EQ(seq_of(all.next()), c);
    EXPECT_EQ(seq_of(all.next()), d);
    // A topic subscriber is told of the next event it will receive.
    Subscriber authors(port_, "/ws?topic=author&since=" + std::to_string(a));
    EXPECT_EQ(authors.next_raw(), R"({"type":"gap","reason":"history","since":)" + std::to_string(a) + R"(,"next":)" +
                                      std::to_string(d) + "}");
    EXPECT_EQ(seq_of(authors.next()), d);
}

TEST_F(Resume, AQuietTopicIsNotToldOfAGapWhenOnlyOtherTopicsWereDropped) {
    start([](config::Config& c) { c.history_size = 2; });
    const auto a = write("author", 1);
    for (int i = 0; i < 3; ++i) write("book", 10 + i);  // drops the author a and the first book
    Subscriber authors(port_, "/ws?topic=author&since=" + std::to_string(a));
    const auto b = write("author", 2);
    const auto got = authors.next();
    EXPECT_FALSE(got.HasMember("type")) << "a gap, though no author event was lost";
    EXPECT_EQ(seq_of(got), b);
    // The books' subscriber did lose one.
    Subscriber books(port_, "/ws?topic=book&since=" + std::to_string(a));
    EXPECT_NE(books.next_raw().find(R"("type":"gap","reason":"history")"), std::string::npos);
}

TEST_F(Resume, APositionFromBeforeThisProcessIsARestartGap) {
    start();
    const auto a = write("author", 1);
    for (const std::string since : {"1", "9007199254740991"}) {
        Subscriber sub(port_, "/ws?since=" + since);
        EXPECT_EQ(sub.next_raw(),
                  R"({"type":"gap","reason":"restart","since":)" + since + R"(,"next":)" + std::to_string(a) + "}");
        EXPECT_EQ(seq_of(sub.next()), a);
    }
}

TEST_F(Resume, WithoutHistoryEveryMissedEventIsAGapWithNoNext) {
    start([](config::Config& c) { c.history_size = 0; });
    const auto a = write("author", 1);
    write("author", 2);
    Subscriber sub(port_, "/ws?since=" + std::to_string(a));
    EXPECT_EQ(sub.next_raw(), R"({"type":"gap","reason":"history","since":)" + std::to_string(a) + R"(,"next":null})");
    const auto c = write("author", 3);
    EXPECT_EQ(seq_of(sub.next()), c);
}

TEST_F(Resume, ALongReplayIsPacedBySocketNotQueued) {
    // 400 events to replay, a queue of 8: a replay queued at once would be closed with 1013.
    start([](config::Config& c) { c.ws_max_queue_messages = 8; });
    const auto a = write("author", 0);
    Client writer(port_);
    for (int i = 1; i <= 400; ++i) {
        ASSERT_EQ(writer.roundtrip(json_post("/api/authors", R"({"id":)" + std::to_string(i) + "}")).status, 201u);
        watcher_->next();
    }
    Subscriber sub(port_, "/ws?since=" + std::to_string(a));
    for (std::uint64_t i = 1; i <= 400; ++i) ASSERT_EQ(seq_of(sub.next()), a + i);
}

TEST_F(Resume, WritersRacingResumingSubscribersCauseNoGapAndNoDuplicate) {
    start();
    const auto a = write("author", 0);
    watcher_.reset();
    constexpr int writers = 4, each = 150, subscribers = 24;
    std::atomic<bool> failed{false};
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
        threads.emplace_back([&, w] {
            Client c(port_);
            for (int i = 0; i < each; ++i) {
                if (c.roundtrip(json_post(w % 2 ? "/api/authors" : "/api/books", "{\"id\":1}")).status != 201u)
                    failed = true;
            }
        });
    }
    // Subscribers keep reconnecting while the writes go on, each time from the last seq it saw, as a
    // client on a flaky network does: it must see every seq after `a` exactly once, in order,
    // whether it came from the history or live.
    std::vector<std::thread> readers;
    std::atomic<int> complete{0};
    std::atomic<int> sessions{0};
    for (int s = 0; s < subscribers; ++s) {
        readers.emplace_back([&, s] {
            std::uint64_t last = a;
            while (last < a + writers * each) {
                Subscriber sub(port_, "/ws?since=" + std::to_string(last));
                ++sessions;
                for (int k = 0; k < 3 + s % 5 && last < a + writers * each; ++k) {
                    const auto doc = sub.next();
                    if (doc.HasMember("type") || seq_of(doc) != last + 1) {
                        ADD_FAILURE() << "expected seq " << last + 1;
                        return;
                    }
                    last = seq_of(doc);
                }
            }
            ++complete;
        });
    }
    for (auto& t : threads) t.join();
    for (auto& t : readers) t.join();
    EXPECT_FALSE(failed);
    EXPECT_EQ(complete, subscribers);
    EXPECT_GT(sessions, subscribers * 10);
}

// A subscriber with a tiny receive buffer that has read nothing yet, its handshake answered.
Socket slow_subscriber(std::uint16_t port, const std::string& target) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    const int small = 4096;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("connect");
    Socket s(fd);
    s.send_all("GET " + target +
               " HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    if (!s.read_until("\r\n\r\n", default_timeout)) throw std::runtime_error("no 101");
    return s;
}

// The next server frame's opcode and payload (unmasked; lengths up to 64 bits).
std::pair<int, std::string> read_frame(Socket& s) {
    const auto head = s.read_exactly(2, default_timeout);
    if (!head) throw std::runtime_error("no frame");
    std::uint64_t length = static_cast<unsigned char>((*head)[1]) & 0x7f;
    if (length >= 126) {
        const auto ext = s.read_exactly(length == 126 ? 2 : 8, default_timeout);
        if (!ext) throw std::runtime_error("no length");
        length = 0;
        for (unsigned char c : *ext) length = length << 8 | c;
    }
    auto payload = s.read_exactly(length, default_timeout);
    if (!payload) throw std::runtime_error("no payload");
    return {static_cast<unsigned char>((*head)[0]) & 0x0f, std::move(*payload)};
}

TEST_F(Resume, AReplayWriteInFlightStaysIntactWhenTheSubscriberClosesMeanwhile) {
    // The frames of a replay write in flight may be held by nothing else once the history drops
    // them: closing the subscriber meanwhile must not free them under the write.
    start([](config::Config& c) { c.history_size = 60; });  // 59 x 100 KB to replay: more than the kernel buffers
    const auto a = write("author", 0);
    Client writer(port_);
    for (int i = 1; i <= 59; ++i) write_big(writer, i);
    auto sub = slow_subscriber(port_, "/ws?since=" + std::to_string(a));
    for (int i = 60; i <= 130; ++i) write_big(writer, i);  // the history no longer holds the replay's frames
    ASSERT_TRUE(sub.send_all(ws_client_frame(0x88, std::string("\x03\xe8", 2))));
    std::uint64_t expected = a + 1;
    for (;;) {
        const auto [opcode, payload] = read_frame(sub);
        if (opcode == 0x8) break;
        ASSERT_EQ(opcode, 0x1);
        rapidjson::Document doc;
        doc.Parse(payload.c_str());
        ASSERT_FALSE(doc.HasParseError()) << payload.substr(0, 80);
        ASSERT_EQ(seq_of(doc), expected) << "frame " << expected - a;
        ++expected;
    }
    EXPECT_GT(expected, a + 1);  // part of the replay arrived before the close answer
}

TEST_F(Resume, AReaderTheHistoryOvertakesIsClosedWith1013AfterWhatItGot) {
    // 6 MB to replay (more than the kernel buffers for a reader that reads nothing), and room in the
    // live queue, so that it is the history that leaves the reader behind.
    start([](config::Config& c) {
        c.history_size = 60;
        c.ws_max_queue_bytes = 256u << 20;
    });
    const auto a = write("author", 0);
    Client writer(port_);
    for (int i = 1; i <= 59; ++i) write_big(writer, i);
    auto sub = slow_subscriber(port_, "/ws?since=" + std::to_string(a));
    for (int i = 60; i <= 200; ++i) write_big(writer, i);  // the history drops what the reader has not read
    std::uint64_t expected = a + 1;
    for (;;) {
        const auto [opcode, payload] = read_frame(sub);
        if (opcode == 0x8) {
            ASSERT_GE(payload.size(), 2u);
            EXPECT_EQ((static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]), 1013);
            EXPECT_NE(payload.find("history moved past its replay"), std::string::npos) << payload;
            break;
        }
        rapidjson::Document doc;
        doc.Parse(payload.c_str());
        ASSERT_FALSE(doc.HasParseError());
        ASSERT_EQ(seq_of(doc), expected);  // in order, no hole, until the close
        ++expected;
    }
    // Resuming from the last event it got: the gap names what is lost.
    Subscriber again(port_, "/ws?since=" + std::to_string(expected - 1));
    EXPECT_NE(again.next_raw().find(R"("type":"gap","reason":"history")"), std::string::npos);
}

TEST_F(Resume, ABadPositionIsRefusedBeforeTheHandshake) {
    start();
    for (const std::string query : {"since=-1", "since=x", "since=1.5", "since=", "since=%201",
                                    "since=18446744073709551616", "since=1&since=2"}) {
        const auto r =
            exchange(port_, "GET /ws?" + query +
                                " HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
        EXPECT_EQ(r.status, 400u) << query;
        EXPECT_NE(r.body.find("since"), std::string::npos) << r.body;
    }
}

// --- Server-Sent Events ---

// Reads one SSE record (up to the blank line) from `s`.
std::string record(Socket& s) {
    auto r = s.read_until("\n\n", default_timeout);
    if (!r) throw std::runtime_error("no SSE record");
    return *r;
}

Socket open_stream(std::uint16_t port, std::string_view target, std::string_view extra = "") {
    auto s = Socket::connect(port);
    s.send_all("GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n" +
               std::string(extra) + "\r\n");
    const auto head = s.read_until("\r\n\r\n", default_timeout);
    if (!head || !head->starts_with("HTTP/1.1 200 ") ||
        head->find("Content-Type: text/event-stream\r\n") == std::string::npos)
        throw std::runtime_error("no event stream: " + head.value_or("nothing"));
    return s;
}

std::string sse_event(std::uint64_t seq, std::string_view json) {
    return "id: " + std::to_string(seq) + "\ndata: " + std::string(json) + "\n\n";
}

TEST_F(Resume, ServerSentEventsCarryTheSameEventsWithTheirSeqAsId) {
    start();
    auto stream = open_stream(port_, "/ws?topic=author");
    const auto r = exchange(port_, json_post("/api/authors", R"({"id":7})"));
    ASSERT_EQ(r.status, 201u);
    const auto json = watcher_->next_raw();
    rapidjson::Document doc;
    doc.Parse(json.c_str());
    EXPECT_EQ(record(stream), sse_event(seq_of(doc), json));
}

TEST_F(Resume, LastEventIdResumesAStreamAndWinsOverTheQuery) {
    start([](config::Config& c) { c.history_size = 3; });
    const auto a = write("author", 1);
    const auto b = write("author", 2);
    const auto c = write("author", 3);
    auto stream = open_stream(port_, "/ws?since=1", "Last-Event-ID: " + std::to_string(b) + "\r\n");
    const auto rec = record(stream);
    EXPECT_TRUE(rec.starts_with("id: " + std::to_string(c) + "\n")) << rec;
    // A gap is an `event: gap` record without an id, its JSON as the WebSocket's.
    write("author", 4);
    write("author", 5);
    auto old = open_stream(port_, "/ws", "Last-Event-ID: " + std::to_string(a) + "\r\n");
    EXPECT_EQ(record(old), "event: gap\ndata: {\"type\":\"gap\",\"reason\":\"history\",\"since\":" + std::to_string(a) +
                               ",\"next\":" + std::to_string(c) + "}\n\n");
}

TEST_F(Resume, StreamsGetCommentHeartbeatsAndBadIdsAre400) {
    start([](config::Config& c) { c.ws_ping_interval = std::chrono::milliseconds(50); });
    auto stream = open_stream(port_, "/ws");
    EXPECT_EQ(record(stream), ":\n\n");
    const auto bad =
        exchange(port_, "GET /ws HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nLast-Event-ID: 12a\r\n\r\n");
    EXPECT_EQ(bad.status, 400u);
    // Accepting anything is not asking for a stream: the WebSocket hint.
    const auto any = exchange(port_, "GET /ws HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n");
    EXPECT_EQ(any.status, 426u);
}

TEST_F(Resume, AStreamEndsWithItsReasonAtDrain) {
    start();
    auto stream = open_stream(port_, "/ws");
    gateway_->shutdown();
    const auto last = record(stream);
    EXPECT_TRUE(last.starts_with(": closed 1001 ")) << last;
    EXPECT_NE(stream.fill(default_timeout), Socket::Status::data);
}

}  // namespace
}  // namespace crudcast
