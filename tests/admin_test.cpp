// admin_test.cpp: the admin listener over real sockets: /healthz, /readyz flipping as the upstream
// dies and returns, /metrics moving as requests and events happen, the live page and the JSON it
// polls (/api/stats, /api/requests, /api/info), every declared counter and no-event reason in both
// /metrics and /api/stats; and the per-thread ring of recent requests.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <rapidjson/document.h>

#include "common/stats.hpp"
#include "gateway/admin/admin_api.hpp"
#include "gateway/admin/admin_server.hpp"
#include "gateway/events/event_counters.hpp"
#include "gateway/ws/ws_counters.hpp"
#include "proxy/counters.hpp"
#include "proxy/recent_requests.hpp"
#include "testkit.hpp"

namespace crudcast {
namespace {

using namespace testkit;

// /readyz follows a probe that runs every second; nothing signals its result, so the test polls
// the endpoint (bounded by `timeout`) until it says what is expected.
bool readyz_becomes(std::uint16_t admin, unsigned status, Duration timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (exchange(admin, admin_request("/readyz")).status == status) return true;
        std::this_thread::sleep_for(50ms);
    }
    return false;
}

double metric(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
}

rapidjson::Document parse_json(const std::string& text) {
    rapidjson::Document doc;
    doc.Parse(text.c_str(), text.size());
    EXPECT_FALSE(doc.HasParseError()) << text;
    return doc;
}

// The access line (and with it the counters and the recent-requests record) is written just after
// the response's last byte, so a client may read the response a moment before: poll, bounded.
template <class Predicate>
rapidjson::Document poll_json(std::uint16_t admin, const std::string& path, Predicate done, Duration timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto doc = parse_json(exchange(admin, admin_request(path)).body);
        if (done(doc) || std::chrono::steady_clock::now() >= deadline) return doc;
        std::this_thread::sleep_for(20ms);
    }
}

class Admin : public ::testing::Test {
protected:
    void SetUp() override {
        upstream_ = std::make_unique<RawUpstream>([](const RecordedRequest& r) {
            HeaderList h;
            h.items.emplace_back("Content-Type", "application/json");
            return UpstreamReply{UpstreamReply::Kind::respond,
                                 http_response(r.method == "POST" ? 201 : 200, "OK", h, R"({"id":3})"),
                                 {},
                                 false};
        });
        auto cfg = test_config(upstream_->port());
        cfg.admin_listen = config::Endpoint{"127.0.0.1", 0};
        cfg.admin_allowed_hosts = {"crudcast-admin.internal"};
        gateway_ = start_gateway(cfg);
        admin_ = gateway_->admin_port();
        ASSERT_NE(admin_, 0);
    }

    std::unique_ptr<RawUpstream> upstream_;
    std::unique_ptr<gateway::Gateway> gateway_;
    std::uint16_t admin_ = 0;
};

TEST_F(Admin, HealthzAnswersWhileTheProcessServes) {
    auto r = exchange(admin_, admin_request("/healthz"));
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, "ok\n");
    EXPECT_EQ(exchange(admin_, admin_request("/nope")).status, 404u);
    EXPECT_EQ(exchange(admin_, admin_request("/api/nope")).status, 404u);
    EXPECT_EQ(exchange(admin_, admin_request("/index.html")).status, 404u);
    EXPECT_EQ(upstream_->request_count(), 0u);  // the admin port never reaches the upstream
}

// DNS rebinding: a page on evil.example (resolving to 127.0.0.1) sends Host: evil.example. Only
// addresses, localhost and admin-allowed-hosts names are answered, on every path.
TEST_F(Admin, AnswersOnlyAddressesLocalhostAndAllowedNamesAsHost) {
    const std::string port = std::to_string(admin_);
    struct Row {
        std::string head;  // request line version and header lines after the target
        unsigned status;
    };
    const std::vector<Row> rows = {
        {"HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\n", 200},
        {"HTTP/1.1\r\nHost: 127.0.0.1\r\n", 200},
        {"HTTP/1.1\r\nHost: [::1]:" + port + "\r\n", 200},
        {"HTTP/1.1\r\nHost: [::1]\r\n", 200},
        {"HTTP/1.1\r\nHost: 10.1.2.3:" + port + "\r\n", 200},  // a pod IP, as the kubelet sends it
        {"HTTP/1.1\r\nHost: localhost:" + port + "\r\n", 200},
        {"HTTP/1.1\r\nHost: LocalHost\r\n", 200},
        {"HTTP/1.1\r\nHost: crudcast-admin.internal\r\n", 200},
        {"HTTP/1.1\r\nHost: CrudCast-Admin.Internal:" + port + "\r\n", 200},
        {"HTTP/1.0\r\n", 200},  // HTTP/1.0 may leave Host out; no browser does
        {"HTTP/1.1\r\nHost: evil.example:" + port + "\r\n", 421},
        {"HTTP/1.1\r\nHost: evil.example\r\n", 421},
        {"HTTP/1.1\r\nHost: localhost.evil.example\r\n", 421},
        {"HTTP/1.1\r\nHost: 127.0.0.1.evil.example\r\n", 421},
        {"HTTP/1.1\r\nHost: crudcast-admin.internal.evil.example\r\n", 421},
        {"HTTP/1.1\r\nHost: user@127.0.0.1\r\n", 421},
        {"HTTP/1.1\r\nHost: \r\n", 421},
        {"HTTP/1.1\r\n", 421},  // HTTP/1.1 without Host
        {"HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n", 421},
    };
    for (const std::string target : {"/", "/metrics", "/api/stats", "/api/requests", "/api/info", "/healthz"}) {
        for (const auto& row : rows) {
            const auto r = exchange(admin_, "GET " + target + " " + row.head + "Connection: close\r\n\r\n");
            EXPECT_EQ(r.status, row.status) << target << " " << row.head;
            if (row.status != 421) continue;
            EXPECT_EQ(r.headers.get("Content-Type"), "application/json") << row.head;
            const auto doc = parse_json(r.body);
            ASSERT_TRUE(doc.IsObject()) << r.body;
            EXPECT_EQ(std::string(doc["error"].GetString()), "misdirected_request") << r.body;
            EXPECT_TRUE(doc["detail"].IsString()) << r.body;
            EXPECT_EQ(r.body.find("crudcast_"), std::string::npos) << "nothing of /metrics leaks: " << r.body;
        }
    }
    // A refused request does not end a keep-alive connection; the next one with a good Host is answered.
    Client client(admin_);
    EXPECT_EQ(client.roundtrip("GET /metrics HTTP/1.1\r\nHost: evil.example\r\n\r\n").status, 421u);
    EXPECT_EQ(client.roundtrip(admin_request("/metrics")).status, 200u);
}

TEST(AdminHost, AddressesLocalhostAndListedNames) {
    const std::vector<std::string> allowed = {"admin.example"};
    for (const char* host :
         {"127.0.0.1", "127.0.0.1:9901", "0.0.0.0:1", "[::1]", "[::1]:9901", "[fd00::5]:80", "[::ffff:127.0.0.1]",
          "localhost", "LOCALHOST:9901", "admin.example", "Admin.Example:443", "localhost:"})
        EXPECT_TRUE(gateway::host_allowed(host, allowed)) << host;
    for (const char* host : {"", "evil.example", "evil.example:9901", "admin.example.evil", "localhost.evil",
                             "127.0.0.1.nip.io", "[::1", "[v1.x]", "::1", "u@localhost", "localhost:x",
                             "127.0.0.1:9901/", "localhost%00", "admin%2eexample", "1.2.3.4.5"})
        EXPECT_FALSE(gateway::host_allowed(host, allowed)) << host;
    EXPECT_FALSE(gateway::host_allowed("admin.example", {}));
}

TEST_F(Admin, ReadyzFlipsWhenTheUpstreamDiesAndReturns) {
    ASSERT_TRUE(readyz_becomes(admin_, 200));
    const auto port = upstream_->port();
    upstream_.reset();  // the upstream dies
    ASSERT_TRUE(readyz_becomes(admin_, 503));
    auto down = exchange(admin_, admin_request("/readyz"));
    EXPECT_NE(down.body.find("connect to 127.0.0.1:" + std::to_string(port) + " failed"), std::string::npos)
        << down.body;
    upstream_ = std::make_unique<RawUpstream>(RawUpstream::Handler{}, port);  // and returns
    EXPECT_TRUE(readyz_becomes(admin_, 200));
}

TEST_F(Admin, MetricsMoveWithRequestsAndEvents) {
    const auto before = exchange(admin_, admin_request("/metrics"));
    EXPECT_EQ(before.status, 200u);
    EXPECT_NE(before.headers.get("Content-Type").find("text/plain; version=0.0.4"), std::string::npos);
    const std::string gets = "crudcast_http_requests_total{method=\"GET\",class=\"2xx\"}";
    const std::string posts = "crudcast_events_published_total{model=\"author\",method=\"POST\"}";
    const double gets_before = metric(before.body, gets);
    EXPECT_EQ(gets_before, 0);
    EXPECT_EQ(metric(before.body, posts), -1);  // no such series yet

    for (int i = 0; i < 3; ++i) EXPECT_EQ(exchange(gateway_->port(), get_request("/api/authors")).status, 200u);
    EXPECT_EQ(exchange(gateway_->port(),
                       "POST /api/authors HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                       "Content-Length: 2\r\n\r\n{}")
                  .status,
              201u);
    // The counters are recorded as each exchange finishes, just after its client has the last byte:
    // read /metrics until the fourth exchange shows (bounded), then check everything.
    std::string after;
    const auto deadline = std::chrono::steady_clock::now() + default_timeout;
    do {
        after = exchange(admin_, admin_request("/metrics")).body;
    } while (metric(after, "crudcast_upstream_response_seconds_count") < 4 &&
             std::chrono::steady_clock::now() < deadline);
    EXPECT_EQ(metric(after, gets), gets_before + 3);
    EXPECT_EQ(metric(after, posts), 1);
    EXPECT_EQ(metric(after, "crudcast_events_skipped_total{reason=\"method\"}"), 3);
    EXPECT_EQ(metric(after, "crudcast_upstream_response_seconds_count"), 4);
    EXPECT_GE(metric(after, "crudcast_upstream_pool_hits_total") + metric(after, "crudcast_upstream_pool_misses_total"),
              4);

    // Every line is a comment or `name{labels} value` (promtool's full check: a later change).
    std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+\-]+$)");
    std::istringstream lines(after);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty() || line[0] == '#') continue;
        EXPECT_TRUE(std::regex_match(line, sample)) << line;
    }
}

TEST_F(Admin, ServesTheEmbeddedLivePage) {
    const auto page = exchange(admin_, admin_request("/"));
    EXPECT_EQ(page.status, 200u);
    EXPECT_EQ(page.headers.get("Content-Type"), "text/html; charset=utf-8");
    EXPECT_EQ(page.headers.get("Cache-Control"), "no-store");
    EXPECT_NE(page.headers.get("Content-Security-Policy").find("default-src 'none'"), std::string::npos);
    std::ifstream file(std::string(CRUDCAST_SOURCE_DIR) + "/gateway/admin/admin_page.html", std::ios::binary);
    ASSERT_TRUE(file);
    std::ostringstream html;
    html << file.rdbuf();
    EXPECT_EQ(page.body, html.str()) << "the binary serves gateway/admin/admin_page.html byte for byte";
    EXPECT_EQ(exchange(admin_, admin_request("/?topic=author")).status, 200u);
    ReadOptions head_only;
    head_only.head_request = true;
    const auto head = exchange(admin_, "HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", head_only);
    EXPECT_EQ(head.status, 200u);
    EXPECT_EQ(head.headers.get("Content-Length"), std::to_string(html.str().size()));
}

TEST_F(Admin, InfoNamesTheProxyPortAndWsPath) {
    const auto r = exchange(admin_, admin_request("/api/info"));
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.headers.get("Content-Type"), "application/json");
    EXPECT_EQ(r.headers.get("Cache-Control"), "no-store");
    const auto info = parse_json(r.body);
    ASSERT_TRUE(info.IsObject()) << r.body;
    EXPECT_EQ(info["proxy_port"].GetUint(), gateway_->port());
    EXPECT_STREQ(info["ws_path"].GetString(), "/ws");
    EXPECT_STREQ(info["version"].GetString(), CRUDCAST_VERSION);
    EXPECT_EQ(std::string(info["upstream"].GetString()), "http://127.0.0.1:" + std::to_string(upstream_->port()));
}

TEST_F(Admin, RecentRequestsNewestFirstWithTheirEventOutcome) {
    const auto empty = exchange(admin_, admin_request("/api/requests"));
    EXPECT_EQ(empty.status, 200u);
    EXPECT_EQ(empty.headers.get("Content-Type"), "application/json");
    EXPECT_EQ(empty.headers.get("Cache-Control"), "no-store");
    EXPECT_EQ(empty.body, R"({"requests":[]})");

    EXPECT_EQ(exchange(gateway_->port(),
                       "POST /api/authors HTTP/1.1\r\nHost: t\r\nX-Request-ID: rid-post\r\n"
                       "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                  .status,
              201u);
    // The query string stays out of the record: it may carry secrets, and the page is an overview.
    EXPECT_EQ(
        exchange(gateway_->port(), get_request("/api/authors/3?token=secret", "X-Request-ID: rid-get\r\n")).status,
        200u);
    auto doc = poll_json(admin_, "/api/requests",
                         [](const rapidjson::Document& d) { return d.IsObject() && d["requests"].Size() >= 2; });
    ASSERT_TRUE(doc.IsObject());
    const auto& list = doc["requests"];
    ASSERT_EQ(list.Size(), 2u);
    const auto& get = list[0];
    EXPECT_STREQ(get["rid"].GetString(), "rid-get");
    EXPECT_STREQ(get["method"].GetString(), "GET");
    EXPECT_STREQ(get["path"].GetString(), "/api/authors/3");
    EXPECT_EQ(get["status"].GetUint(), 200u);
    EXPECT_STREQ(get["event"].GetString(), "none reason=method");
    EXPECT_GE(get["ms"].GetDouble(), 0.0);
    const auto& post = list[1];
    EXPECT_STREQ(post["rid"].GetString(), "rid-post");
    EXPECT_EQ(post["status"].GetUint(), 201u);
    EXPECT_TRUE(std::regex_match(post["event"].GetString(), std::regex(R"(author/POST id=3 seq=\d+ subs=0)")))
        << post["event"].GetString();
    EXPECT_STREQ(post["error"].GetString(), "");
    EXPECT_GE(get["ts_us"].GetInt64(), post["ts_us"].GetInt64());
}

TEST_F(Admin, StatsMoveWithRequestsEventsAndErrors) {
    const auto r = exchange(admin_, admin_request("/api/stats"));
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.headers.get("Content-Type"), "application/json");
    const auto before = parse_json(r.body);
    ASSERT_TRUE(before.IsObject()) << r.body;
    EXPECT_EQ(before["requests"]["total"].GetUint64(), 0u);
    EXPECT_EQ(before["events_published"].GetUint64(), 0u);

    EXPECT_EQ(exchange(gateway_->port(), get_request("/api/authors")).status, 200u);
    EXPECT_EQ(exchange(gateway_->port(),
                       "POST /api/authors HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                       "Content-Length: 2\r\n\r\n{}")
                  .status,
              201u);
    upstream_->set_handler([](const RecordedRequest&) { return UpstreamReply::close(); });
    EXPECT_EQ(exchange(gateway_->port(), get_request("/api/authors")).status, 502u);

    const auto after = poll_json(admin_, "/api/stats", [](const rapidjson::Document& d) {
        return d.IsObject() && d["requests"]["total"].GetUint64() >= 3;
    });
    ASSERT_TRUE(after.IsObject());
    EXPECT_EQ(after["requests"]["total"].GetUint64(), 3u);
    EXPECT_EQ(after["requests"]["2xx"].GetUint64(), 2u);
    EXPECT_EQ(after["requests"]["5xx"].GetUint64(), 1u);
    EXPECT_EQ(after["bad_gateway"].GetUint64(), 1u);
    EXPECT_EQ(after["gateway_timeout"].GetUint64(), 0u);
    EXPECT_EQ(after["events_published"].GetUint64(), 1u);
    EXPECT_EQ(after["events_published_by"]["author/POST"].GetUint64(), 1u);
    EXPECT_EQ(after["events_skipped"].GetUint64(), 1u);
    EXPECT_EQ(after["events_skipped_by"]["method"].GetUint64(), 1u);
    EXPECT_EQ(after["request_body_bytes"].GetUint64(), 2u);
    EXPECT_GT(after["response_body_bytes"].GetUint64(), 0u);
    EXPECT_EQ(after["in_flight"].GetInt64(), 0);
    for (const char* key :
         {"client_connections", "upstream_connections", "upstream_pool_hits", "upstream_pool_misses",
          "websocket_subscribers", "websocket_connections_total", "websocket_frames_sent", "websocket_slow_closes"})
        EXPECT_TRUE(after.HasMember(key) && after[key].IsNumber()) << key;
    EXPECT_TRUE(after["websocket_subscribers_by_topic"].IsObject());
}

// Each counter is declared once, with its names (proxy/counters.hpp, gateway/ws/ws_counters.hpp,
// gateway/events/event_counters.hpp), and both exporters write it from there: every declared name is in
// /metrics (with its HELP and TYPE) and in /api/stats as declared, a counter in both shows the same value
// in both, and neither has a family or key that is not declared.
TEST_F(Admin, EveryDeclaredCounterIsInMetricsAndStats) {
    std::vector<stats::Info> scalars;
    const auto collect = [&](const stats::Info& info, auto) { scalars.push_back(info); };
    proxy::ProxyCounters{}.for_each_stat(collect);
    gateway::WebSocketCounters{}.for_each_stat(collect);
    std::vector<stats::Info> declared = scalars;
    for (const auto& family :
         {proxy::ProxyCounters::responses_info, proxy::ProxyCounters::latency_info,
          gateway::EventCounters::published_info, gateway::EventCounters::skipped_info,
          gateway::WebSocketCounters::by_topic_info, gateway::WebSocketCounters::denied_info,
          gateway::WebSocketCounters::gaps_info, gateway::WebSocketCounters::history_events_info,
          gateway::WebSocketCounters::history_bytes_info, gateway::WebSocketCounters::position_info,
          bus::BusStatus::state_info, bus::BusStatus::lag_info, bus::BusStatus::lost_info, bus::BusStatus::late_info,
          bus::BusStatus::reconnects_info, bus::BusStatus::invalid_info})
        declared.push_back(family);

    // Some traffic, so that the counters are not all 0 and the labelled families have samples.
    EXPECT_EQ(exchange(gateway_->port(), get_request("/api/authors")).status, 200u);
    poll_json(admin_, "/api/stats",
              [](const rapidjson::Document& d) { return d.IsObject() && d["requests"]["total"].GetUint64() >= 1; });
    const auto metrics = exchange(admin_, admin_request("/metrics")).body;
    const auto json = parse_json(exchange(admin_, admin_request("/api/stats")).body);
    ASSERT_TRUE(json.IsObject());

    std::set<std::string> families, keys;
    for (const auto& info : declared) {
        EXPECT_FALSE(info.metric.empty() && info.json.empty()) << info.help << ": exported nowhere";
        if (!info.metric.empty()) {
            EXPECT_TRUE(families.emplace(info.metric).second) << info.metric << " declared twice";
            const auto head = "# HELP " + std::string(info.metric) + " " + std::string(info.help) + "\n# TYPE " +
                              std::string(info.metric) + " " + std::string(info.type) + "\n";
            EXPECT_NE(metrics.find(head), std::string::npos) << head;
        }
        for (const auto key : {info.json, info.json_total}) {
            if (key.empty()) continue;
            EXPECT_TRUE(keys.emplace(key).second) << key << " declared twice";
            EXPECT_TRUE(json.HasMember(std::string(key).c_str())) << key;
        }
    }
    for (const auto& info : scalars) {
        if (info.metric.empty() || info.json.empty()) continue;
        const auto& value = json[std::string(info.json).c_str()];
        ASSERT_TRUE(value.IsInt64()) << info.json;
        EXPECT_EQ(metric(metrics, std::string(info.metric)), static_cast<double>(value.GetInt64())) << info.metric;
    }
    std::istringstream lines(metrics);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.starts_with("# TYPE ")) {
            const auto name = line.substr(7, line.find(' ', 7) - 7);
            EXPECT_TRUE(families.contains(name)) << name << " is in /metrics but not declared";
        }
    }
    for (const auto& member : json.GetObject()) {
        const std::string key = member.name.GetString();
        EXPECT_TRUE(keys.contains(key)) << key << " is in /api/stats but not declared";
    }
}

// The no-event reasons come from one table (gateway/events/no_event_reason.hpp): each is a reason label
// in /metrics and a key of events_skipped_by in /api/stats, and there are no others.
TEST_F(Admin, EveryNoEventReasonIsInMetricsAndStats) {
    EXPECT_EQ(exchange(gateway_->port(), get_request("/api/authors")).status, 200u);  // reason=method
    const auto json = poll_json(admin_, "/api/stats", [](const rapidjson::Document& d) {
        return d.IsObject() && d["events_skipped"].GetUint64() >= 1;
    });
    const auto metrics = exchange(admin_, admin_request("/metrics")).body;
    ASSERT_TRUE(json.IsObject());
    const auto& by_reason = json["events_skipped_by"];
    for (const auto& row : gateway::no_event_reasons) {
        const std::string name(row.name);
        const double expected = row.reason == gateway::NoEventReason::method ? 1 : 0;
        EXPECT_EQ(metric(metrics, "crudcast_events_skipped_total{reason=\"" + name + "\"}"), expected) << name;
        ASSERT_TRUE(by_reason.HasMember(name.c_str())) << name;
        EXPECT_EQ(by_reason[name.c_str()].GetUint64(), expected) << name;
    }
    EXPECT_EQ(by_reason.MemberCount(), gateway::no_event_reasons.size());
    std::size_t samples = 0;
    for (std::size_t at = 0; (at = metrics.find("\ncrudcast_events_skipped_total{", at)) != std::string::npos; ++at)
        ++samples;
    EXPECT_EQ(samples, gateway::no_event_reasons.size());
}

TEST(RecentRequests, KeepsTheNewestUpToItsCapacity) {
    proxy::RecentRequests ring(3);
    for (int i = 1; i <= 5; ++i)
        ring.record("rid-" + std::to_string(i), "GET", "/things/" + std::to_string(i) + "?q=1", 200, 1.5, {}, "");
    std::vector<proxy::RequestRecord> out;
    ring.append_to(out);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].request_id, "rid-5");
    EXPECT_EQ(out[1].request_id, "rid-4");
    EXPECT_EQ(out[2].request_id, "rid-3");
    EXPECT_EQ(out[0].path, "/things/5");
    EXPECT_GE(out[0].time_us, out[2].time_us);
}

TEST(RecentRequests, FormatsTheEventNoteAndMergesThreadsNewestFirst) {
    proxy::RecentRequests a(4), b(4);
    a.record("a1", "POST", "/api/authors", 201, 2.0,
             {{"event", "author/POST"}, {"id", "42"}, {"seq", "17"}, {"subs", "2"}}, "");
    b.record("b1", "PATCH", "/api/authors/9", 404, 1.0, {{"event", "none"}, {"reason", "status-404"}}, "");
    a.record("a2", "GET", "/ws", 101, 0.1, {{"ws", "subscribe"}}, "");
    b.record("b2", "GET", "/x", 502, 0.3, {}, "connect to upstream failed");
    std::vector<proxy::RequestRecord> all;
    a.append_to(all);
    b.append_to(all);
    const auto merged = proxy::newest_first(all, 3);
    ASSERT_EQ(merged.size(), 3u);
    for (std::size_t i = 1; i < merged.size(); ++i) EXPECT_GE(merged[i - 1].time_us, merged[i].time_us);
    std::map<std::string, proxy::RequestRecord> by_rid;
    for (const auto& r : all) by_rid[r.request_id] = r;
    EXPECT_EQ(by_rid["a1"].event, "author/POST id=42 seq=17 subs=2");
    EXPECT_EQ(by_rid["b1"].event, "none reason=status-404");
    EXPECT_EQ(by_rid["a2"].event, "ws=subscribe");
    EXPECT_EQ(by_rid["b2"].event, "");
    EXPECT_EQ(by_rid["b2"].error, "connect to upstream failed");
}

// Paths and rids are client bytes; the page must still be able to parse what it polls. RapidJSON's
// Writer copies bytes as they are, so what is not UTF-8 becomes U+FFFD before it gets there.
TEST(AdminApi, ClientBytesThatAreNotUtf8StayParseableJson) {
    proxy::RequestRecord record;
    record.request_id = "r\"id\x01";
    record.method = "GET";
    record.path = "/caf\xc3\xa9/\xff\xc3";
    record.duration_ms = 1.9996;
    const auto text = gateway::render_requests_json({record});
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(text.c_str(), text.size());
    ASSERT_FALSE(doc.HasParseError()) << text;
    const auto& r = doc["requests"][0];
    EXPECT_EQ(std::string(r["path"].GetString()), "/caf\xc3\xa9/\xef\xbf\xbd\xef\xbf\xbd");
    EXPECT_EQ(std::string(r["rid"].GetString()), "r\"id\x01");
    EXPECT_NE(text.find("\"ms\":2.000,"), std::string::npos) << text;  // 3 decimals, rounded
}

TEST_F(Admin, MetricsPassPromtool) {
    if (::access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool (Debian prometheus) is not installed";
    // Some traffic first, so that labelled families have samples.
    exchange(gateway_->port(), get_request("/api/authors"));
    exchange(gateway_->port(),
             "POST /api/authors HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             "Content-Length: 2\r\n\r\n{}");
    const auto text = exchange(admin_, admin_request("/metrics")).body;
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
