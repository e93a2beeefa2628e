// hostile_test.cpp: hostile clients over raw sockets, one table row each (Transfer-Encoding,
// Content-Length and Host rows are in tests/framing_test.cpp; upstream faults and WebSocket
// protocol errors delivered in pieces are in tests/hostile_rows_*.cpp). A row is the raw bytes,
// how they are delivered (at once, byte by byte, with pauses, a slow trickle) and what the client
// does next (waits, half-closes, closes, resets); then the answers it reads in order, whether
// crudcast closes the connection or it stays usable, which complete requests reached the upstream
// (in order), and the access lines crudcast logged (their statuses). After every row a fresh
// client is served: no row wedges crudcast. Each row says what nginx (1.25, proxy_pass, default
// settings) does with the same bytes.
#include <gtest/gtest.h>

#include "tests/hostile_rows.hpp"

namespace {

using namespace crudcast;
using namespace crudcast::hostile;

struct ClientRow {
    const char* name;
    std::string bytes;  // "{port}" becomes crudcast's port
    Delivery delivery;
    Then then;
    std::vector<unsigned> answers;          // statuses the client reads, in order
    bool closes;                            // crudcast closes after them; otherwise the connection is reused
    std::vector<std::string> upstream_saw;  // targets of the complete requests the upstream got, in order
    std::vector<unsigned> logged;           // statuses of the access lines, in order
    const char* nginx;
    std::function<void(config::Config&)> tweak = {};
    std::function<void(const RecordedRequest&)> check = {};  // more about the first request upstream
};

void PrintTo(const ClientRow& row, std::ostream* os) { *os << row.name; }

std::string get(std::string_view target, std::string_view extra = "") { return get_request(target, extra); }
std::string post(std::string_view target, std::string_view body) {
    return "POST " + std::string(target) + " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + std::string(body);
}
std::string chunked_post(std::string_view chunks) {
    return "POST /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(chunks);
}
// A GET whose head (request line to the empty line) is exactly `size` bytes.
std::string head_of_size(std::size_t size, std::string_view target = "/x") {
    std::string head = "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\nX-Pad: ";
    head += std::string(size - head.size() - 4, 'p');
    return head + "\r\n\r\n";
}
std::string many_headers(int n) {
    std::string extra;
    for (int i = 0; i < n; ++i) extra += "X-H" + std::to_string(i) + ": v\r\n";
    return get("/many", extra);
}
std::vector<std::string> numbered(int n) {
    std::vector<std::string> out;
    for (int i = 1; i <= n; ++i) out.push_back("/" + std::to_string(i));
    return out;
}
std::string pipeline(int n) {
    std::string out;
    for (const auto& t : numbered(n)) out += get(t);
    return out;
}
// n GETs (/1 ... /n) whose heads are `size` bytes each, in one string.
std::string pipeline_of_heads(int n, std::size_t size) {
    std::string out;
    for (const auto& t : numbered(n)) out += head_of_size(size, t);
    return out;
}

const auto small_header_limit = [](config::Config& c) { c.max_header_bytes = 1024; };
const auto short_header_timeout = [](config::Config& c) { c.client_header_timeout = 300ms; };
const auto at = Delivery::at_once;
const auto stay = Then::stay;
const std::vector<unsigned> none;

// clang-format off
const ClientRow client_rows[] = {
    // ---- request lines ----
    {"MissingVersion", "GET /x\r\nHost: test\r\n\r\n", at, stay, {400}, true, {}, {400},
     "reads an HTTP/0.9 request and answers a bare body without a status line"},
    {"Http20Version", get("/x").replace(7, 8, "HTTP/2.0"), at, stay, {400}, true, {}, {400},
     "505: client sent invalid HTTP version (a major version over 1); Beast reads 1.0 and 1.1 only"},
    {"Http12Version", get("/x").replace(7, 8, "HTTP/1.2"), at, stay, {400}, true, {}, {400},
     "200: a higher 1.x minor version is served as HTTP/1.1 (RFC 9110 §2.5); crudcast is stricter"},
    {"LowercaseMethod", "get /x HTTP/1.1\r\nHost: test\r\n\r\n", at, stay, {200}, false, {"/x"}, {200},
     "400: client sent invalid method (nginx takes upper-case letters only); methods are case-sensitive tokens, "
     "so `get` is an extension method the upstream may refuse",
     {}, [](const RecordedRequest& r) { EXPECT_EQ(r.method, "get"); }},
    {"HugeMethod", std::string(20000, 'G') + " /x HTTP/1.1\r\nHost: test\r\n\r\n", at, stay, {431}, true, {}, {431},
     "400: client sent invalid method (nginx caps a method's length)"},
    {"TwoSpacesBeforeTarget", "GET  /x HTTP/1.1\r\nHost: test\r\n\r\n", at, stay, {400}, true, {}, {400},
     "200: nginx skips repeated spaces before the target"},
    {"TabAsSeparator", "GET\t/x HTTP/1.1\r\nHost: test\r\n\r\n", at, stay, {400}, true, {}, {400},
     "400: client sent invalid method"},
    {"SpaceInsideTarget", "GET /a b HTTP/1.1\r\nHost: test\r\n\r\n", at, stay, {400}, true, {}, {400},
     "400: client sent invalid request (spaces in the target, since 1.21.1)"},
    {"EmptyTarget", "GET  HTTP/1.1\r\nHost: test\r\n\r\n", at, stay, {400}, true, {}, {400},
     "400: client sent invalid request"},
    {"AsteriskWithGet", "GET * HTTP/1.1\r\nHost: test\r\n\r\n", at, stay, {400}, true, {}, {400},
     "400: client sent invalid request (RFC 9112 §3.2.4: `*` is for server-wide OPTIONS only)"},
    {"OptionsAsterisk", "OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n", at, stay, {200}, false, {"*"}, {200},
     "400: nginx does not take the asterisk form at all; crudcast lets the upstream answer for the server"},
    {"ControlByteInTarget", "GET /a\x01z HTTP/1.1\r\nHost: test\r\n\r\n", at, stay, {400}, true, {}, {400},
     "400: client sent invalid request"},
    {"Utf8BytesInTarget", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: test\r\n\r\n", at, stay, {200}, false,
     {"/caf\xc3\xa9"}, {200}, "200: bytes over 0x7f pass in the path"},
    {"LeadingEmptyLine", "\r\n" + get("/x"), at, stay, {400}, true, {}, {400},
     "200: an empty line before the request line is skipped (RFC 9112 §2.2 SHOULD); crudcast is stricter"},
    {"Connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", at, stay, {400}, true, {},
     {400}, "405: CONNECT is not allowed"},
    {"AbsoluteFormNamingAnotherHost", "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", at, stay,
     {400}, true, {}, {400},
     "200: proxies it to its own upstream, the target's host taking the place of Host; crudcast is never an "
     "open proxy"},
    {"AbsoluteFormNamingCrudcast", "GET http://127.0.0.1:{port}/x/y?z=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
     at, stay, {200}, false, {"/x/y?z=1"}, {200}, "200: reduced to origin-form"},
    // RFC 9112 §3.2.2: with an absolute-form target the target's authority is the host, not Host.
    {"AbsoluteFormWithAnotherHostHeader", "GET http://127.0.0.1:{port}/x HTTP/1.1\r\nHost: elsewhere\r\n\r\n", at,
     stay, {200}, false, {"/x"}, {200}, "200: the target's authority replaces the Host header",
     {}, [](const RecordedRequest& r) {
         EXPECT_EQ(r.headers.count("Host"), 1u);
         EXPECT_TRUE(r.headers.get("Host").starts_with("127.0.0.1:")) << r.headers.get("Host");
         EXPECT_EQ(r.headers.get("X-Forwarded-Host"), r.headers.get("Host"));
     }},

    // ---- header lines ----
    {"HeaderLineWithoutColon", get("/x", "no colon here\r\n"), at, stay, {400}, true, {}, {400},
     "400: client sent invalid header line"},
    {"SpaceBeforeColon", get("/x", "X-A : b\r\n"), at, stay, {400}, true, {}, {400},
     "400: client sent invalid header line (whitespace before the colon)"},
    {"EmptyHeaderName", get("/x", ": b\r\n"), at, stay, {400}, true, {}, {400},
     "400: client sent invalid header line"},
    {"NonTokenHeaderName", get("/x", "X(A): b\r\n"), at, stay, {400}, true, {}, {400},
     "200: ignore_invalid_headers drops the line and serves the request"},
    {"UnderscoreInHeaderName", get("/x", "X_A: b\r\n"), at, stay, {200}, false, {"/x"}, {200},
     "200 without the header: underscores_in_headers off drops it; `_` is a token byte, crudcast forwards it",
     {}, [](const RecordedRequest& r) { EXPECT_EQ(r.headers.get("X_A"), "b"); }},
    {"ObsFold", get("/x", "X-A: b\r\n c\r\n"), at, stay, {200}, false, {"/x"}, {200},
     "400: a line starting with whitespace is an invalid header line; RFC 9112 §5.2 also allows replacing "
     "the fold with spaces, which Beast does: the upstream gets one line",
     {}, [](const RecordedRequest& r) {
         for (const auto& line : r.header_lines) EXPECT_EQ(line.find_first_of("\r\n"), std::string::npos) << line;
     }},
    {"NulInHeaderValue", get("/x", std::string("X-A: a\0b\r\n", 10)), at, stay, {400}, true, {}, {400},
     "400: client sent invalid header line"},
    {"BareCrInHeaderValue", get("/x", "X-A: a\rb\r\n"), at, stay, {400}, true, {}, {400},
     "400: client sent invalid header line"},
    {"BareLfLineEndings", "GET /x HTTP/1.1\nHost: test\n\n", at, stay, {400}, true, {}, {400},
     "200: nginx accepts LF alone as a line end"},
    {"VeryLongHeaderLine", get("/x", "X-Long: " + std::string(20000, 'l') + "\r\n"), at, stay, {431}, true, {},
     {431}, "400 Request Header Or Cookie Too Large (a line over large_client_header_buffers' 8k)"},
    {"ThousandHeaderLines", many_headers(1000), at, stay, {200}, false, {"/many"}, {200},
     "200: nginx counts bytes, not lines",
     {}, [](const RecordedRequest& r) { EXPECT_EQ(r.headers.count("X-H999"), 1u); }},
    {"HeadExactlyAtMaxHeaderBytes", head_of_size(1024), at, stay, {200}, false, {"/x"}, {200},
     "200 (large_client_header_buffers is per line, 8k)", small_header_limit},
    {"HeadOneByteOverMaxHeaderBytes", head_of_size(1025), at, stay, {431}, true, {}, {431},
     "200 (nginx has no limit on the whole head, only per line and buffer count)", small_header_limit},

    // ---- chunked bodies ----
    {"ChunkSizeOverflow", chunked_post("ffffffffffffffffff\r\nx\r\n0\r\n\r\n"), at, stay, {400}, true, {}, {400},
     "400: client sent invalid chunked body"},
    {"ChunkSizeWithJunk", chunked_post("5x\r\nhello\r\n0\r\n\r\n"), at, stay, {400}, true, {}, {400},
     "400: client sent invalid chunked body"},
    {"ChunkExtension", chunked_post("5;name=value\r\nhello\r\n0\r\n\r\n"), at, stay, {200}, false, {"/c"}, {200},
     "200: extensions are allowed and dropped"},
    {"TruncatedChunkedBodyThenHalfClose", chunked_post("5\r\nhello\r\n"), at, Then::half_close, {}, true, {},
     {499}, "logs 400 (client prematurely closed connection) and closes"},

    // ---- pipelining ----
    {"TwoRequestsInOneWrite", pipeline(2), at, stay, {200, 200}, false, numbered(2), {200, 200},
     "both answered in order"},
    {"TenRequestsInOneWrite", pipeline(10), at, stay, std::vector<unsigned>(10, 200), false, numbered(10),
     std::vector<unsigned>(10, 200), "all answered in order"},
    {"PipelineWithABodyInBetween", get("/1") + post("/2", "body of two") + get("/3"), at, stay, {200, 200, 200},
     false, numbered(3), {200, 200, 200}, "all answered in order"},
    {"PipelineWithABadRequestInTheMiddle", pipeline(2) + "GET /a b HTTP/1.1\r\nHost: test\r\n\r\n" + get("/4"), at,
     stay, {200, 200, 400}, true, numbered(2), {200, 200, 400},
     "the two before it answered in order, then 400 and close; /4 is never read"},
    {"PipelineLongerThanMaxHeaderBytes", pipeline_of_heads(8, 500), at, stay, std::vector<unsigned>(8, 200), false,
     numbered(8), std::vector<unsigned>(8, 200), "all answered in order: the limit is per head", small_header_limit},
    {"PipelineByteByByte", pipeline(2), Delivery::byte_by_byte, stay, {200, 200}, false, numbered(2), {200, 200},
     "both answered in order"},
    {"PostInThreeWritesWithPauses", post("/p", std::string(3000, 'b')), Delivery::three_parts, stay, {200}, false,
     {"/p"}, {200}, "200"},

    // ---- slow and vanishing clients ----
    {"SlowHeaderTrickle", get("/slow"), Delivery::trickle, stay, {}, true, {}, none,
     "closes at client_header_timeout (the whole header, not each read) and logs 408; nothing is sent",
     short_header_timeout},
    {"CloseMidHeader", "GET /x HTTP/1.1\r\nHost: te", at, Then::close, {}, true, {}, none,
     "nothing logged (a connection without a request)"},
    {"ResetMidHeader", "GET /x HTTP/1.1\r\nHost: te", at, Then::reset, {}, true, {}, none,
     "nothing logged (a connection without a request)"},
    {"CloseMidBody", post("/b", std::string(100, 'b')).substr(0, 80), at, Then::close, {}, true, {}, {499},
     "logs 400 (client prematurely closed connection)"},
    {"ResetMidBody", post("/b", std::string(100, 'b')).substr(0, 80), at, Then::reset, {}, true, {}, {499},
     "logs 400 (client prematurely closed connection)"},
};
// clang-format on

class HostileClient : public ::testing::TestWithParam<ClientRow> {};

std::string with_port(std::string bytes, std::uint16_t port) {
    for (auto at = bytes.find("{port}"); at != std::string::npos; at = bytes.find("{port}"))
        bytes.replace(at, 6, std::to_string(port));
    return bytes;
}

// Reads the row's answers in order; a 200 carries the target the upstream saw (the echo below).
void read_answers(Client& client, const ClientRow& row, std::vector<std::string>& echoed) {
    for (std::size_t i = 0; i < row.answers.size(); ++i) {
        try {
            const auto res = client.read_response();
            EXPECT_EQ(res.status, row.answers[i]) << "answer " << i << ": " << res.body;
            if (res.status == 200) echoed.push_back(res.body);
        } catch (const std::runtime_error& e) {
            ADD_FAILURE() << "answer " << i << ": " << e.what();
            return;
        }
    }
}

TEST_P(HostileClient, AnswersUpstreamAndAccessLines) {
    const auto& row = GetParam();
    SCOPED_TRACE(std::string("nginx: ") + row.nginx + "; delivered " + to_string(row.delivery));
    Stack stack([](const RecordedRequest& r) { return UpstreamReply::ok(r.target); }, row.tweak);
    Client client(stack.port());
    deliver(client.socket(), with_port(row.bytes, stack.port()), row.delivery);
    auto expect_saw = row.upstream_saw;
    auto expect_logged = row.logged;
    std::vector<std::string> echoed;
    if (row.then == Then::half_close) client.socket().shutdown_write();
    if (row.then == Then::close) client.socket().close();
    if (row.then == Then::reset) client.socket().reset();
    if (row.then == Then::stay || row.then == Then::half_close) {
        read_answers(client, row, echoed);
        if (row.closes) {
            EXPECT_TRUE(client.closed_by_peer(3s)) << "crudcast kept the connection open";
        } else {  // the connection is still in step: the next request gets its own answer
            const auto next = client.roundtrip(get("/next"));
            EXPECT_EQ(next.status, 200u);
            echoed.push_back(next.body);
            expect_saw.push_back("/next");
            expect_logged.push_back(200);
        }
    }
    stack.records_when(expect_logged.size(), "/sentinel");
    EXPECT_EQ(exchange(stack.port(), get("/sentinel")).status, 200u) << "crudcast stopped serving";
    const auto records = stack.records_when(expect_logged.size() + 1, std::nullopt);
    EXPECT_EQ(statuses_except(records, "/sentinel"), expect_logged) << "access lines";

    std::vector<std::string> saw;
    for (const auto& r : stack.upstream.requests()) saw.push_back(r.target);
    ASSERT_FALSE(saw.empty());
    EXPECT_EQ(saw.back(), "/sentinel");
    saw.pop_back();
    EXPECT_EQ(saw, expect_saw) << "complete requests the upstream received";
    const auto answered = std::min(echoed.size(), saw.size());
    EXPECT_EQ(std::vector(echoed.begin(), echoed.begin() + answered), std::vector(saw.begin(), saw.begin() + answered))
        << "answers out of order";
    if (row.check && !expect_saw.empty() && !stack.upstream.requests().empty()) row.check(stack.upstream.request(0));
}

INSTANTIATE_TEST_SUITE_P(Rows, HostileClient, ::testing::ValuesIn(client_rows),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
