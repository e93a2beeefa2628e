// request_id_log_test.cpp: "every log line of a request carries its request id", checked on the
// real binary at --log-level debug with JSON logs: an event, skipped events (method, status 404),
// a 502 after a retry, a replaced X-Request-ID and a WebSocket subscriber. Every line that is not
// about the process or a bare connection must name the rid of a request the test made, and each
// request's own lines must be there with its rid.
#include <gtest/gtest.h>

#include <csignal>
#include <set>
#include <sstream>

#include <rapidjson/document.h>

#include "testkit.hpp"

namespace crudcast {
namespace {

using namespace testkit;

// Lines about the process or a TCP connection before any request was read: no request id exists.
const std::set<std::string> request_free_messages = {"crudcast started",
                                                     "memory allocator",
                                                     "file descriptor limit",
                                                     "file descriptor limit below what max-connections may need",
                                                     "signal received, shutting down gracefully",
                                                     "draining: no new connections; finishing in-flight requests",
                                                     "crudcast stopped",
                                                     "client connected",
                                                     "client connection closed",
                                                     "client closed the connection mid-header"};

UpstreamReply json_reply(int status, std::string_view reason, std::string_view body) {
    HeaderList h;
    h.items.emplace_back("Content-Type", "application/json");
    return {UpstreamReply::Kind::respond, http_response(status, reason, h, body), {}, false};
}

std::string request(std::string_view method, std::string_view target, std::string_view rid,
                    std::string_view body = "") {
    std::string out = std::string(method) + " " + std::string(target) +
                      " HTTP/1.1\r\nHost: t\r\nX-Request-ID: " + std::string(rid) + "\r\n";
    if (!body.empty())
        out += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    return out + "\r\n" + std::string(body);
}

// The access line of the request with this target (the only line with "target" then "status").
std::string access_line_of(std::string_view target) { return "\"target\":\"" + std::string(target) + "\",\"status\":"; }

TEST(RequestIdInLogs, EveryLineOfARequestCarriesItsRid) {
    RawUpstream upstream([](const RecordedRequest& r) {
        if (r.target.starts_with("/api/boom")) return UpstreamReply::close();
        if (r.method == "POST") return json_reply(201, "Created", R"({"id":7,"name":"Ada"})");
        if (r.target.starts_with("/api/authors/404")) return json_reply(404, "Not Found", R"({"error":"nope"})");
        return json_reply(200, "OK", R"([])");
    });
    const auto port = std::to_string(free_port());
    ChildProcess crudcast(CRUDCAST_BINARY, {"--listen", "127.0.0.1:" + port, "--upstream",
                                            "http://127.0.0.1:" + std::to_string(upstream.port()), "--admin-listen",
                                            "off", "--log-level", "debug", "--log-format", "json", "--threads", "2"});
    ASSERT_TRUE(crudcast.wait_for_stderr("crudcast started"));
    const auto proxy = static_cast<std::uint16_t>(std::stoi(port));

    // A subscriber, so the event has somewhere to go and the WebSocket lines show up.
    Socket ws = Socket::connect(proxy);
    ASSERT_TRUE(
        ws.send_all("GET /ws?topic=author HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    "X-Request-ID: rid-ws\r\n\r\n"));
    const auto head = ws.read_until("\r\n\r\n", default_timeout);
    ASSERT_TRUE(head && head->starts_with("HTTP/1.1 101")) << head.value_or("(nothing)");
    ASSERT_TRUE(crudcast.wait_for_stderr("\"msg\":\"websocket connected\""));

    // One keep-alive connection: the 502 below then comes from a pooled connection (a retry).
    Client client(proxy);
    EXPECT_EQ(client.roundtrip(request("POST", "/api/authors?step=event", "rid-event", R"({"name":"Ada"})")).status,
              201u);
    ASSERT_TRUE(crudcast.wait_for_stderr(access_line_of("/api/authors?step=event")));
    EXPECT_EQ(client.roundtrip(request("GET", "/api/authors?step=skip", "rid-skip")).status, 200u);
    ASSERT_TRUE(crudcast.wait_for_stderr(access_line_of("/api/authors?step=skip")));
    EXPECT_EQ(client.roundtrip(request("PATCH", "/api/authors/404?step=status", "rid-404", R"({"a":1})")).status, 404u);
    ASSERT_TRUE(crudcast.wait_for_stderr(access_line_of("/api/authors/404?step=status")));
    EXPECT_EQ(client.roundtrip(request("GET", "/api/boom?step=502", "rid-502")).status, 502u);
    ASSERT_TRUE(crudcast.wait_for_stderr(access_line_of("/api/boom?step=502")));
    Client other(proxy);
    const auto replaced = other.roundtrip(request("GET", "/api/authors?step=replaced", "not an acceptable id"));
    EXPECT_EQ(replaced.status, 200u);
    const auto generated = replaced.headers.get("X-Request-ID");
    ASSERT_EQ(generated.size(), 32u) << generated;
    ASSERT_TRUE(crudcast.wait_for_stderr(access_line_of("/api/authors?step=replaced")));
    ws.close();
    ASSERT_TRUE(crudcast.wait_for_stderr("\"msg\":\"websocket disconnected\""));

    crudcast.signal(SIGTERM);
    ASSERT_EQ(crudcast.wait(), 0);

    const std::set<std::string> rids = {"rid-ws", "rid-event", "rid-skip", "rid-404", "rid-502", generated};
    std::map<std::string, std::set<std::string>> messages_by_rid;
    std::istringstream lines(crudcast.stderr_text());
    std::string line;
    std::size_t request_lines = 0;
    while (std::getline(lines, line)) {
        if (line.empty()) continue;
        rapidjson::Document doc;
        doc.Parse(line.c_str(), line.size());
        ASSERT_FALSE(doc.HasParseError()) << "not a JSON log line: " << line;
        const std::string msg = doc["msg"].GetString();
        if (request_free_messages.contains(msg)) {
            EXPECT_FALSE(doc.HasMember("rid")) << line;
            continue;
        }
        ++request_lines;
        ASSERT_TRUE(doc.HasMember("rid") && doc["rid"].IsString())
            << "a line about a request without its rid: " << line;
        const std::string rid = doc["rid"].GetString();
        EXPECT_TRUE(rids.contains(rid)) << "a rid no request had: " << line;
        messages_by_rid[rid].insert(msg);
    }
    EXPECT_GE(request_lines, 15u);  // the debug lines really were there

    using Set = std::set<std::string>;
    auto has = [&](const std::string& rid, const Set& expected) {
        const auto& got = messages_by_rid[rid];
        for (const auto& m : expected) EXPECT_TRUE(got.contains(m)) << rid << " has no line \"" << m << "\"";
    };
    has("rid-ws", {"request", "websocket connected", "websocket disconnected"});
    has("rid-event", {"request", "pool: miss, opening upstream connection", "pool: connected to upstream"});
    has("rid-skip", {"request", "no event", "pool: hit, reusing upstream connection"});
    has("rid-404", {"request", "no event"});
    has("rid-502", {"request", "crudcast answered itself",
                    "retry: reused upstream connection closed before answering, using a new one"});
    has(generated, {"request", "replacing unacceptable X-Request-ID"});
}

}  // namespace
}  // namespace crudcast
