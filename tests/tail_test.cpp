// tail_test.cpp: `crudcast tail` as users run it: the real binary subscribed to an in-process
// crudcast, printing raw JSON (--json) and human-readable lines; reconnecting when nothing
// listens; its command-line contract (--help, bad arguments); and the line formatter itself. With
// a token (--token-file, --header) against a raw WebSocket server that records the handshake and
// refuses it or closes with 1008, as crudcast's --ws-auth does.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include <rapidjson/document.h>

#include "gateway/tail/tail.hpp"
#include "gateway/tail/tail_options.hpp"
#include "gateway/tail/tail_resume.hpp"
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
    const auto lost = tail.wait_for_stderr("closed by the server");
    ASSERT_TRUE(lost);
    EXPECT_EQ(*lost, "crudcast tail: connection to " + ws_url(port) +
                         " closed by the server: 1001 crudcast is shutting down; retrying in 0.5s");
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

// ---- With a token: what the handshake carries, and what tail does when it is refused. ----

// A directory of its own for token files, removed with the test.
class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "crudcast-tail-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
        path_ = pattern;
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    std::string write(const std::string& name, const std::string& bytes) const {
        const auto file = (path_ / name).string();
        std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
        return file;
    }
    std::string path() const { return path_.string(); }

private:
    std::filesystem::path path_;
};

UpstreamReply refuse(int status, std::string_view reason, std::string_view json) {
    HeaderList h;
    h.items.emplace_back("Content-Type", "application/json");
    return {UpstreamReply::Kind::respond, http_response(status, reason, h, json), {}, false};
}

// The 101 answer to a recorded handshake (RFC 6455 §4.2.2: base64 of SHA-1 of key + GUID).
std::string switching_protocols(const RecordedRequest& r) {
    const std::string key = r.headers.get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_Digest(key.data(), key.size(), digest, &size, EVP_sha1(), nullptr);
    unsigned char accept[64];
    const int n = EVP_EncodeBlock(accept, digest, static_cast<int>(size));
    return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Accept: " +
           std::string(reinterpret_cast<const char*>(accept), static_cast<std::size_t>(n)) + "\r\n\r\n";
}

// A server's close frame (unmasked): status code, then the reason.
std::string close_frame(std::uint16_t code, std::string_view reason) {
    std::string out = {'\x88', static_cast<char>(2 + reason.size()), static_cast<char>(code >> 8),
                       static_cast<char>(code & 0xff)};
    return out.append(reason);
}

constexpr std::string_view token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0YWlsLXRlc3QifQ.c2lnbmF0dXJlLWZvci10ZXN0cw";

TEST(TailToken, SendsTheTokenAndHeadersAndStopsOnA401WithTheServersReason) {
    RawUpstream server([](const RecordedRequest&) {
        return refuse(401, "Unauthorized", R"({"error":"invalid_token","detail":"token expired"})");
    });
    TempDir dir;
    const auto file = dir.write("token", std::string(token) + "\n");
    ChildProcess tail(CRUDCAST_BINARY, {"tail", ws_url(server.port()), "--topic=author", "--token-file", file,
                                        "--header", "X-Tenant:  blue ", "--header=User-Agent: tail-test"});
    EXPECT_EQ(tail.wait(), 1);
    ASSERT_EQ(server.request_count(), 1u) << "a 401 is not retried";
    const auto handshake = server.request(0);
    EXPECT_EQ(handshake.target, "/ws?topic=author");
    EXPECT_EQ(handshake.headers.all("Authorization"), std::vector<std::string>{"Bearer " + std::string(token)});
    EXPECT_EQ(handshake.headers.all("X-Tenant"), std::vector<std::string>{"blue"});
    EXPECT_EQ(handshake.headers.all("User-Agent"), std::vector<std::string>{"tail-test"}) << "replaces the default";
    EXPECT_EQ(handshake.headers.get("Upgrade"), "websocket");

    tail.wait_for_stderr("\n");  // no line holds a newline: this returns at EOF, all lines read
    const auto err = tail.stderr_text();
    EXPECT_EQ(err, "crudcast tail: " + ws_url(server.port()) +
                       "?topic=author refused the subscription: 401 Unauthorized: invalid_token: token expired\n");
}

TEST(TailToken, RetriesA503AndNeverShowsAnAccessTokenFromTheUrl) {
    std::atomic<int> answered{0};
    RawUpstream server([&](const RecordedRequest&) {
        if (answered++ == 0)
            return refuse(503, "Service Unavailable", R"({"error":"auth_unavailable","detail":"no answer in 2s"})");
        return refuse(403, "Forbidden", "not json\x1b[2J");  // a proxy in between may answer anything
    });
    const std::string url = ws_url(server.port()) + "?access_token=" + std::string(token);
    ChildProcess tail(CRUDCAST_BINARY, {"tail", url});
    const auto retried = tail.wait_for_stderr("retrying in 0.5s");
    ASSERT_TRUE(retried);
    EXPECT_EQ(*retried, "crudcast tail: " + ws_url(server.port()) +
                            "?access_token=REDACTED refused the subscription: 503 Service Unavailable: "
                            "auth_unavailable: no answer in 2s; retrying in 0.5s");
    EXPECT_EQ(tail.wait(), 1);
    ASSERT_EQ(server.request_count(), 2u);
    EXPECT_EQ(server.request(1).target, "/ws?access_token=" + std::string(token)) << "sent as given";
    tail.wait_for_stderr("\n");  // returns at EOF: the exit can come before the last line is read
    const auto err = tail.stderr_text();
    EXPECT_NE(err.find("refused the subscription: 403 Forbidden: not json\\u001b[2J\n"), std::string::npos) << err;
    EXPECT_EQ(err.find(token), std::string::npos) << err;
}

TEST(TailToken, Reports1008AndReconnectsWithTheTokenRenewedInTheFile) {
    TempDir dir;
    const auto file = dir.write("token", "first-token\n");
    RawUpstream server([&](const RecordedRequest& r) {
        if (r.connection > 1) return refuse(401, "Unauthorized", R"({"error":"invalid_token"})");
        UpstreamReply reply{UpstreamReply::Kind::respond, switching_protocols(r), {}, false};
        reply.then = [&](Socket& socket) {
            // Renewed before the close, so the reconnect can only see the new token.
            dir.write("token", "second-token\r\n");
            socket.send_all(close_frame(1008, "token expired"));
            // The client answers with its close frame and waits for the server to end the TCP
            // connection (RFC 6455 §7.1.1), which returning does.
            socket.read_exactly(8, default_timeout);  // masked close frame with a status code
        };
        return reply;
    });
    ChildProcess tail(CRUDCAST_BINARY, {"tail", ws_url(server.port()), "--token-file=" + file});
    const auto closed = tail.wait_for_stderr("closed by the server");
    ASSERT_TRUE(closed) << tail.stderr_text();
    EXPECT_EQ(*closed, "crudcast tail: connection to " + ws_url(server.port()) +
                           " closed by the server: 1008 token expired; retrying in 0.5s");
    EXPECT_EQ(tail.wait(), 1);
    ASSERT_EQ(server.request_count(), 2u);
    EXPECT_EQ(server.request(0).headers.get("Authorization"), "Bearer first-token");
    EXPECT_EQ(server.request(1).headers.get("Authorization"), "Bearer second-token");
    const auto err = tail.stderr_text();
    EXPECT_EQ(err.find("first-token"), std::string::npos) << err;
    EXPECT_EQ(err.find("second-token"), std::string::npos) << err;
}

TEST(TailToken, BadTokenFilesAndHeadersExit2WithOneLineNamingTheOption) {
    TempDir dir;
    const auto good = dir.write("good", "sekrit\n");
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"--token-file", dir.path() + "/missing"}, "--token-file " + dir.path() + "/missing: cannot read it"},
        {{"--token-file", dir.path()}, "--token-file " + dir.path() + ": cannot read it"},
        {{"--token-file", dir.write("empty", "\n")}, ": the file is empty"},
        {{"--token-file", dir.write("spaced", "sek rit\n")}, ": the token holds whitespace"},
        {{"--token-file", dir.write("two", "sekrit\n\n")}, ": the token holds whitespace"},
        {{"--token-file", dir.write("huge", std::string(9000, 'a'))}, ": larger than 8 KiB"},
        {{"--token-file"}, "--token-file needs a value"},
        {{"--token-file="}, "--token-file needs a file name"},
        {{"--header", "Authorization Bearer sekrit"}, "--header needs \"NAME: VALUE\""},
        {{"--header", "Bad Name: sekrit"}, "--header needs \"NAME: VALUE\""},
        {{"--header", "X-A: a\r\nX-B: sekrit"}, "--header X-A: the value holds a line break"},
        {{"--header", "X-A: sekrit\n"}, "--header X-A: the value holds a line break"},
        {{"--header", "Authorization:", "Bearer", "sekrit"}, "--header Authorization: the value is empty"},
        {{"--header", "host: sekrit"}, "--header host: set by the WebSocket handshake itself"},
        {{"--header", "Sec-WebSocket-Key: sekrit"}, "set by the WebSocket handshake itself"},
        {{"--token-file", good, "--header", "authorization: Bearer sekrit"}, "both set Authorization"},
        {{"--headr=Authorization: Bearer sekrit"}, "unknown option --headr (see"},
        {{"ws://127.0.0.1:1/ws", "Bearer", "sekrit"}, "unexpected second argument after the URL ws://"},
        {{"http://h/ws?access_token=sekrit"}, "URL must start with ws://"},
    };
    for (const auto& [extra, expected] : cases) {
        std::vector<std::string> args = {"tail"};
        args.insert(args.end(), extra.begin(), extra.end());
        ChildProcess bad(CRUDCAST_BINARY, args);
        EXPECT_EQ(bad.wait(), 2) << expected;
        bad.wait_for_stderr("\n");  // returns at EOF: all lines read
        const auto err = bad.stderr_text();
        EXPECT_EQ(err.rfind("crudcast tail: ", 0), 0u) << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
        EXPECT_NE(err.find(expected), std::string::npos) << err;
        EXPECT_EQ(err.find("sekrit"), std::string::npos) << err;
    }
    ChildProcess help(CRUDCAST_BINARY, {"tail", "--help"});
    EXPECT_TRUE(help.wait_for_stdout("--token-file FILE"));
    EXPECT_EQ(help.wait(), 0);
}

TEST(TailToken, RedactsAccessTokenValuesOnly) {
    using gateway::tail::redact_access_token;
    EXPECT_EQ(redact_access_token("/ws?topic=a&access_token=abc.def&x=1"), "/ws?topic=a&access_token=REDACTED&x=1");
    EXPECT_EQ(redact_access_token("/ws?access_token=a&access_token=b"),
              "/ws?access_token=REDACTED&access_token=REDACTED");
    EXPECT_EQ(redact_access_token("/ws?topic=access_token"), "/ws?topic=access_token");
    EXPECT_EQ(redact_access_token("/ws"), "/ws");
}

// ---- Resuming: --since, reconnects that lose nothing, and the gap message. ----

TEST(TailResume, ClassifiesFramesAndKeepsThePosition) {
    using gateway::tail::classify;
    using gateway::tail::Message;
    const auto event = classify(R"({"ts":1,"model":"a","method":"POST","id":1,"seq":1795813926587001})");
    EXPECT_EQ(event.kind, Message::Kind::event);
    EXPECT_EQ(event.seq, 1795813926587001u);
    EXPECT_EQ(classify(R"({"model":"a"})").seq, std::nullopt);
    EXPECT_EQ(classify("not json").kind, Message::Kind::event);  // printed as it came, as before

    const auto gap = classify(R"({"type":"gap","reason":"history","since":17,"next":25})");
    ASSERT_EQ(gap.kind, Message::Kind::gap);
    EXPECT_EQ(gateway::tail::gap_line(gap), "gap: events after 17 and before 25 were lost (history)");
    const auto none = classify(R"({"type":"gap","reason":"restart","since":1,"next":null})");
    ASSERT_EQ(none.kind, Message::Kind::gap);
    EXPECT_EQ(gateway::tail::gap_line(none), "gap: events after 1 were lost (restart; next: none retained yet)");
    // A "type" key is never an event, even with a seq; a gap without its members is not guessed at.
    for (const char* frame : {R"({"type":"hello","seq":99})", R"({"type":"gap","reason":"history","since":17})",
                              R"({"type":"gap","reason":"history","since":-1,"next":null})",
                              R"({"type":"gap","reason":7,"since":1,"next":null})", R"({"type":null})"})
        EXPECT_EQ(classify(frame).kind, Message::Kind::other) << frame;

    gateway::tail::Position position(std::nullopt);
    EXPECT_EQ(position.target("/ws?topic=a"), "/ws?topic=a") << "nothing to resume from yet";
    position.saw(classify(R"({"type":"hello","seq":99})"));
    position.saw(classify(R"({"model":"a"})"));
    EXPECT_EQ(position.after(), std::nullopt);
    position.saw(event);
    EXPECT_EQ(position.target("/ws?topic=a"), "/ws?topic=a&since=1795813926587001");
    position.saw(gap);  // what the gap named is gone: resume just before its next
    EXPECT_EQ(position.target("/ws"), "/ws?since=24");
    position.saw(none);  // nothing retained: the position stays
    EXPECT_EQ(position.after(), 24u);
    position.saw(classify(R"({"model":"a","seq":5})"));  // the server's order wins, even backwards
    EXPECT_EQ(position.after(), 5u);
    EXPECT_EQ(gateway::tail::Position(0).target("/ws"), "/ws?since=0");
}

TEST(TailResume, SinceTakesOnlyANonNegativeInteger) {
    using gateway::tail::parse_seq;
    EXPECT_EQ(parse_seq("0"), 0u);
    EXPECT_EQ(parse_seq("17"), 17u);
    EXPECT_EQ(parse_seq("9223372036854775807"), 9223372036854775807u);  // 2^63 - 1: crudcast's largest
    for (const char* bad :
         {"", "-1", "+1", " 1", "1 ", "1.5", "17x", "0x11", "9223372036854775808", "18446744073709551616", "seq"})
        EXPECT_EQ(parse_seq(bad), std::nullopt) << bad;

    gateway::tail::Options o;
    ASSERT_EQ(gateway::tail::parse_args({"ws://h:1/ws", "--topic", "a", "--since=42"}, o), "");
    EXPECT_EQ(o.since, 42u);
    EXPECT_EQ(o.target, "/ws?topic=a") << "the since is added per connection";
    // A since in the URL would be a second one on every reconnect; Last-Event-ID would override it.
    EXPECT_NE(gateway::tail::parse_args({"ws://h:1/ws?since=5"}, o).find("--since SEQ"), std::string::npos);
    EXPECT_NE(gateway::tail::parse_args({"--header", "Last-Event-ID: 5"}, o).find("handshake"), std::string::npos);
    for (const std::vector<std::string>& args : {std::vector<std::string>{"tail", "--since"},
                                                 {"tail", "--since", "-3"},
                                                 {"tail", "--since=abc"},
                                                 {"tail", "--since", "1\nX"},
                                                 {"tail", "--since", "99999999999999999999"}}) {
        ChildProcess bad(CRUDCAST_BINARY, args);
        EXPECT_EQ(bad.wait(), 2) << args.back();
        bad.wait_for_stderr("\n");  // returns at EOF: all lines read
        const auto err = bad.stderr_text();
        EXPECT_EQ(err.rfind("crudcast tail: --since needs a ", 0), 0u) << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    }
    ChildProcess help(CRUDCAST_BINARY, {"tail", "--help"});
    EXPECT_TRUE(help.wait_for_stdout("--since SEQ"));
    EXPECT_EQ(help.wait(), 0);
}

// A server's text frame (unmasked), payloads under 64 KiB.
std::string text_frame(std::string_view payload) {
    std::string out(1, '\x81');
    if (payload.size() < 126) {
        out += static_cast<char>(payload.size());
    } else {
        out += static_cast<char>(126);
        out += static_cast<char>(payload.size() >> 8);
        out += static_cast<char>(payload.size() & 0xff);
    }
    return out.append(payload);
}

// One scripted connection after another: what each sends, then the server drops the connection.
// The tail's handshakes are recorded, so the since of every reconnect can be checked.
UpstreamReply scripted(const RecordedRequest& r, const std::vector<std::vector<std::string>>& script) {
    if (r.connection > script.size()) return refuse(401, "Unauthorized", R"({"error":"end_of_test"})");
    UpstreamReply reply{UpstreamReply::Kind::respond, switching_protocols(r), {}, false};
    reply.then = [frames = script[r.connection - 1]](Socket& socket) {
        for (const auto& frame : frames) socket.send_all(text_frame(frame));
    };
    return reply;
}

const std::vector<std::vector<std::string>> resume_script = {
    {R"({"ts":1,"model":"author","method":"POST","id":1,"many":false,"payload":{"n":1},"seq":6})",
     R"({"type":"hello","seq":99})"},
    {R"({"type":"gap","reason":"history","since":6,"next":9})"},
    {R"({"ts":1,"model":"author","method":"PUT","id":9,"many":false,"payload":{"n":9},"seq":9})"},
    {R"({"type":"gap","reason":"restart","since":9,"next":null})"},
};

TEST(TailResume, ReconnectsAfterTheLastEventAndReportsGapsNeverAsEvents) {
    RawUpstream server([](const RecordedRequest& r) { return scripted(r, resume_script); });
    ChildProcess tail(CRUDCAST_BINARY, {"tail", ws_url(server.port()), "--topic", "author", "--since", "5"});
    EXPECT_EQ(tail.wait(15s), 1);
    ASSERT_EQ(server.request_count(), 5u);
    // The first connection asks for --since, every reconnect for the last event printed, or for
    // what follows the gap; a gap with nothing retained leaves the position where it was.
    const std::vector<std::string> since = {"5", "6", "8", "9", "9"};
    for (std::size_t i = 0; i < since.size(); ++i)
        EXPECT_EQ(server.request(i).target, "/ws?topic=author&since=" + since[i]) << i;

    tail.wait_for_stdout("\n");  // no line holds a newline: these return at EOF, all lines read
    tail.wait_for_stderr("\n");
    const auto out = tail.stdout_text();
    ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
    EXPECT_NE(out.find(R"( author POST id=1 {"n":1})"), std::string::npos) << out;
    EXPECT_NE(out.find(R"( author PUT id=9 {"n":9})"), std::string::npos) << out;
    const auto err = tail.stderr_text();
    for (const std::string& line :
         {"connected to " + ws_url(server.port()) + "?topic=author, resuming after 5\n",
          std::string("message from the server: {\"type\":\"hello\",\"seq\":99}\n"),
          std::string("crudcast tail: gap: events after 6 and before 9 were lost (history)\n"),
          std::string("gap: events after 9 were lost (restart; next: none retained yet)\n"),
          "connected to " + ws_url(server.port()) + "?topic=author, resuming after 8\n",
          "connected to " + ws_url(server.port()) + "?topic=author, resuming after 9\n"})
        EXPECT_NE(err.find(line), std::string::npos) << line << " in\n" << err;
}

TEST(TailResume, JsonPrintsTheGapMessageAsReceived) {
    RawUpstream server([](const RecordedRequest& r) { return scripted(r, resume_script); });
    ChildProcess tail(CRUDCAST_BINARY, {"tail", ws_url(server.port()), "--json", "--since=5"});
    EXPECT_EQ(tail.wait(15s), 1);
    tail.wait_for_stdout("\n");  // no line holds a newline: these return at EOF, all lines read
    tail.wait_for_stderr("\n");
    std::string expected;
    for (const auto& connection : resume_script)
        for (const auto& frame : connection) expected += frame + "\n";
    EXPECT_EQ(tail.stdout_text(), expected);
    const auto err = tail.stderr_text();
    EXPECT_NE(err.find("crudcast tail: gap: events after 6 and before 9 were lost (history)\n"), std::string::npos)
        << err;
    EXPECT_EQ(err.find("message from the server"), std::string::npos) << "with --json it went to stdout";
}

// ---- Against a real crudcast. ----

// Answers every POST with a new id, so each event can be told apart.
RawUpstream::Handler counting_ids() {
    return [next = std::make_shared<std::atomic<int>>(0)](const RecordedRequest&) {
        HeaderList h;
        h.items.emplace_back("Content-Type", "application/json");
        const std::string body = "{\"id\":" + std::to_string(++*next) + "}";
        return UpstreamReply{UpstreamReply::Kind::respond, http_response(201, "Created", h, body), {}, false};
    };
}

// The events in --json output: (id, seq) per line, in order; a line that is not an event fails.
std::vector<std::pair<int, std::uint64_t>> printed_events(const std::string& out) {
    std::vector<std::pair<int, std::uint64_t>> events;
    for (std::size_t start = 0, end; (end = out.find('\n', start)) != std::string::npos; start = end + 1) {
        rapidjson::Document doc;
        doc.Parse(out.data() + start, end - start);
        if (doc.HasParseError() || !doc.IsObject() || doc.HasMember("type") || !doc["seq"].IsUint64()) {
            ADD_FAILURE() << "not an event: " << out.substr(start, end - start);
            continue;
        }
        events.emplace_back(doc["id"].GetInt(), doc["seq"].GetUint64());
    }
    return events;
}

std::string id_needle(int id) { return "\"id\":" + std::to_string(id) + ","; }

TEST(TailResume, SinceReplaysExactlyTheEventsAfterIt) {
    RawUpstream upstream(counting_ids());
    auto gw = start_gateway(test_config(upstream.port()));
    ChildProcess first(CRUDCAST_BINARY, {"tail", ws_url(gw->port()), "--json"});
    ASSERT_TRUE(first.wait_for_stderr("connected to"));
    for (int i = 0; i < 3; ++i) ASSERT_EQ(exchange(gw->port(), post_author()).status, 201u);
    ASSERT_TRUE(first.wait_for_stdout(id_needle(3)));
    const auto before = printed_events(first.stdout_text());
    ASSERT_EQ(before.size(), 3u);

    const std::string since = std::to_string(before[0].second);
    ChildProcess tail(CRUDCAST_BINARY, {"tail", ws_url(gw->port()), "--json", "--since", since});
    ASSERT_TRUE(tail.wait_for_stderr("connected to " + ws_url(gw->port()) + ", resuming after " + since));
    ASSERT_EQ(exchange(gw->port(), post_author()).status, 201u);  // then live
    ASSERT_TRUE(tail.wait_for_stdout(id_needle(4))) << tail.stderr_text();
    const auto replayed = printed_events(tail.stdout_text());
    ASSERT_EQ(replayed.size(), 3u) << tail.stdout_text();
    EXPECT_EQ(replayed[0], before[1]);
    EXPECT_EQ(replayed[1], before[2]);
    EXPECT_EQ(replayed[2].first, 4);
    EXPECT_EQ(tail.stderr_text().find("gap"), std::string::npos) << tail.stderr_text();
}

// A TCP relay in front of crudcast, made of a RawUpstream (which hands over each connection once
// it has read the handshake): cut() ends every relayed connection, as a network blip would, and
// turns new ones away until resume(). crudcast itself keeps running and publishing.
class Relay {
public:
    explicit Relay(std::uint16_t target) : target_(target) {}
    std::uint16_t port() const { return server_.port(); }
    void cut() {
        std::lock_guard lock(mutex_);
        refusing_ = true;
        for (const int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    void resume() {
        std::lock_guard lock(mutex_);
        refusing_ = false;
    }

private:
    UpstreamReply relay(const RecordedRequest& r) {
        if (std::lock_guard lock(mutex_); refusing_) return UpstreamReply::close();
        UpstreamReply reply{UpstreamReply::Kind::respond, {}, {}, false};
        reply.then = [this, head = r.head](Socket& client) {
            Socket upstream = Socket::connect(target_);
            if (!upstream.send_all(head)) return;
            {
                std::lock_guard lock(mutex_);
                fds_ = {client.fd(), upstream.fd()};
            }
            pump(client.fd(), upstream.fd());
            std::lock_guard lock(mutex_);
            fds_.clear();  // before either closes: cut() must never shut down a reused descriptor
        };
        return reply;
    }
    static void pump(int a, int b) {
        pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        char buffer[16384];
        for (;;) {
            if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
            for (int i = 0; i < 2; ++i) {
                if (p[i].revents == 0) continue;
                const ssize_t n = ::read(p[i].fd, buffer, sizeof buffer);
                if (n <= 0) return;
                for (ssize_t sent = 0, w; sent < n; sent += w)
                    if ((w = ::write(p[1 - i].fd, buffer + sent, static_cast<std::size_t>(n - sent))) <= 0) return;
            }
        }
    }

    const std::uint16_t target_;
    std::mutex mutex_;
    bool refusing_ = false;
    std::vector<int> fds_;  // the one relayed connection's two ends
    RawUpstream server_{[this](const RecordedRequest& r) { return relay(r); }};  // last: stopped first
};

TEST(TailResume, AReconnectLosesNothingPublishedDuringTheOutageAndRepeatsNothing) {
    RawUpstream upstream(counting_ids());
    auto gw = start_gateway(test_config(upstream.port()));
    Relay relay(gw->port());
    ChildProcess tail(CRUDCAST_BINARY, {"tail", ws_url(relay.port()), "--json"});
    ASSERT_TRUE(tail.wait_for_stderr("connected to " + ws_url(relay.port())));
    ASSERT_EQ(exchange(gw->port(), post_author()).status, 201u);
    ASSERT_TRUE(tail.wait_for_stdout(id_needle(1)));
    const auto seq = printed_events(tail.stdout_text()).at(0).second;

    relay.cut();
    ASSERT_TRUE(tail.wait_for_stderr(" lost ("));
    ASSERT_TRUE(tail.wait_for_stderr("cannot connect")) << "turned away at least once: the outage is real";
    for (int i = 0; i < 3; ++i) ASSERT_EQ(exchange(gw->port(), post_author()).status, 201u);
    relay.resume();
    ASSERT_TRUE(tail.wait_for_stderr(", resuming after " + std::to_string(seq), 15s)) << tail.stderr_text();
    ASSERT_EQ(exchange(gw->port(), post_author()).status, 201u);  // and live again after the replay
    ASSERT_TRUE(tail.wait_for_stdout(id_needle(5))) << tail.stderr_text();
    const auto events = printed_events(tail.stdout_text());
    ASSERT_EQ(events.size(), 5u) << tail.stdout_text();
    for (std::size_t i = 0; i < events.size(); ++i) {
        EXPECT_EQ(events[i].first, static_cast<int>(i + 1)) << "in order, each once";
        EXPECT_EQ(events[i].second, seq + i) << "no hole";
    }
    EXPECT_EQ(tail.stderr_text().find("gap"), std::string::npos) << tail.stderr_text();
}

TEST(TailResume, ReportsTheGapForASinceFromBeforeThisProcessAndForALostHistory) {
    RawUpstream upstream(counting_ids());
    auto config = test_config(upstream.port());
    config.history_size = 2;
    auto gw = start_gateway(config);
    ChildProcess restart(CRUDCAST_BINARY, {"tail", ws_url(gw->port()), "--json", "--since", "1"});
    const auto line = restart.wait_for_stderr("gap:");
    ASSERT_TRUE(line) << restart.stderr_text();
    EXPECT_EQ(*line, "crudcast tail: gap: events after 1 were lost (restart; next: none retained yet)");
    const auto gap = restart.wait_for_stdout("\"type\"");
    ASSERT_TRUE(gap);
    rapidjson::Document doc;
    doc.Parse(gap->c_str(), gap->size());
    ASSERT_TRUE(doc.IsObject()) << *gap;
    EXPECT_EQ(std::string(doc["type"].GetString()), "gap");
    EXPECT_EQ(std::string(doc["reason"].GetString()), "restart");
    EXPECT_TRUE(doc["next"].IsNull()) << *gap;

    for (int i = 0; i < 3; ++i) ASSERT_EQ(exchange(gw->port(), post_author()).status, 201u);
    ASSERT_TRUE(restart.wait_for_stdout(id_needle(3)));
    const auto seqs = printed_events(restart.stdout_text().substr(gap->size() + 1));
    ASSERT_EQ(seqs.size(), 3u);

    // Only the last two are retained: resuming from before the first names it as lost.
    const std::string since = std::to_string(seqs[0].second - 1);
    ChildProcess history(CRUDCAST_BINARY, {"tail", ws_url(gw->port()), "--since", since});
    const auto lost = history.wait_for_stderr("gap:");
    ASSERT_TRUE(lost) << history.stderr_text();
    EXPECT_EQ(*lost, "crudcast tail: gap: events after " + since + " and before " + std::to_string(seqs[1].second) +
                         " were lost (history)");
    ASSERT_TRUE(history.wait_for_stdout(" author POST id=3 ")) << history.stderr_text();
    EXPECT_EQ(history.wait_for_stdout(" author POST id=1 ", 0ms), std::nullopt) << "the lost one is not invented";
}

}  // namespace
}  // namespace crudcast
