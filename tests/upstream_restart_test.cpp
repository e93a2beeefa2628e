// upstream_restart_test.cpp: crudcast under concurrent keep-alive load (client threads issuing GETs
// and POSTs in a loop, like wrk) while its upstream is stopped for about a second and started again
// on the same port. Every request gets an answer that is 2xx or crudcast's own 502/504 (never another
// status, never a hang), crudcast picks the upstream up again by itself, and a WebSocket subscriber
// receives exactly one event per POST that got a complete 2xx: none for a failed or truncated answer.
// In the second variant some POST answers are half-way out when the upstream dies: truncated.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <map>
#include <set>

#include "tests/testkit.hpp"

namespace {

using namespace crudcast;
using namespace crudcast::testkit;

// Reads the ws path's text frames (events) on its own thread; answers pings.
class EventTap {
public:
    explicit EventTap(std::uint16_t port) : socket_(Socket::connect(port)) {
        socket_.send_all(
            "GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        const auto head = socket_.read_until("\r\n\r\n", default_timeout);
        if (!head || !head->starts_with("HTTP/1.1 101")) throw std::runtime_error("no 101: " + head.value_or(""));
        reader_ = std::thread([this] { run(); });
    }
    ~EventTap() {
        ::shutdown(socket_.fd(), SHUT_RDWR);
        reader_.join();
    }
    // Waits (bounded) for an event containing `needle`; returns every event before it.
    std::optional<std::vector<std::string>> events_before(const std::string& needle) {
        std::unique_lock lock(mutex_);
        std::optional<std::vector<std::string>> out;
        changed_.wait_for(lock, default_timeout, [&] {
            for (std::size_t i = 0; i < events_.size(); ++i)
                if (events_[i].find(needle) != std::string::npos)
                    return out.emplace(events_.begin(), events_.begin() + static_cast<std::ptrdiff_t>(i)), true;
            return false;
        });
        return out;
    }

private:
    void run() {
        for (;;) {
            const auto h = socket_.read_exactly(2, forever);
            if (!h) return;
            std::uint64_t size = static_cast<unsigned char>((*h)[1]) & 0x7f;
            if (size >= 126) {
                const auto ext = socket_.read_exactly(size == 126 ? 2 : 8, forever);
                if (!ext) return;
                size = 0;
                for (unsigned char c : *ext) size = size << 8 | c;
            }
            const auto payload = socket_.read_exactly(static_cast<std::size_t>(size), forever);
            if (!payload) return;
            const auto opcode = static_cast<unsigned char>((*h)[0]) & 0x0f;
            if (opcode == 0x9) socket_.send_all(ws_client_frame(0x8a, *payload));
            if (opcode == 0x8) return;
            if (opcode != 0x1) continue;
            std::lock_guard lock(mutex_);
            events_.push_back(*payload);
            changed_.notify_all();
        }
    }

    Socket socket_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<std::string> events_;
    std::thread reader_;
};

// What the load threads saw, shared.
struct Tally {
    std::mutex mutex;
    std::condition_variable changed;
    std::map<unsigned, std::size_t> statuses;  // complete answers by status
    std::size_t answers = 0;
    std::size_t broken = 0;               // connections that ended inside an answer
    std::size_t broken_gets = 0;          // of those, answers to a GET
    std::vector<std::string> unexpected;  // statuses or failures that must not happen
    std::set<std::string> published_ids;  // POST ids that got a complete 2xx
    std::chrono::steady_clock::time_point last_2xx{};

    void answered(unsigned status, const std::string& post_id) {
        std::lock_guard lock(mutex);
        ++answers;
        ++statuses[status];
        if (status >= 200 && status < 300) {
            last_2xx = std::chrono::steady_clock::now();
            if (!post_id.empty()) published_ids.insert(post_id);
        } else if (status != 502 && status != 504) {
            unexpected.push_back("status " + std::to_string(status));
        }
        changed.notify_all();
    }
    // Waits (bounded) until `pred` holds.
    template <class Pred>
    bool wait(Pred pred, Duration timeout = default_timeout) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, timeout, [&] { return pred(*this); });
    }
};

// One keep-alive client: GET and POST in turn until `stop`, reconnecting when crudcast closes.
void load(std::uint16_t port, int thread, const std::atomic<bool>& stop, Tally& tally) {
    std::optional<Client> client;
    for (int k = 0; !stop; ++k) {
        const bool is_post = k % 2 == 1;
        const std::string id = "t" + std::to_string(thread) + "-" + std::to_string(k);
        // Trailing whitespace: a body cut inside it is still valid JSON, so only the missing bytes tell.
        const std::string body = "{\"id\":\"" + id + "\"}" + std::string(64, ' ');
        const std::string request =
            is_post ? "POST /api/items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body
                    : get_request("/api/items");
        try {
            if (!client) client.emplace(port);
            ReadOptions options;
            options.timeout = 5s;  // far over upstream-timeout: a hang, not slowness
            const auto res = client->roundtrip(request, options);
            tally.answered(res.status, is_post ? id : "");
            if (!res.keep_alive) client.reset();
        } catch (const std::exception& e) {
            client.reset();
            std::lock_guard lock(tally.mutex);
            if (std::string_view(e.what()).find("timed out") != std::string_view::npos) {
                tally.unexpected.push_back(std::string("hang: ") + e.what());
            } else {
                ++tally.broken;
                if (!is_post) ++tally.broken_gets;
            }
            tally.changed.notify_all();
        }
    }
}

// A REST-ish upstream: POST echoes its body as 201, GET lists. While `stall` is set, a POST gets its
// head and its body but the last 32 bytes, then nothing until the upstream stops (`stalled` counts those).
struct Stalling {
    std::atomic<bool> stall{false};
    std::atomic<int> stalled{0};
};
RawUpstream::Handler rest_upstream(Stalling* stalling) {
    return [=](const RecordedRequest& r) {
        if (r.method != "POST") return UpstreamReply::ok("[]");
        UpstreamReply reply;
        reply.bytes = http_response(201, "Created", {{{"Content-Type", "application/json"}}}, r.body);
        if (stalling && stalling->stall) {
            reply.bytes.resize(reply.bytes.size() - 32);  // inside the trailing whitespace
            reply.then = [stalling](Socket& s) {          // until the upstream's stop shuts this connection down
                ++stalling->stalled;
                while (s.fill(forever) == Socket::Status::data) s.consume(s.buffered().size());
            };
        }
        return reply;
    };
}

void restart_under_load(bool die_mid_response) {
    Stalling stalling;
    auto upstream = std::make_unique<RawUpstream>(rest_upstream(&stalling));
    const auto upstream_port = upstream->port();
    auto cfg = test_config(upstream_port);
    cfg.upstream_timeout = 2s;
    auto gw = start_gateway(std::move(cfg));
    EventTap tap(gw->port());

    Tally tally;
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) clients.emplace_back(load, gw->port(), t, std::cref(stop), std::ref(tally));

    ASSERT_TRUE(tally.wait([](Tally& t) { return t.answers >= 300; })) << "no load before the stop";
    if (die_mid_response) {  // some POST answers half-way when the upstream dies
        stalling.stall = true;
        const auto deadline = std::chrono::steady_clock::now() + default_timeout;
        while (stalling.stalled < 2 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(1ms);  // a polling interval: the upstream's threads count them
        ASSERT_GE(stalling.stalled, 2);
    }
    upstream.reset();  // the upstream stops: connections cut, nothing listens
    const auto stopped_at = std::chrono::steady_clock::now();
    ASSERT_TRUE(tally.wait([&](Tally& t) { return t.statuses[502] >= 20; })) << "no 502 while the upstream was down";
    std::this_thread::sleep_for(1s);  // the outage itself: load goes on against a dead upstream
    const auto down_502 = [&] {
        std::lock_guard lock(tally.mutex);
        return tally.statuses[502];
    }();
    upstream = std::make_unique<RawUpstream>(rest_upstream(nullptr), upstream_port);
    const auto restarted_at = std::chrono::steady_clock::now();
    ASSERT_TRUE(tally.wait([&](Tally& t) { return t.last_2xx > restarted_at; }, 5s)) << "crudcast did not recover";
    const auto recovered_in = std::chrono::duration_cast<std::chrono::milliseconds>(tally.last_2xx - restarted_at);
    const auto answers_then = tally.answers;
    ASSERT_TRUE(tally.wait([&](Tally& t) { return t.answers >= answers_then + 300; })) << "no load after recovery";
    stop = true;
    for (auto& c : clients) c.join();

    // The sentinel's event comes after every event the load made (events go out in seq order).
    const auto sentinel = exchange(gw->port(),
                                   "POST /api/items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                                   "Content-Length: 17\r\n\r\n{\"id\":\"sentinel\"}");
    ASSERT_EQ(sentinel.status, 201u);
    const auto events = tap.events_before("\"sentinel\"");
    ASSERT_TRUE(events.has_value()) << "the sentinel's event never came";
    std::set<std::string> event_ids;
    for (const auto& e : *events) {
        const auto at = e.find("\"id\":\"");
        ASSERT_NE(at, std::string::npos) << e;
        EXPECT_TRUE(event_ids.insert(e.substr(at + 6, e.find('"', at + 6) - at - 6)).second) << "twice: " << e;
    }
    std::lock_guard lock(tally.mutex);
    EXPECT_EQ(tally.unexpected, std::vector<std::string>{});
    EXPECT_EQ(event_ids, tally.published_ids) << "events must be exactly the POSTs that got a complete 2xx";
    for (const auto& [status, n] : tally.statuses) EXPECT_TRUE(status / 100 == 2 || status == 502 || status == 504);
    EXPECT_EQ(tally.broken_gets, 0u) << "a GET was cut off: its answers are never stalled";
    // A POST answer the upstream broke off half-way was held whole for its event (its head carries
    // the event's X-Crudcast-Seq): nothing of it had gone out, so its client got a 502, not a cut.
    EXPECT_EQ(tally.broken, 0u) << "a connection ended without an answer where crudcast should have answered";
    std::cout << "answers=" << tally.answers << " 2xx=" << tally.statuses[200] + tally.statuses[201]
              << " 502=" << tally.statuses[502] << " (during the outage " << down_502 << ") 504=" << tally.statuses[504]
              << " truncated=" << tally.broken << " events=" << event_ids.size() << " stop->restart="
              << std::chrono::duration_cast<std::chrono::milliseconds>(restarted_at - stopped_at).count()
              << "ms recovered_in=" << recovered_in.count() << "ms\n";
}

TEST(UpstreamRestart, UnderLoadEveryAnswerIs2xxOr502Or504AndEventsMatchTheSuccessfulPosts) {
    restart_under_load(false);
}

TEST(UpstreamRestart, UpstreamDyingMidResponseUnderLoadAnswers502AndPublishesNoEventForBrokenAnswers) {
    restart_under_load(true);
}

}  // namespace
