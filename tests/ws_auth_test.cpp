// ws_auth_test.cpp: who may subscribe, over real sockets: forward auth (the API's own answer, the
// headers it gets, 401/403 passed back, narrowing, down or slow), a cookie from a foreign origin, the
// per-address handshake rate, JWT on the handshake (header and access_token, topics claim, expiry
// mid-connection), the access line without the token, and the refusal counters in /metrics.
#include <gtest/gtest.h>

#include <unistd.h>

#include <ctime>
#include <fstream>
#include <string>

#include "jwt_sign.hpp"
#include "testkit.hpp"

namespace crudcast {
namespace {

using namespace testkit;
using Clock = std::chrono::steady_clock;

std::string upgrade(std::string_view target, std::string_view extra = "") {
    return "GET " + std::string(target) +
           " HTTP/1.1\r\nHost: crudcast.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
           std::string(extra) + "\r\n";
}

// One unmasked frame from crudcast: (opcode, payload); nullopt on timeout or end.
std::optional<std::pair<unsigned, std::string>> read_frame(Socket& socket, Duration timeout = default_timeout) {
    auto head = socket.read_exactly(2, timeout);
    if (!head) return std::nullopt;
    const unsigned opcode = static_cast<unsigned char>((*head)[0]) & 0x0f;
    std::uint64_t length = static_cast<unsigned char>((*head)[1]) & 0x7f;
    if (length >= 126) {
        auto ext = socket.read_exactly(length == 126 ? 2 : 8, timeout);
        if (!ext) return std::nullopt;
        length = 0;
        for (unsigned char c : *ext) length = (length << 8) | c;
    }
    auto payload = socket.read_exactly(length, timeout);
    if (!payload) return std::nullopt;
    return std::pair{opcode, *payload};
}

UpstreamReply json_reply(int status, std::string body, HeaderList headers = {}) {
    headers.items.emplace_back("Content-Type", "application/json");
    return {UpstreamReply::Kind::respond, http_response(status, "X", headers, body), {}, false};
}

// An upstream that is also the auth endpoint (/auth/ws): `auth` answers the questions, writes echo
// their body with an id.
struct Api {
    std::function<UpstreamReply(const RecordedRequest&)> auth = [](const RecordedRequest&) {
        return json_reply(200, "{}");
    };
    RawUpstream upstream{[this](const RecordedRequest& r) {
        if (r.target.starts_with("/auth/ws")) return auth(r);
        return json_reply(201, r.body.empty() ? "{\"id\":1}" : r.body);
    }};
    std::vector<RecordedRequest> auth_requests() const {
        std::vector<RecordedRequest> out;
        for (auto& r : upstream.requests())
            if (r.target.starts_with("/auth/ws")) out.push_back(r);
        return out;
    }
};

config::Config forward_config(const Api& api) {
    auto cfg = test_config(api.upstream.port());
    cfg.ws_auth = config::WsAuth::forward;
    cfg.ws_auth_url = "/auth/ws";
    cfg.ws_auth_timeout = 2s;
    return cfg;
}

TEST(WsForwardAuth, AllowsWithTheHandshakesCredentialsAndTopics) {
    Api api;
    auto gw = start_gateway(forward_config(api));
    Client client(gw->port());
    const auto res = client.roundtrip(
        upgrade("/ws?topic=author", "Authorization: Bearer abc\r\nCookie: s=1\r\nOrigin: http://crudcast.test\r\n"));
    ASSERT_EQ(res.status, 101u);
    const auto asked = api.auth_requests();
    ASSERT_EQ(asked.size(), 1u);
    EXPECT_EQ(asked[0].method, "GET");
    EXPECT_EQ(asked[0].headers.get("Authorization"), "Bearer abc");
    EXPECT_EQ(asked[0].headers.get("Cookie"), "s=1");
    EXPECT_EQ(asked[0].headers.get("X-Forwarded-For"), "127.0.0.1");
    EXPECT_EQ(asked[0].headers.get("X-Forwarded-Host"), "crudcast.test");
    EXPECT_EQ(asked[0].headers.get("X-Crudcast-Topics"), "author");
    EXPECT_FALSE(asked[0].headers.has("Upgrade"));
}

TEST(WsForwardAuth, PassesBack401And403WithAJsonBody) {
    Api api;
    api.auth = [](const RecordedRequest& r) {
        if (r.headers.get("Authorization").empty())
            return json_reply(401, "{}", {{{"WWW-Authenticate", "Bearer realm=\"api\""}}});
        return json_reply(403, "{}");
    };
    auto gw = start_gateway(forward_config(api));
    const auto no_token = Exchange{}(gw->port(), upgrade("/ws"));
    EXPECT_EQ(no_token.status, 401u);
    EXPECT_EQ(no_token.headers.get("WWW-Authenticate"), "Bearer realm=\"api\"");
    EXPECT_NE(no_token.body.find("\"error\":\"unauthorized\""), std::string::npos) << no_token.body;
    const auto forbidden = Exchange{}(gw->port(), upgrade("/ws", "Authorization: Bearer x\r\n"));
    EXPECT_EQ(forbidden.status, 403u);
    EXPECT_NE(forbidden.body.find("\"error\":\"forbidden\""), std::string::npos) << forbidden.body;
}

TEST(WsForwardAuth, TheApisAllowTopicsHeaderNarrowsTheSubscription) {
    Api api;
    api.auth = [](const RecordedRequest&) { return json_reply(200, "{}", {{{"X-Crudcast-Allow-Topics", "author"}}}); };
    auto gw = start_gateway(forward_config(api));
    Client subscriber(gw->port());
    ASSERT_EQ(subscriber.roundtrip(upgrade("/ws?topic=author,book")).status, 101u);
    const auto post = [&](std::string_view path) {
        return Exchange{}(gw->port(), "POST " + std::string(path) +
                                          " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                          "Content-Length: 8\r\n\r\n{\"id\":7}");
    };
    ASSERT_EQ(post("/api/books").status, 201u);
    ASSERT_EQ(post("/api/authors").status, 201u);
    const auto frame = read_frame(subscriber.socket());
    ASSERT_TRUE(frame);
    // The book event was published first; the subscriber may not see it.
    EXPECT_NE(frame->second.find("\"model\":\"author\""), std::string::npos) << frame->second;
    // Nothing is allowed: refused.
    Api none;
    none.auth = [](const RecordedRequest&) { return json_reply(200, "{}", {{{"X-Crudcast-Allow-Topics", "book"}}}); };
    auto gw2 = start_gateway(forward_config(none));
    EXPECT_EQ(Exchange{}(gw2->port(), upgrade("/ws?topic=author")).status, 403u);
}

TEST(WsForwardAuth, AnEndpointThatIsDownOrSlowIs503AndCrudcastKeepsServing) {
    Api api;
    auto cfg = forward_config(api);
    cfg.ws_auth_url = "http://127.0.0.1:" + std::to_string(free_port()) + "/auth/ws";
    auto gw = start_gateway(cfg);
    const auto down = Exchange{}(gw->port(), upgrade("/ws"));
    EXPECT_EQ(down.status, 503u);
    EXPECT_NE(down.body.find("auth_unavailable"), std::string::npos) << down.body;

    Api slow;
    Gate gate;
    slow.auth = [&](const RecordedRequest&) {
        gate.wait();
        return json_reply(200, "{}");
    };
    auto slow_cfg = forward_config(slow);
    slow_cfg.ws_auth_timeout = 300ms;
    auto gw2 = start_gateway(slow_cfg);
    const auto started = Clock::now();
    EXPECT_EQ(Exchange{}(gw2->port(), upgrade("/ws")).status, 503u);
    EXPECT_LT(Clock::now() - started, 3s);
    EXPECT_EQ(Exchange{}(gw2->port(), get_request("/api/authors")).status, 201u);  // proxying goes on
    gate.open();
}

TEST(WsForwardAuth, ACookieFromAForeignOriginIsRefusedBeforeTheApiIsAsked) {
    Api api;
    auto gw = start_gateway(forward_config(api));
    const auto foreign =
        Exchange{}(gw->port(), upgrade("/ws", "Cookie: session=1\r\nOrigin: https://evil.example\r\n"));
    EXPECT_EQ(foreign.status, 403u);
    EXPECT_NE(foreign.body.find("origin_not_allowed"), std::string::npos) << foreign.body;
    EXPECT_TRUE(api.auth_requests().empty());
    // The same origin with cookies, and a foreign one without cookies, are asked about.
    EXPECT_EQ(Exchange{}(gw->port(), upgrade("/ws", "Cookie: session=1\r\nOrigin: http://crudcast.test\r\n")).status,
              101u);
    EXPECT_EQ(Exchange{}(gw->port(), upgrade("/ws", "Origin: https://evil.example\r\n")).status, 101u);
    EXPECT_EQ(api.auth_requests().size(), 2u);
}

TEST(HandshakeRate, AnAddressOverItsBurstGets429WithRetryAfterAndACounter) {
    Api api;
    auto cfg = test_config(api.upstream.port());
    cfg.ws_handshake_rate = 1;
    cfg.ws_handshake_burst = 2;
    cfg.admin_listen = config::Endpoint{"127.0.0.1", 0};
    auto gw = start_gateway(cfg);
    Client a(gw->port()), b(gw->port());
    EXPECT_EQ(a.roundtrip(upgrade("/ws")).status, 101u);
    EXPECT_EQ(b.roundtrip(upgrade("/ws")).status, 101u);
    const auto third = Exchange{}(gw->port(), upgrade("/ws"));
    EXPECT_EQ(third.status, 429u);
    EXPECT_EQ(third.headers.get("Retry-After"), "1");
    EXPECT_NE(third.body.find("too_many_handshakes"), std::string::npos) << third.body;
    // Plain requests are not counted against it.
    EXPECT_EQ(Exchange{}(gw->port(), get_request("/api/authors")).status, 201u);
    const auto metrics = Exchange{}(gw->admin_port(), admin_request("/metrics"));
    EXPECT_NE(metrics.body.find("crudcast_websocket_denied_total{reason=\"rate_limited\"} 1"), std::string::npos);
}

TEST(AccessLine, AnAccessTokenInTheQueryIsRedactedButForwardedAsSent) {
    Api api;
    const auto port = free_port();
    ChildProcess crudcast(CRUDCAST_BINARY, {"--upstream", "http://127.0.0.1:" + std::to_string(api.upstream.port()),
                                            "--listen", "127.0.0.1:" + std::to_string(port), "--admin-listen", "off"});
    ASSERT_TRUE(crudcast.wait_for_stderr("crudcast started"));
    ASSERT_EQ(Exchange{}(port, get_request("/api/authors?x=1&access_token=SECRET-123&y=2")).status, 201u);
    ASSERT_EQ(Exchange{}(port, upgrade("/ws?access_token=SECRET-456")).status, 101u);
    EXPECT_EQ(api.upstream.request(0).target, "/api/authors?x=1&access_token=SECRET-123&y=2");
    const auto api_line = crudcast.wait_for_stderr("method=GET target=\"/api/authors");
    ASSERT_TRUE(api_line);
    EXPECT_NE(api_line->find("/api/authors?x=1&access_token=REDACTED&y=2"), std::string::npos) << *api_line;
    const auto ws_line = crudcast.wait_for_stderr("ws=subscribe");
    ASSERT_TRUE(ws_line);
    EXPECT_NE(ws_line->find("/ws?access_token=REDACTED\""), std::string::npos) << *ws_line;
    EXPECT_EQ(crudcast.stderr_text().find("SECRET"), std::string::npos);
}

TEST(StartLine, WsAuthNoneOnAPublicAddressWarnsOnce) {
    ChildProcess open(CRUDCAST_BINARY,
                      {"--upstream", "http://127.0.0.1:1", "--listen", "0.0.0.0:0", "--admin-listen", "off"});
    EXPECT_TRUE(open.wait_for_stderr("events are readable by anyone"));
    ChildProcess local(CRUDCAST_BINARY,
                       {"--upstream", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--admin-listen", "off"});
    ASSERT_TRUE(local.wait_for_stderr("crudcast started"));
    EXPECT_EQ(local.stderr_text().find("events are readable"), std::string::npos);
}

// ---- ws-auth jwt ----

const std::string secret = "a-test-secret-of-at-least-32-bytes-for-hs256";

std::string secret_file() {
    char path[] = "/tmp/crudcast-jwt-secret-XXXXXX";
    const int fd = ::mkstemp(path);
    EXPECT_GE(fd, 0);
    ::close(fd);
    std::ofstream(path) << secret << "\n";  // the trailing newline is not part of the key
    return path;
}

std::string token(const std::string& claims) {
    return sign_jwt(R"({"alg":"HS256","typ":"JWT"})", claims, nullptr, secret);
}

long long now_s() { return static_cast<long long>(std::time(nullptr)); }

struct JwtStack {
    Api api;
    std::string key = secret_file();
    std::unique_ptr<gateway::Gateway> gw;
    explicit JwtStack(std::chrono::milliseconds leeway = 30s) {
        auto cfg = test_config(api.upstream.port());
        cfg.ws_auth = config::WsAuth::jwt;
        cfg.jwt_secret_file = key;
        cfg.jwt_leeway = leeway;
        cfg.admin_listen = config::Endpoint{"127.0.0.1", 0};
        gw = start_gateway(cfg);
    }
    ~JwtStack() { ::unlink(key.c_str()); }
    Response handshake(std::string_view target, const std::string& headers = "") {
        return Exchange{}(gw->port(), upgrade(target, headers));
    }
};

TEST(WsJwt, ATokenInTheHeaderOrTheQueryIsAdmittedAndNoneOrABadOneIs401) {
    JwtStack s;
    const auto good = token(R"({"sub":"alice","exp":)" + std::to_string(now_s() + 600) + "}");
    EXPECT_EQ(s.handshake("/ws", "Authorization: Bearer " + good + "\r\n").status, 101u);
    EXPECT_EQ(s.handshake("/ws?access_token=" + good).status, 101u);

    const auto missing = s.handshake("/ws");
    EXPECT_EQ(missing.status, 401u);
    EXPECT_EQ(missing.headers.get("WWW-Authenticate"), "Bearer realm=\"crudcast\"");
    EXPECT_NE(missing.body.find("\"error\":\"unauthorized\""), std::string::npos) << missing.body;

    const auto other_key =
        sign_jwt(R"({"alg":"HS256"})", R"({"sub":"mallory"})", nullptr, "another-secret-of-at-least-32-bytes-long!!");
    const auto forged = s.handshake("/ws", "Authorization: Bearer " + other_key + "\r\n");
    EXPECT_EQ(forged.status, 401u);
    EXPECT_NE(forged.headers.get("WWW-Authenticate").find("invalid_token"), std::string::npos);
    const auto none = sign_jwt(R"({"alg":"none"})", R"({"sub":"mallory"})", nullptr, "");
    EXPECT_EQ(s.handshake("/ws?access_token=" + none).status, 401u);
    const auto expired = token(R"({"exp":)" + std::to_string(now_s() - 3600) + "}");
    EXPECT_EQ(s.handshake("/ws?access_token=" + expired).status, 401u);
    // Both ways at once is ambiguous: refused.
    EXPECT_EQ(s.handshake("/ws?access_token=" + good, "Authorization: Bearer " + good + "\r\n").status, 401u);

    const auto metrics = Exchange{}(s.gw->admin_port(), admin_request("/metrics")).body;
    for (const auto* row : {"reason=\"token_missing\"} 1", "reason=\"bad_signature\"} 1", "reason=\"algorithm\"} 1",
                            "reason=\"expired\"} 1", "reason=\"malformed\"} 1"})
        EXPECT_NE(metrics.find(std::string("crudcast_websocket_denied_total{") + row), std::string::npos) << row;
}

TEST(WsJwt, TheTopicsClaimBoundsWhatTheHolderMaySubscribeTo) {
    JwtStack s;
    const auto authors = token(R"({"topics":["author"]})");
    EXPECT_EQ(s.handshake("/ws?topic=author&access_token=" + authors).status, 101u);
    const auto book = s.handshake("/ws?topic=author,book&access_token=" + authors);
    EXPECT_EQ(book.status, 403u);
    EXPECT_NE(book.body.find("topic book"), std::string::npos) << book.body;
    EXPECT_EQ(s.handshake("/ws?access_token=" + authors).status, 403u);  // all, when the claim is narrower
    EXPECT_EQ(s.handshake("/ws?access_token=" + token(R"({"topics":"*"})")).status, 101u);
    EXPECT_EQ(s.handshake("/ws?access_token=" + token(R"({"topics":42})")).status, 403u);
}

TEST(WsJwt, ATokenThatExpiresDuringTheConnectionClosesItWith1008) {
    JwtStack s(0s);
    const auto soon = token(R"({"exp":)" + std::to_string(now_s() + 2) + "}");
    Client subscriber(s.gw->port());
    ASSERT_EQ(subscriber.roundtrip(upgrade("/ws?access_token=" + soon)).status, 101u);
    const auto started = Clock::now();
    const auto frame = read_frame(subscriber.socket(), 10s);
    ASSERT_TRUE(frame);
    EXPECT_EQ(frame->first, 8u);  // close
    ASSERT_GE(frame->second.size(), 2u);
    EXPECT_EQ((static_cast<unsigned char>(frame->second[0]) << 8) | static_cast<unsigned char>(frame->second[1]), 1008);
    EXPECT_EQ(frame->second.substr(2), "token expired");
    EXPECT_LT(Clock::now() - started, 4s);
    const auto metrics = Exchange{}(s.gw->admin_port(), admin_request("/metrics")).body;
    EXPECT_NE(metrics.find("crudcast_websocket_credential_expiries_total 1"), std::string::npos);
}

TEST(WsJwt, AnUnreadableKeyFileIsAConfigurationErrorNamingTheSetting) {
    ChildProcess crudcast(CRUDCAST_BINARY,
                          {"--upstream", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--admin-listen", "off",
                           "--ws-auth", "jwt", "--jwt-secret-file", "/nonexistent/crudcast-secret"});
    EXPECT_EQ(crudcast.wait(), 2);
    EXPECT_NE(crudcast.stderr_text().find("invalid setting jwt-secret-file"), std::string::npos)
        << crudcast.stderr_text();
}

}  // namespace
}  // namespace crudcast
