// ws_limits_test.cpp: what bounds a WebSocket subscriber, over real sockets: ws-write-timeout drops a
// subscriber that takes nothing (and nobody else waits for it), ws-close-timeout ends one that takes
// nothing after its close, ws-max-topics and topic names are
// checked at the handshake, ws-max-subscribers and max-connections are separate limits, /metrics
// stays parseable and bounded whatever models and topics clients make up, and the binary raises its
// file descriptor limit at start.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <rapidjson/document.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <set>
#include <thread>

#include "common/json_text.hpp"
#include "testkit.hpp"

namespace crudcast {
namespace {

using namespace testkit;
using Clock = std::chrono::steady_clock;

constexpr std::string_view handshake_headers =
    "Host: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

std::string upgrade_request(std::string_view target) {
    return "GET " + std::string(target) + " HTTP/1.1\r\n" + std::string(handshake_headers);
}

// A loopback connection whose receive buffer is set before connecting (so the window is small from
// the SYN on); rcvbuf 0 leaves the default.
Socket connect_with_rcvbuf(std::uint16_t port, int rcvbuf) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
    Socket s(fd);
    if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        throw std::system_error(errno, std::generic_category(), "connect");
    return s;
}

// Sends the upgrade for `target` and reads the response head; "" on timeout.
std::string handshake(Socket& socket, std::string_view target) {
    if (!socket.send_all(upgrade_request(target))) return {};
    return socket.read_until("\r\n\r\n", default_timeout).value_or("");
}

bool is_101(std::string_view head) { return head.rfind("HTTP/1.1 101 ", 0) == 0; }

// One frame from crudcast (unmasked); nullopt on timeout or end.
struct ServerFrame {
    unsigned opcode = 0;
    std::string payload;
};
std::optional<ServerFrame> read_frame(Socket& socket, Duration timeout = default_timeout) {
    auto head = socket.read_exactly(2, timeout);
    if (!head) return std::nullopt;
    ServerFrame frame{static_cast<unsigned>(static_cast<unsigned char>((*head)[0]) & 0x0f), {}};
    std::uint64_t length = static_cast<unsigned char>((*head)[1]) & 0x7f;
    const std::size_t extra = length == 126 ? 2 : length == 127 ? 8 : 0;
    if (extra > 0) {
        auto ext = socket.read_exactly(extra, timeout);
        if (!ext) return std::nullopt;
        length = 0;
        for (unsigned char c : *ext) length = (length << 8) | c;
    }
    auto payload = socket.read_exactly(static_cast<std::size_t>(length), timeout);
    if (!payload) return std::nullopt;
    frame.payload = std::move(*payload);
    return frame;
}

std::string write_request(std::string_view method, std::string_view target, std::string_view body) {
    return std::string(method) + " " + std::string(target) +
           " HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

// Echoes a write's body back as JSON (so the event's payload is the body).
UpstreamReply echo_json(const RecordedRequest& r) {
    HeaderList h;
    h.items.emplace_back("Content-Type", "application/json");
    return {
        UpstreamReply::Kind::respond, http_response(200, "OK", h, r.body.empty() ? "{\"id\":1}" : r.body), {}, false};
}

class WsLimits : public ::testing::Test {
protected:
    void start(std::function<void(config::Config&)> tweak = {}) {
        upstream_ = std::make_unique<RawUpstream>(echo_json);
        auto cfg = test_config(upstream_->port());
        cfg.admin_listen = config::Endpoint{"127.0.0.1", 0};
        if (tweak) tweak(cfg);
        gateway_ = start_gateway(cfg);
        port_ = gateway_->port();
    }
    // A number from /api/stats.
    std::int64_t stat(const char* name) {
        rapidjson::Document doc;
        doc.Parse(exchange(gateway_->admin_port(), admin_request("/api/stats")).body.c_str());
        return doc.HasParseError() || !doc.HasMember(name) ? -1 : doc[name].GetInt64();
    }
    // Waits (bounded) until /api/stats shows `name` at `value`: sessions end just after their sockets close.
    bool wait_for_stat(const char* name, std::int64_t value) {
        for (auto deadline = Clock::now() + default_timeout; Clock::now() < deadline;) {
            if (stat(name) == value) return true;
            std::this_thread::sleep_for(2ms);  // the poll's interval: nothing signals a session's end
        }
        ADD_FAILURE() << name << " is " << stat(name) << ", not " << value;
        return false;
    }
    unsigned publish(std::string_view target, std::string_view body = "{\"id\":1}") {
        return exchange(port_, write_request("PUT", target, body)).status;
    }

    std::unique_ptr<RawUpstream> upstream_;
    std::unique_ptr<gateway::Gateway> gateway_;
    std::uint16_t port_ = 0;
};

// ---- ws-write-timeout ----

TEST_F(WsLimits, ASubscriberThatTakesNothingIsDroppedAfterWsWriteTimeoutWhileOthersGetEverything) {
    constexpr auto write_timeout = std::chrono::milliseconds(300);
    start([&](config::Config& c) {
        c.ws_write_timeout = write_timeout;
        // Far above what this test sends: the backlog limits must not be what closes it.
        c.ws_max_queue_messages = 1'000'000;
        c.ws_max_queue_bytes = std::size_t{1} << 30;
    });
    Socket stuck = connect_with_rcvbuf(port_, 4096);  // never read after the 101
    ASSERT_TRUE(is_101(handshake(stuck, "/ws")));
    Socket fast = Socket::connect(port_);
    ASSERT_TRUE(is_101(handshake(fast, "/ws")));

    // 160 events of 64 KiB: 10 MiB, more than the kernel buffers of the stuck connection hold.
    constexpr int events = 160;
    const std::string body = "{\"id\":1,\"blob\":\"" + std::string(64 * 1024, 'z') + "\"}";
    std::atomic<int> fast_got{0};
    std::thread reader([&] {
        for (int i = 0; i < events; ++i) {
            auto frame = read_frame(fast);
            if (!frame) return;
            if (frame->opcode == 1) ++fast_got;
        }
    });
    for (int i = 0; i < events; ++i) ASSERT_EQ(publish("/api/blobs/1", body), 200u);
    const auto published = Clock::now();
    reader.join();
    EXPECT_EQ(fast_got.load(), events) << "a subscriber that takes nothing held the others up";

    // Without reading (which would be progress): wait for crudcast to reset the connection.
    pollfd p{stuck.fd(), 0, 0};
    const int ready = ::poll(&p, 1, static_cast<int>((write_timeout + 2s).count()));
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - published);
    ASSERT_EQ(ready, 1) << "the stuck subscriber was still connected " << waited.count() << " ms after the last event";
    EXPECT_TRUE(p.revents & (POLLERR | POLLHUP));
    EXPECT_LE(waited, write_timeout + 1500ms);
    // A reset, not a FIN: what was queued for it reads out, then the error (no close frame).
    Socket::Status status;
    std::size_t leftover = 0;
    while ((status = stuck.fill(default_timeout)) == Socket::Status::data) {
        leftover += stuck.buffered().size();
        stuck.consume(stuck.buffered().size());
    }
    EXPECT_EQ(status, Socket::Status::error);
    EXPECT_LT(leftover, std::size_t{events} * body.size()) << "it got everything: it was not stuck";

    // The other subscriber carries on.
    ASSERT_EQ(publish("/api/widgets/2"), 200u);
    auto frame = read_frame(fast);
    ASSERT_TRUE(frame.has_value());
    EXPECT_NE(frame->payload.find("\"model\":\"widget\""), std::string::npos) << frame->payload;
}

TEST_F(WsLimits, ASubscriberThatReadsSlowlyIsNotDroppedByTheWriteTimeout) {
    constexpr auto write_timeout = std::chrono::milliseconds(300);
    start([&](config::Config& c) {
        c.ws_write_timeout = write_timeout;
        c.ws_max_queue_messages = 1'000'000;
        c.ws_max_queue_bytes = std::size_t{1} << 30;
    });
    Socket slow = connect_with_rcvbuf(port_, 4096);
    ASSERT_TRUE(is_101(handshake(slow, "/ws")));
    // It reads 4 KiB every 20 ms (200 KB/s): far behind 10 MiB of events, but always taking some.
    std::atomic<bool> stop{false};
    std::atomic<bool> ended{false};
    std::atomic<std::uint64_t> taken{0};
    std::thread reader([&] {
        char buffer[4096];
        while (!stop) {
            const auto n = ::recv(slow.fd(), buffer, sizeof buffer, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                ended = true;
                return;
            }
            if (n > 0) taken += static_cast<std::uint64_t>(n);
            std::this_thread::sleep_for(20ms);  // the pace of a slow reader, not a wait for anything
        }
    });
    const std::string body = "{\"id\":1,\"blob\":\"" + std::string(64 * 1024, 'z') + "\"}";
    for (int i = 0; i < 160; ++i) ASSERT_EQ(publish("/api/blobs/1", body), 200u);
    // Five times ws-write-timeout of slow reading after the last event: still connected.
    const auto until = Clock::now() + 5 * write_timeout;
    while (Clock::now() < until && !ended) std::this_thread::sleep_for(20ms);
    stop = true;
    reader.join();
    EXPECT_FALSE(ended) << "a subscriber that kept reading was dropped after " << taken.load() << " bytes";
    EXPECT_LT(taken.load(), 160u * body.size());  // it was behind all along
    // Once it stops reading, it is dropped.
    pollfd p{slow.fd(), 0, 0};
    EXPECT_EQ(::poll(&p, 1, static_cast<int>((write_timeout + 2s).count())), 1);
}

// ---- ws-close-timeout ----

TEST_F(WsLimits, ASubscriberClosedWith1013ThatTakesNothingMoreIsCutAfterWsCloseTimeout) {
    constexpr auto close_timeout = std::chrono::milliseconds(300);
    start([&](config::Config& c) {
        c.ws_close_timeout = close_timeout;
        c.ws_write_timeout = std::chrono::hours(1);  // not what ends it
        c.ws_max_queue_messages = 8;
        c.ws_max_queue_bytes = std::size_t{1} << 30;
    });
    Socket stuck = connect_with_rcvbuf(port_, 4096);  // never read until the end
    ASSERT_TRUE(is_101(handshake(stuck, "/ws")));
    ASSERT_TRUE(wait_for_stat("websocket_subscribers", 1));
    // Events of 64 KiB until its backlog passes 8: crudcast queues its close frame (1013) behind a
    // write the socket does not take, and gives the subscriber ws-close-timeout to take both.
    const std::string body = "{\"id\":1,\"blob\":\"" + std::string(64 * 1024, 'z') + "\"}";
    for (int i = 0; i < 400 && stat("websocket_slow_closes") < 1; ++i) ASSERT_EQ(publish("/api/blobs/1", body), 200u);
    ASSERT_EQ(stat("websocket_slow_closes"), 1);
    const auto closed_at = Clock::now();
    ASSERT_TRUE(wait_for_stat("websocket_subscribers", 0));
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - closed_at);
    EXPECT_LE(waited, close_timeout + 1500ms) << "the connection outlived ws-close-timeout (300 ms) by far";
    // What reached its socket reads out, then the end: the close frame was never written.
    std::optional<ServerFrame> frame;
    int frames = 0;
    while ((frame = read_frame(stuck))) {
        EXPECT_NE(frame->opcode, 8u) << "a close frame came through a socket that took nothing";
        ++frames;
    }
    EXPECT_GT(frames, 0);
}

// ---- ws-max-topics and topic names ----

std::string topics_query(std::size_t n, std::string_view stem = "t") {
    std::string q = "/ws?topic=";
    for (std::size_t i = 0; i < n; ++i) {
        if (i > 0) q += ',';
        q += std::string(stem) + std::to_string(i);
    }
    return q;
}

TEST_F(WsLimits, TopicCountAndNamesAreCheckedAtTheHandshake) {
    start();  // ws-max-topics at its default, 64
    const auto refused = [&](const std::string& target, std::string_view why) {
        SCOPED_TRACE(target.substr(0, 80));
        const auto r = exchange(port_, upgrade_request(target));
        EXPECT_EQ(r.status, 400u);
        EXPECT_EQ(r.headers.get("Content-Type"), "application/json");
        EXPECT_NE(r.body.find(R"("error":"bad_request")"), std::string::npos) << r.body;
        EXPECT_NE(r.body.find(why), std::string::npos) << r.body;
    };
    refused(topics_query(65), "65 topics: a subscriber may name at most 64 (ws-max-topics)");
    refused("/ws?topic=%ff", "topic 1 is not valid UTF-8");
    refused("/ws?topic=author,%01x", "topic 2 contains a control character");
    refused("/ws?topic=%C2%85", "topic 1 contains a control character");  // NEL, a C1 control
    refused("/ws?topic=all,%ff", "topic 2 is not valid UTF-8");           // "all" does not hide a bad name
    refused("/ws?topic=" + std::string(129, 'a'), "topic 1 is longer than 128 bytes");

    // At the limit, and names at the edge of the rules, are served.
    for (const std::string& target :
         {topics_query(64), "/ws?topic=" + std::string(128, 'a'), std::string("/ws?topic=%C3%A9t%C3%A9,blog+post")}) {
        SCOPED_TRACE(target.substr(0, 80));
        Socket s = Socket::connect(port_);
        const auto head = handshake(s, target);
        EXPECT_TRUE(is_101(head)) << head;
    }
    // Duplicates count once: 65 names, 64 distinct after lower-casing.
    Socket s = Socket::connect(port_);
    EXPECT_TRUE(is_101(handshake(s, topics_query(64) + ",T0")));
    EXPECT_EQ(upstream_->request_count(), 0u);  // no handshake reached the upstream
}

TEST_F(WsLimits, WsMaxTopicsIsASetting) {
    start([](config::Config& c) { c.ws_max_topics = 2; });
    EXPECT_EQ(exchange(port_, upgrade_request("/ws?topic=a,b,c")).status, 400u);
    Socket s = Socket::connect(port_);
    EXPECT_TRUE(is_101(handshake(s, "/ws?topic=a,b")));
}

// ---- ws-max-subscribers and max-connections ----

TEST_F(WsLimits, SubscribersAndHttpConnectionsHaveSeparateLimits) {
    start([](config::Config& c) {
        c.ws_max_subscribers = 2;
        c.max_connections = 2;
    });
    Socket a = Socket::connect(port_);
    ASSERT_TRUE(is_101(handshake(a, "/ws")));
    Socket b = Socket::connect(port_);
    ASSERT_TRUE(is_101(handshake(b, "/ws?topic=author")));

    // Two subscribers do not take HTTP places: two keep-alive connections are served...
    Client c1(port_);
    EXPECT_EQ(c1.roundtrip(get_request("/one")).status, 200u);
    Client c2(port_);
    EXPECT_EQ(c2.roundtrip(get_request("/two")).status, 200u);
    // ...and a third HTTP connection is over max-connections.
    const auto busy = exchange(port_, get_request("/three"));
    EXPECT_EQ(busy.status, 503u);
    EXPECT_NE(busy.body.find(R"("error":"too_many_connections")"), std::string::npos) << busy.body;

    // A third subscriber is over ws-max-subscribers: 503 JSON at the handshake, connection closed.
    const auto full = c1.roundtrip(upgrade_request("/ws"));
    EXPECT_EQ(full.status, 503u);
    EXPECT_EQ(full.headers.get("Content-Type"), "application/json");
    EXPECT_NE(full.body.find(R"("error":"too_many_subscribers")"), std::string::npos) << full.body;
    EXPECT_NE(full.body.find("ws-max-subscribers (2)"), std::string::npos) << full.body;
    EXPECT_TRUE(c1.closed_by_peer());
    EXPECT_EQ(upstream_->request_count(), 2u);  // neither refusal reached the upstream

    // A subscriber that leaves gives its place back.
    a.close();
    ASSERT_TRUE(wait_for_stat("websocket_subscribers", 1));
    ASSERT_TRUE(wait_for_stat("client_connections", 1));  // c1, closed after its 503, is gone
    // An upgrade on a kept-alive HTTP connection moves it from max-connections to ws-max-subscribers:
    // with two subscribers again, both HTTP places are free.
    c2.send(upgrade_request("/ws"));
    auto head = c2.socket().read_until("\r\n\r\n", default_timeout);
    ASSERT_TRUE(head && is_101(*head)) << head.value_or("");
    ASSERT_TRUE(wait_for_stat("client_connections", 0));
    Client c3(port_);
    EXPECT_EQ(c3.roundtrip(get_request("/four")).status, 200u);
    Client c4(port_);
    EXPECT_EQ(c4.roundtrip(get_request("/five")).status, 200u);
    EXPECT_EQ(exchange(port_, get_request("/six")).status, 503u);
    EXPECT_EQ(c3.roundtrip(upgrade_request("/ws")).status, 503u);  // and the subscribers are at their limit
}

// ---- /metrics: parseable, bounded ----

// One sample line of the Prometheus text format: `name{label="value",...} number`.
struct Sample {
    std::string family;
    std::map<std::string, std::string> labels;  // values unescaped
    double value = 0;
};

bool is_name(std::string_view s, bool colon) {
    if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
    return std::all_of(s.begin(), s.end(), [&](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (colon && c == ':');
    });
}

// Parses one label set `{a="x",b="y"}` starting after the '{'; the position after '}', or npos.
std::size_t parse_labels(std::string_view line, std::size_t at, std::map<std::string, std::string>& labels) {
    while (at < line.size() && line[at] != '}') {
        const auto eq = line.find("=\"", at);
        if (eq == std::string_view::npos || !is_name(line.substr(at, eq - at), false)) return std::string_view::npos;
        std::string value;
        std::size_t i = eq + 2;
        for (; i < line.size() && line[i] != '"'; ++i) {
            if (line[i] != '\\') {
                value += line[i];
                continue;
            }
            if (++i == line.size()) return std::string_view::npos;
            if (line[i] == 'n') value += '\n';
            else if (line[i] == '\\' || line[i] == '"') value += line[i];
            else return std::string_view::npos;  // the only escapes the format has
        }
        if (i == line.size()) return std::string_view::npos;
        if (!labels.emplace(std::string(line.substr(at, eq - at)), value).second) return std::string_view::npos;
        at = i + 1;
        if (at < line.size() && line[at] == ',') ++at;
    }
    return at < line.size() ? at + 1 : std::string_view::npos;
}

// Every sample of an exposition; a test failure for each line that is not the format.
std::vector<Sample> parse_exposition(std::string_view text) {
    std::vector<Sample> samples;
    for (std::size_t i = 0; i < text.size();) {
        const auto length = utf8_sequence_length(text, i);
        EXPECT_NE(length, 0u) << "not UTF-8 at byte " << i;
        i += std::max<std::size_t>(length, 1);
    }
    EXPECT_TRUE(text.ends_with('\n'));
    std::set<std::string> seen;
    for (std::size_t start = 0; start < text.size();) {
        const auto end = text.find('\n', start);
        const auto line = text.substr(start, end - start);
        start = end + 1;
        if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
            EXPECT_TRUE(is_name(line.substr(7, line.find(' ', 7) - 7), true)) << line;
            continue;
        }
        Sample sample;
        const auto name_end = line.find_first_of("{ ");
        sample.family = std::string(line.substr(0, name_end));
        std::size_t at = name_end;
        if (at != std::string_view::npos && line[at] == '{') at = parse_labels(line, at + 1, sample.labels);
        if (!is_name(sample.family, true) || at == std::string_view::npos || at >= line.size() || line[at] != ' ') {
            ADD_FAILURE() << "not a sample line: " << line;
            continue;
        }
        const std::string number(line.substr(at + 1));
        char* parsed_end = nullptr;
        sample.value = std::strtod(number.c_str(), &parsed_end);
        EXPECT_TRUE(!number.empty() && *parsed_end == '\0') << line;
        EXPECT_TRUE(seen.insert(std::string(line.substr(0, at))).second) << "repeated series: " << line;
        samples.push_back(std::move(sample));
    }
    return samples;
}

TEST_F(WsLimits, MetricsLabelsStayValidAndBoundedWhateverModelsAndTopicsClientsMakeUp) {
    start();
    // Models with a quote, a backslash, a newline, a byte that is not UTF-8; then 150 more.
    const std::vector<std::pair<std::string, std::string>> odd = {
        {"/api/q%22uote", "q\"uote"},
        {"/api/back%5Cslash", "back\\slash"},
        {"/api/new%0Aline", "new\nline"},
        {"/api/bad%FFbyte",
         "bad\xEF\xBF\xBD"
         "byte"},
    };
    // Subscribers first (an event is counted whether or not anyone subscribed): 3 x 60 topics of
    // their own, one they share, and one with a quote and a backslash in it.
    std::vector<Socket> subscribers;
    for (int k = 0; k < 3; ++k) {
        subscribers.push_back(Socket::connect(port_));
        ASSERT_TRUE(is_101(
            handshake(subscribers.back(), topics_query(60, "s" + std::to_string(k) + "_") + ",shared,a%22b%5Cc")));
    }
    for (const auto& [target, model] : odd) ASSERT_EQ(publish(target), 200u) << target;
    constexpr int many = 150;
    for (int i = 0; i < many; ++i) ASSERT_EQ(publish("/api/m" + std::to_string(i)), 200u);

    const auto scrape = exchange(gateway_->admin_port(), admin_request("/metrics"));
    ASSERT_EQ(scrape.status, 200u);
    std::map<std::string, std::vector<Sample>> families;
    for (auto& sample : parse_exposition(scrape.body)) families[sample.family].push_back(std::move(sample));

    const auto& published = families["crudcast_events_published_total"];
    EXPECT_EQ(published.size(), 101u);  // 100 models by name, the rest as "_other"
    double events = 0;
    std::map<std::string, double> by_model;
    for (const auto& s : published) {
        events += s.value;
        by_model[s.labels.at("model")] += s.value;
    }
    EXPECT_EQ(events, many + odd.size());  // nothing lost in the folding
    for (const auto& [target, model] : odd) EXPECT_EQ(by_model[model], 1) << target;
    EXPECT_EQ(by_model["_other"], many + odd.size() - 100);

    const auto& subscribed = families["crudcast_websocket_subscribers"];
    EXPECT_EQ(subscribed.size(), 101u);  // 3 x 62 topics (183 distinct): the 100 most subscribed, "_other"
    double subscriptions = 0;
    std::map<std::string, double> by_topic;
    for (const auto& s : subscribed) {
        subscriptions += s.value;
        by_topic[s.labels.at("topic")] = s.value;
    }
    EXPECT_EQ(subscriptions, 3 * 62);
    EXPECT_EQ(by_topic["shared"], 3);
    EXPECT_EQ(by_topic["a\"b\\c"], 3);
    EXPECT_EQ(by_topic["_other"], 3 * 62 - 3 - 3 - 98);

    // /api/stats lists the same bounded breakdown.
    rapidjson::Document stats;
    stats.Parse(exchange(gateway_->admin_port(), admin_request("/api/stats")).body.c_str());
    ASSERT_FALSE(stats.HasParseError());
    const auto& topics = stats["websocket_subscribers_by_topic"];
    EXPECT_EQ(topics.MemberCount(), 101u);
    EXPECT_EQ(topics["_other"].GetUint64(), 3u * 62 - 3 - 3 - 98);
    EXPECT_EQ(stats["events_published_by"].MemberCount(), 101u);
}

// ---- the file descriptor limit ----

TEST(FileLimit, TheBinaryRaisesItsSoftLimitToTheHardLimitAndSaysSo) {
    rlimit original{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &original), 0);
    if (original.rlim_max != RLIM_INFINITY && original.rlim_max <= 256) GTEST_SKIP() << "hard limit too low to lower";
    const std::string hard = std::to_string(original.rlim_max);
    const auto start = [&](std::vector<std::string> extra) {
        // The child inherits the lowered soft limit; this process gets its own back at once.
        rlimit lowered{256, original.rlim_max};
        EXPECT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
        std::vector<std::string> args{"--listen",       "127.0.0.1:0", "--upstream", "http://127.0.0.1:9",
                                      "--admin-listen", "off",         "--threads",  "1"};
        args.insert(args.end(), extra.begin(), extra.end());
        auto child = std::make_unique<ChildProcess>(CRUDCAST_BINARY, args);
        EXPECT_EQ(::setrlimit(RLIMIT_NOFILE, &original), 0);
        return child;
    };
    {
        // Limits that fit: the info line, and no warning.
        auto crudcast = start({"--max-connections", "100", "--ws-max-subscribers", "100"});
        const auto line = crudcast->wait_for_stderr("file descriptor limit");
        ASSERT_TRUE(line.has_value()) << crudcast->stderr_text();
        EXPECT_NE(line->find(" info "), std::string::npos) << *line;
        EXPECT_NE(line->find("nofile=" + hard), std::string::npos) << *line;
        EXPECT_NE(line->find("was=256"), std::string::npos) << *line;
        EXPECT_NE(line->find("subscribers_fit=100"), std::string::npos) << *line;
        ASSERT_TRUE(crudcast->wait_for_stderr("crudcast started"));
        EXPECT_EQ(crudcast->stderr_text().find(" warn "), std::string::npos) << crudcast->stderr_text();
    }
    if (original.rlim_max == RLIM_INFINITY || original.rlim_max > 1'000'000) return;  // cannot exceed it below
    {
        // More subscribers than descriptors: no warning (the default is 100k), the real room instead.
        const auto max = std::to_string(original.rlim_max);
        auto crudcast = start({"--max-connections", "100", "--ws-max-subscribers", max});
        const auto line = crudcast->wait_for_stderr("file descriptor limit");
        ASSERT_TRUE(line.has_value()) << crudcast->stderr_text();
        const auto fit = std::to_string(original.rlim_max - (100 + crudcast::config::Config{}.upstream_max_idle + 16));
        EXPECT_NE(line->find("subscribers_fit=" + fit), std::string::npos) << *line;
        ASSERT_TRUE(crudcast->wait_for_stderr("crudcast started"));
        EXPECT_EQ(crudcast->stderr_text().find(" warn "), std::string::npos) << crudcast->stderr_text();
    }
    {
        // HTTP connections past the hard limit: a warning that says what would be needed.
        auto crudcast = start({"--max-connections", std::to_string(original.rlim_max)});
        const auto warning = crudcast->wait_for_stderr("file descriptor limit below");
        ASSERT_TRUE(warning.has_value()) << crudcast->stderr_text();
        EXPECT_NE(warning->find(" warn "), std::string::npos) << *warning;
        EXPECT_NE(warning->find("nofile=" + hard), std::string::npos) << *warning;
    }
}

}  // namespace
}  // namespace crudcast
