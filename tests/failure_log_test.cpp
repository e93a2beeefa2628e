// failure_log_test.cpp: upstream failure warn lines at most once a second per kind, every failure
// accounted for. The summariser itself (common/warn_summary.hpp) with explicit times and many
// threads; then the real binary against a refused upstream port: 500 requests, 500 access lines, a
// few warn lines whose counts add up to 500 before the process exits (the timer's flush).
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <csignal>
#include <sstream>
#include <thread>
#include <vector>

#include "common/warn_summary.hpp"
#include "tests/testkit.hpp"

namespace {

using namespace crudcast;
using namespace crudcast::testkit;
using Summary = log::WarnSummary;

struct Flushed {
    std::size_t kind;
    std::uint64_t count;
};

std::vector<Flushed> flush(Summary& s, Summary::Clock::time_point now, bool all = false) {
    std::vector<Flushed> out;
    s.flush([&](std::size_t kind, std::uint64_t count, std::uint32_t) { out.push_back({kind, count}); }, all, now);
    return out;
}

TEST(WarnSummary, FirstOfABurstIsLoggedTheRestCountedIntoTheNextLine) {
    Summary s(2, 1s);
    const auto t0 = Summary::Clock::now();
    EXPECT_TRUE(s.record(0, t0).log);
    for (int i = 1; i <= 5; ++i) EXPECT_FALSE(s.record(0, t0 + i * 100ms).log);
    EXPECT_TRUE(s.record(1, t0 + 500ms).log) << "kinds are independent";
    const auto next = s.record(0, t0 + 1s);
    EXPECT_TRUE(next.log);
    EXPECT_EQ(next.repeated, 5u);
    EXPECT_FALSE(s.record(0, t0 + 1500ms).log);
    EXPECT_TRUE(flush(s, t0 + 1999ms).empty()) << "the second is not over yet";
}

TEST(WarnSummary, FlushWritesAnEndedBurstsCountAndKeepsTheLimit) {
    Summary s(3, 1s);
    const auto t0 = Summary::Clock::now();
    s.record(2, t0);
    s.record(2, t0 + 10ms);
    s.record(2, t0 + 20ms);
    const auto lines = flush(s, t0 + 1s);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].kind, 2u);
    EXPECT_EQ(lines[0].count, 2u);
    // That flush was this kind's line: a failure right after it waits for the next second.
    EXPECT_FALSE(s.record(2, t0 + 1100ms).log);
    EXPECT_EQ(flush(s, t0 + 2s).at(0).count, 1u);
    // A second with nothing pending closes the interval: the next failure is logged at once.
    EXPECT_TRUE(flush(s, t0 + 3s).empty());
    const auto fresh = s.record(2, t0 + 3100ms);
    EXPECT_TRUE(fresh.log);
    EXPECT_EQ(fresh.repeated, 0u);
}

TEST(WarnSummary, FlushAllAtExitLosesNothing) {
    Summary s(1, 1s);
    const auto t0 = Summary::Clock::now();
    s.record(0, t0);
    s.record(0, t0 + 1ms);
    EXPECT_TRUE(flush(s, t0 + 2ms).empty());
    const auto lines = flush(s, t0 + 2ms, /*all=*/true);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].count, 1u);
    EXPECT_TRUE(flush(s, t0 + 5s, true).empty());
}

TEST(WarnSummary, ManyThreadsOneLineEveryOccurrenceCounted) {
    Summary s(1, 1s);
    const auto t0 = Summary::Clock::now();
    std::atomic<std::uint64_t> lines{0}, carried{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 20'000; ++i) {
                const auto d = s.record(0, t0 + std::chrono::milliseconds(i / 8));  // 2.5 s of failures
                if (d.log) lines += 1, carried += d.repeated;
            }
        });
    }
    for (auto& t : threads) t.join();
    std::uint64_t flushed = 0;
    for (const auto& f : flush(s, t0 + 10s, true)) flushed += f.count;
    EXPECT_EQ(lines + carried + flushed, 160'000u);
    EXPECT_LE(lines.load(), 3u);  // one per second of the run
}

// ---- The binary against a dead upstream ----

struct LogCounts {
    std::size_t access = 0;       // "request" lines with status 502
    std::size_t warn_lines = 0;   // warn lines about connect_failed
    std::uint64_t accounted = 0;  // failures those warn lines stand for
};

LogCounts count(const std::string& log) {
    LogCounts c;
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);) {
        rapidjson::Document d;
        if (d.Parse(line.c_str()).HasParseError() || !d.IsObject()) continue;
        const std::string level = d["level"].GetString(), msg = d["msg"].GetString();
        if (msg == "request" && d["status"].GetUint() == 502) ++c.access;
        if (level != "warn") continue;
        const std::uint64_t repeated = d.HasMember("repeated") ? d["repeated"].GetUint64() : 0;
        if (msg == "crudcast answered itself") {
            ++c.warn_lines;
            c.accounted += 1 + repeated;
        } else if (msg == "upstream failures repeated") {
            EXPECT_STREQ(d["kind"].GetString(), "connect_failed") << line;
            ++c.warn_lines;
            c.accounted += repeated;
        }
    }
    return c;
}

TEST(FailureLog, ADeadUpstreamUnderLoadWritesAFewWarnLinesThatCountEveryFailure) {
    const auto port = free_port();
    const auto dead = free_port();
    ChildProcess crudcast(CRUDCAST_BINARY, {"--listen", "127.0.0.1:" + std::to_string(port), "--upstream",
                                            "http://127.0.0.1:" + std::to_string(dead), "--admin-listen", "off",
                                            "--log-format", "json", "--threads", "2"});
    ASSERT_TRUE(crudcast.wait_for_stderr("crudcast started"));
    constexpr int clients = 4, each = 125;
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    std::atomic<int> bad_gateways{0};
    for (int t = 0; t < clients; ++t) {
        threads.emplace_back([&] {
            Client client(port);
            for (int i = 0; i < each; ++i)
                if (client.roundtrip(get_request("/down")).status == 502) ++bad_gateways;
        });
    }
    for (auto& t : threads) t.join();
    const auto took = std::chrono::steady_clock::now() - started;
    ASSERT_EQ(bad_gateways.load(), clients * each);

    // While crudcast still runs, the access lines and the timer's flush of the burst's count arrive.
    LogCounts c;
    for (const auto deadline = std::chrono::steady_clock::now() + default_timeout;
         std::chrono::steady_clock::now() < deadline;) {
        c = count(crudcast.stderr_text());
        if (c.access == clients * each && c.accounted == clients * each) break;
        std::this_thread::sleep_for(20ms);  // polling the child's log: no signal exists for "a line was written"
    }
    EXPECT_EQ(c.access, std::size_t{clients * each});
    EXPECT_EQ(c.accounted, std::uint64_t{clients * each});
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(took).count();
    EXPECT_LE(c.warn_lines, static_cast<std::size_t>(seconds + 3)) << "run took " << seconds << " s";
    std::printf("[ figures  ] %d failures in %lld ms: %zu access lines, %zu warn lines\n", clients * each,
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()), c.access,
                c.warn_lines);

    crudcast.signal(SIGTERM);
    EXPECT_EQ(crudcast.wait(), 0);
    crudcast.wait_for_stderr("\n");  // no line holds a newline: this waits for the end of stderr
    EXPECT_EQ(count(crudcast.stderr_text()).accounted, std::uint64_t{clients * each}) << "nothing counted twice";
}

}  // namespace
