// tail_test.cpp: `crudcast tail` as users run it: the real binary subscribed to an in-process
// crudcast, printing raw JSON (--json) and human-readable lines; reconnecting when nothing
// listens; its command-line contract (--help, bad arguments); and the line formatter itself.
#include <gtest/gtest.h>

#include <csignal>

#include <rapidjson/document.h>

#include "gateway/tail/tail.hpp"
#include "testkit.hpp"

namespace crudcast {
namespace {

using namespace testkit;

std::string post_author() {
    const std::string body = R"({"name":"Ada"})";
    return "POST /api/authors HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
}

UpstreamReply created(const RecordedRequest&) {
    HeaderList h;
    h.items.emplace_back("Content-Type", "application/json");
    return {UpstreamReply::Kind::respond, http_response(201, "Created", h, R"({"id":42,"name":"Ada"})"), {}, false};
}

std::string ws_url(std::uint16_t port) { return "ws://127.0.0.1:" + std::to_string(port) + "/ws"; }

TEST(Tail, PrintsEventsAsRawJsonAndAsLines) {
    RawUpstream upstream(created);
    auto gw = start_gateway(test_config(upstream.port()));
    ChildProcess json(CRUDCAST_BINARY, {"tail", ws_url(gw->port()), "--json"});
    ChildProcess text(CRUDCAST_BINARY, {"tail", ws_url(gw->port()), "--topic", "author"});
    // Subscribed once each says so: events published before that would not reach it.
    ASSERT_TRUE(json.wait_for_stderr("crudcast tail: connected to " + ws_url(gw->port())));
    ASSERT_TRUE(text.wait_for_stderr("crudcast tail: connected to " + ws_url(gw->port()) + "?topic=author"));

    EXPECT_EQ(exchange(gw->port(), post_author()).status, 201u);

    const auto raw = json.wait_for_stdout("\"model\":\"author\"");
    ASSERT_TRUE(raw) << json.stderr_text();
    EXPECT_EQ(raw->find("{\"ts\":"), 0u) << *raw;
    EXPECT_NE(raw->find("\"method\":\"POST\""), std::string::npos) << *raw;
    EXPECT_NE(raw->find("\"payload\":{\"id\":42,\"name\":\"Ada\"}"), std::string::npos) << *raw;
    EXPECT_EQ(raw->find('\033'), std::string::npos) << "no colour into a pipe";

    const auto line = text.wait_for_stdout("author POST id=42");
    ASSERT_TRUE(line) << text.stderr_text();
    EXPECT_NE(line->find(R"(author POST id=42 {"id":42,"name":"Ada"})"), std::string::npos) << *line;
    EXPECT_EQ(line->find('\033'), std::string::npos) << "no colour into a pipe";

    // SIGINT/SIGTERM end the tail with status 0.
    json.signal(SIGTERM);
    text.signal(SIGINT);
    EXPECT_EQ(json.wait(), 0);
    EXPECT_EQ(text.wait(), 0);
}

// Bytes that would drive a terminal: ESC (CSI, OSC), BEL, DEL and the C1 CSI U+009B (UTF-8 C2 9B).
bool has_terminal_control(const std::string& line) {
    for (std::size_t i = 0; i < line.size(); ++i) {
        const auto c = static_cast<unsigned char>(line[i]);
        if (c < 0x20 || c == 0x7f) return true;
        if (c == 0xc2 && i + 1 < line.size() && static_cast<unsigned char>(line[i + 1]) >= 0x80 &&
            static_cast<unsigned char>(line[i + 1]) <= 0x9f)
            return true;
    }
    return false;
}

// A hostile client picks the request path (the model) and what the upstream echoes (id, payload).
TEST(Tail, EscapesTerminalControlsFromTheServer) {
    RawUpstream upstream([](const RecordedRequest&) {
        HeaderList h;
        h.items.emplace_back("Content-Type", "application/json");
        return UpstreamReply{
            UpstreamReply::Kind::respond,
            http_response(201, "Created", h, R"({"id":"7\u001b]0;pwned\u0007","name":"a\u007fb\u009bc"})"),
            {},
            false};
    });
    auto gw = start_gateway(test_config(upstream.port()));
    ChildProcess json(CRUDCAST_BINARY, {"tail", ws_url(gw->port()), "--json"});
    ChildProcess text(CRUDCAST_BINARY, {"tail", ws_url(gw->port())});
    ASSERT_TRUE(json.wait_for_stderr("crudcast tail: connected to"));
    ASSERT_TRUE(text.wait_for_stderr("crudcast tail: connected to"));

    const std::string body = "{}";
    EXPECT_EQ(exchange(gw->port(),
                       "POST /api/x%1B%5B31mbooks HTTP/1.1\r\nHost: test\r\nContent-Type: "
                       "application/json\r\nContent-Length: 2\r\n\r\n{}")
                  .status,
              201u);

    const auto line = text.wait_for_stdout(" POST ");
    ASSERT_TRUE(line) << text.stderr_text();
    EXPECT_FALSE(has_terminal_control(*line)) << *line;
    EXPECT_NE(line->find(R"(x\u001b[31mbook POST id=7\u001b]0;pwned\u0007 )"), std::string::npos) << *line;
    EXPECT_NE(line->find(R"("name":"a\u007fb\u009bc")"), std::string::npos) << *line;

    const auto raw = json.wait_for_stdout("\"method\":\"POST\"");
    ASSERT_TRUE(raw) << json.stderr_text();
    EXPECT_FALSE(has_terminal_control(*raw)) << *raw;
    EXPECT_NE(raw->find(R"("model":"x\u001b[31mbook")"), std::string::npos) << *raw;
    EXPECT_NE(raw->find(R"("name":"a\u007fb\u009bc")"), std::string::npos) << *raw;
    rapidjson::Document doc;  // still JSON, and the same JSON
    doc.Parse(raw->c_str(), raw->size());
    ASSERT_FALSE(doc.HasParseError()) << *raw;
    EXPECT_EQ(std::string(doc["payload"]["name"].GetString()),
              "a\x7f"
              "b\xc2\x9b"
              "c");
}

TEST(Tail, RetriesUntilTheServerComesUpAndAfterItGoesAway) {
    RawUpstream upstream(created);
    const std::uint16_t port = free_port();
    ChildProcess tail(CRUDCAST_BINARY, {"tail", ws_url(port), "--json"});
    const auto first = tail.wait_for_stderr("retrying in 0.5s");
    ASSERT_TRUE(first);
    EXPECT_NE(first->find("cannot connect to " + ws_url(port)), std::string::npos) << *first;
    ASSERT_TRUE(tail.wait_for_stderr("retrying in 1.0s"));  // the backoff doubles

    auto config = test_config(upstream.port());
    config.listen.port = port;
    auto gw = start_gateway(config);
    ASSERT_TRUE(tail.wait_for_stderr("connected to " + ws_url(port), 15s));
    EXPECT_EQ(exchange(gw->port(), post_author()).status, 201u);
    ASSERT_TRUE(tail.wait_for_stdout("\"model\":\"author\""));

    gw.reset();  // the server goes away: the tail says so and starts over at the shortest delay
    const auto lost = tail.wait_for_stderr("lost");
    ASSERT_TRUE(lost);
    EXPECT_NE(lost->find("connection to " + ws_url(port) + " lost ("), std::string::npos) << *lost;
    EXPECT_NE(lost->find("retrying in 0.5s"), std::string::npos) << *lost;
}

TEST(Tail, HelpAndBadArguments) {
    ChildProcess help(CRUDCAST_BINARY, {"tail", "--help"});
    EXPECT_TRUE(help.wait_for_stdout("usage: crudcast tail"));
    EXPECT_EQ(help.wait(), 0);
    for (const std::vector<std::string>& args : {std::vector<std::string>{"tail", "--bogus"},
                                                 {"tail", "http://127.0.0.1:8080/ws"},
                                                 {"tail", "--topic"},
                                                 {"tail", "--topic", "a,,b"},
                                                 {"tail", "ws://127.0.0.1:99999/ws"},
                                                 {"tail", "ws://a/ws", "ws://b/ws"}}) {
        ChildProcess bad(CRUDCAST_BINARY, args);
        EXPECT_EQ(bad.wait(), 2) << args[1];
        bad.wait_for_stderr("\n");  // no line holds a newline: this returns at EOF, all lines read
        const auto err = bad.stderr_text();
        EXPECT_EQ(err.rfind("crudcast tail: ", 0), 0u) << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    }
}

TEST(Tail, FormatsEventLines) {
    const std::string frame =
        R"({"ts":1795813926587,"model":"author","method":"POST","id":1,"many":false,"payload":{"id":1,"name":"Ada"},"seq":1})";
    const auto line = gateway::format_event(frame, false);
    EXPECT_EQ(line.size(), std::string("12:03:04.587").size() + line.substr(12).size());
    EXPECT_EQ(line.substr(8, 4), ".587") << line;
    EXPECT_EQ(line.substr(12), R"( author POST id=1 {"id":1,"name":"Ada"})");

    const auto bulk = gateway::format_event(
        R"({"ts":1,"model":"book","method":"DELETE","id":null,"many":true,"payload":[{"id":"x"}]})", false);
    EXPECT_EQ(bulk.substr(12), R"( book DELETE [{"id":"x"}])");
    EXPECT_NE(gateway::format_event(R"({"ts":1,"model":"b","method":"PUT","id":"k"})", false).find(" PUT id=k"),
              std::string::npos);
    EXPECT_EQ(
        gateway::format_event(R"({"ts":1,"model":"b","method":"DELETE","id":7,"payload":null})", false).substr(12),
        " b DELETE id=7");

    const auto coloured = gateway::format_event(frame, true);
    EXPECT_NE(coloured.find("\033[1mauthor\033[0m"), std::string::npos) << coloured;
    EXPECT_NE(coloured.find("\033[32mPOST\033[0m"), std::string::npos) << coloured;

    EXPECT_EQ(gateway::format_event("not json", false), "not json");  // nothing silently dropped

    // Terminal controls from the server are escaped wherever they appear; other UTF-8 stays.
    const auto hostile = gateway::format_event(
        "{\"ts\":1,\"model\":\"a\\u001b[2Jb\",\"method\":\"P\\u0007\",\"id\":\"i\\u001b]0;t\\u0007\","
        "\"payload\":{\"k\":\"\x7f\xc2\x9b\xc2\x85\xc2\xa0\xc3\xa9\"}}",
        true);
    EXPECT_EQ(hostile.find("\033[2J"), std::string::npos) << hostile;
    EXPECT_NE(hostile.find(R"(a\u001b[2Jb)"), std::string::npos) << hostile;
    EXPECT_NE(hostile.find(R"(P\u0007)"), std::string::npos) << hostile;
    EXPECT_NE(hostile.find(R"( id=i\u001b]0;t\u0007 )"), std::string::npos) << hostile;
    EXPECT_NE(hostile.find("{\"k\":\"\\u007f\\u009b\\u0085\xc2\xa0\xc3\xa9\"}"), std::string::npos) << hostile;
    EXPECT_EQ(gateway::format_event("not json \x1b[2J\x9b\xc2", false), "not json \\u001b[2J\x9b\xc2");
    EXPECT_EQ(gateway::format_event(R"({"ts":1,"model":"b","method":"PUT","id":"k","payload":"tab\there"})", false)
                  .substr(12),
              R"( b PUT id=k "tab\there")");  // what JSON already escapes stays as it was
}

}  // namespace
}  // namespace crudcast
