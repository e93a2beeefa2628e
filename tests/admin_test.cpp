// admin_test.cpp: the admin listener over real sockets: /healthz, /readyz flipping as the upstream
// dies and returns, /metrics moving as requests and events happen.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <regex>
#include <sstream>

#include "testkit.hpp"

namespace crudcast {
namespace {

using namespace testkit;

// /readyz follows a probe that runs every second; nothing signals its result, so the test polls
// the endpoint (bounded by `timeout`) until it says what is expected.
bool readyz_becomes(std::uint16_t admin, unsigned status, Duration timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (exchange(admin, get_request("/readyz")).status == status) return true;
        std::this_thread::sleep_for(50ms);
    }
    return false;
}

double metric(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
}

class Admin : public ::testing::Test {
protected:
    void SetUp() override {
        upstream_ = std::make_unique<RawUpstream>([](const RecordedRequest& r) {
            HeaderList h;
            h.items.emplace_back("Content-Type", "application/json");
            return UpstreamReply{UpstreamReply::Kind::respond,
                                 http_response(r.method == "POST" ? 201 : 200, "OK", h, R"({"id":3})"), {}, false};
        });
        auto cfg = test_config(upstream_->port());
        cfg.admin_listen = config::Endpoint{"127.0.0.1", 0};
        gateway_ = start_gateway(cfg);
        admin_ = gateway_->admin_port();
        ASSERT_NE(admin_, 0);
    }

    std::unique_ptr<RawUpstream> upstream_;
    std::unique_ptr<gateway::Gateway> gateway_;
    std::uint16_t admin_ = 0;
};

TEST_F(Admin, HealthzAnswersWhileTheProcessServes) {
    auto r = exchange(admin_, get_request("/healthz"));
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, "ok\n");
    EXPECT_EQ(exchange(admin_, get_request("/nope")).status, 404u);
    EXPECT_EQ(upstream_->request_count(), 0u);  // the admin port never reaches the upstream
}

TEST_F(Admin, ReadyzFlipsWhenTheUpstreamDiesAndReturns) {
    ASSERT_TRUE(readyz_becomes(admin_, 200));
    const auto port = upstream_->port();
    upstream_.reset();  // the upstream dies
    ASSERT_TRUE(readyz_becomes(admin_, 503));
    auto down = exchange(admin_, get_request("/readyz"));
    EXPECT_NE(down.body.find("connect to 127.0.0.1:" + std::to_string(port) + " failed"), std::string::npos)
        << down.body;
    upstream_ = std::make_unique<RawUpstream>(RawUpstream::Handler{}, port);  // and returns
    EXPECT_TRUE(readyz_becomes(admin_, 200));
}

TEST_F(Admin, MetricsMoveWithRequestsAndEvents) {
    const auto before = exchange(admin_, get_request("/metrics"));
    EXPECT_EQ(before.status, 200u);
    EXPECT_NE(before.headers.get("Content-Type").find("text/plain; version=0.0.4"), std::string::npos);
    const std::string gets = "crudcast_http_requests_total{method=\"GET\",class=\"2xx\"}";
    const std::string posts = "crudcast_events_published_total{model=\"author\",method=\"POST\"}";
    const double gets_before = metric(before.body, gets);
    EXPECT_EQ(gets_before, 0);
    EXPECT_EQ(metric(before.body, posts), -1);  // no such series yet

    for (int i = 0; i < 3; ++i) EXPECT_EQ(exchange(gateway_->port(), get_request("/api/authors")).status, 200u);
    EXPECT_EQ(exchange(gateway_->port(), "POST /api/authors HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                                         "Content-Length: 2\r\n\r\n{}")
                  .status,
              201u);
    const auto after = exchange(admin_, get_request("/metrics")).body;
    EXPECT_EQ(metric(after, gets), gets_before + 3);
    EXPECT_EQ(metric(after, posts), 1);
    EXPECT_EQ(metric(after, "crudcast_events_skipped_total{reason=\"method\"}"), 3);
    EXPECT_EQ(metric(after, "crudcast_upstream_response_seconds_count"), 4);
    EXPECT_GE(metric(after, "crudcast_upstream_pool_hits_total") + metric(after, "crudcast_upstream_pool_misses_total"), 4);

    // Every line is a comment or `name{labels} value` (promtool's full check: a later change).
    std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+\-]+$)");
    std::istringstream lines(after);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty() || line[0] == '#') continue;
        EXPECT_TRUE(std::regex_match(line, sample)) << line;
    }
}

TEST_F(Admin, MetricsPassPromtool) {
    if (::access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool (Debian prometheus) is not installed";
    // Some traffic first, so that labelled families have samples.
    exchange(gateway_->port(), get_request("/api/authors"));
    exchange(gateway_->port(), "POST /api/authors HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                               "Content-Length: 2\r\n\r\n{}");
    const auto text = exchange(admin_, get_request("/metrics")).body;
    char path[] = "/tmp/crudcast-metrics-XXXXXX";
    const int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ::close(fd);
    const std::string command = std::string("/usr/bin/promtool check metrics < ") + path + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string output;
    char buf[512];
    while (std::fgets(buf, sizeof buf, pipe)) output += buf;
    const int status = ::pclose(pipe);
    ::unlink(path);
    EXPECT_EQ(status, 0) << output;
    EXPECT_EQ(output, "") << output;  // promtool prints nothing when the exposition is clean
}

}  // namespace
}  // namespace crudcast
