// framing_test.cpp: crudcast owns HTTP/1.1 framing (proxy/framing.*), so a client and an upstream can
// never read a message's end differently (request smuggling, RFC 9112 §6.3 and §11.2). Hostile rows
// over real sockets: the raw request bytes, crudcast's answer (and that it closes), whether the
// upstream saw a request and exactly which framing lines it saw; then raw upstream answers with bad
// framing, and upstreams that send more than their response. Each row says what nginx does.
#include <gtest/gtest.h>

#include <thread>

#include "tests/testkit.hpp"

namespace {

using namespace crudcast;
using namespace crudcast::testkit;
using namespace std::chrono_literals;

// The framing lines of a request as the upstream received them, "Name: value" joined by " | ".
std::string framing_lines(const RecordedRequest& r) {
    std::string out;
    for (const auto& line : r.header_lines) {
        const auto name = line.substr(0, line.find(':'));
        if (!boost::beast::iequals(name, "Content-Length") && !boost::beast::iequals(name, "Transfer-Encoding"))
            continue;
        if (!out.empty()) out += " | ";
        out += line;
    }
    return out;
}

struct RequestRow {
    const char* name;
    std::string request;  // the raw bytes a client sends
    unsigned status;      // crudcast's answer
    std::size_t seen;     // requests the upstream received (0 when refused)
    const char* framing;  // the framing lines the upstream saw, when it saw one
    const char* body;     // the body the upstream decoded, when it saw one
    const char* nginx;    // what nginx (1.25) does with the same bytes
};

std::string post(std::string_view headers, std::string_view body, std::string_view version = "HTTP/1.1") {
    return "POST /api/x " + std::string(version) + "\r\nHost: test\r\n" + std::string(headers) + "\r\n" +
           std::string(body);
}
std::string get_with_host(std::string_view host_lines, std::string_view version = "HTTP/1.1") {
    return "GET /api/x " + std::string(version) + "\r\n" + std::string(host_lines) + "\r\n";
}

// The chunk that smuggles a second request when the framing is read from the first TE line only.
const std::string smuggled = "0\r\n\r\nGET /x HTTP/1.1\r\nHost: y\r\n\r\n";
std::string chunk(std::string_view data) {
    char size[20];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return size + std::string(data) + "\r\n";
}

// clang-format off
const RequestRow request_rows[] = {
    // The smuggling row: Beast reads the last TE line (chunked), the old relay the first (gzip).
    {"SmuggledByTwoTransferEncodingLines",
     post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", chunk(smuggled) + "0\r\n\r\n"), 501, 0, "", "",
     "501: the combined value is not \"chunked\" (unknown Transfer-Encoding)"},
    {"SmuggledBytesInsideAChunkStayBody",
     post("Transfer-Encoding: chunked\r\n", chunk(smuggled) + "0\r\n\r\n"), 200, 1, "Transfer-Encoding: chunked",
     "0\r\n\r\nGET /x HTTP/1.1\r\nHost: y\r\n\r\n", "200: re-chunked, one request upstream"},
    {"ContentLength", post("Content-Length: 5\r\n", "hello"), 200, 1, "Content-Length: 5", "hello", "200"},
    {"ContentLengthZero", post("Content-Length: 0\r\n", ""), 200, 1, "Content-Length: 0", "", "200"},
    {"Chunked", post("Transfer-Encoding: chunked\r\n", chunk("hello") + "0\r\n\r\n"), 200, 1,
     "Transfer-Encoding: chunked", "hello", "200"},
    {"ChunkedAnyCase", post("Transfer-Encoding: ChUnKeD\r\n", chunk("hello") + "0\r\n\r\n"), 200, 1,
     "Transfer-Encoding: chunked", "hello", "200: codings are case-insensitive"},
    {"ChunkedWithSpaces", post("Transfer-Encoding:  \t chunked \t \r\n", chunk("hello") + "0\r\n\r\n"), 200, 1,
     "Transfer-Encoding: chunked", "hello", "200: OWS around a value is not part of it"},
    {"TransferEncodingOnHttp10",
     post("Transfer-Encoding: chunked\r\n", chunk("hello") + "0\r\n\r\n", "HTTP/1.0"), 400, 0, "", "",
     "400: client sent HTTP/1.0 request with Transfer-Encoding"},
    {"TransferEncodingAndContentLength",
     post("Transfer-Encoding: chunked\r\nContent-Length: 10\r\n", chunk("hello") + "0\r\n\r\n"), 400, 0, "", "",
     "400: Content-Length and Transfer-Encoding at the same time"},
    {"ContentLengthThenTransferEncoding",
     post("Content-Length: 10\r\nTransfer-Encoding: chunked\r\n", chunk("hello") + "0\r\n\r\n"), 400, 0, "", "",
     "400: Content-Length and Transfer-Encoding at the same time"},
    {"ContentLengthConflicting", post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), 400, 0, "", "",
     "400: duplicate Content-Length"},
    {"ContentLengthRepeatedSame", post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), 400, 0, "", "",
     "400: duplicate Content-Length (a unique header line)"},
    {"ContentLengthList", post("Content-Length: 5, 5\r\n", "hello"), 400, 0, "", "",
     "400: invalid Content-Length"},
    {"ContentLengthJunk", post("Content-Length: 5x\r\n", "hello"), 400, 0, "", "", "400: invalid Content-Length"},
    {"ContentLengthPlusSign", post("Content-Length: +5\r\n", "hello"), 400, 0, "", "", "400: invalid Content-Length"},
    {"ContentLengthMinusSign", post("Content-Length: -5\r\n", "hello"), 400, 0, "", "",
     "400: invalid Content-Length"},
    {"ContentLengthOverflow", post("Content-Length: 99999999999999999999999\r\n", "hello"), 400, 0, "", "",
     "400: invalid Content-Length (overflow)"},
    {"ContentLengthEmpty", post("Content-Length: \r\n", ""), 400, 0, "", "", "400: invalid Content-Length"},
    {"ChunkedThenIdentity", post("Transfer-Encoding: chunked, identity\r\n", chunk("hello") + "0\r\n\r\n"), 400, 0,
     "", "", "501: unknown Transfer-Encoding; RFC 9112 §6.3: chunked not final is 400"},
    {"Identity", post("Transfer-Encoding: identity\r\n", "hello"), 400, 0, "", "",
     "501: unknown Transfer-Encoding; RFC 9112 §6.3: chunked not final is 400"},
    {"GzipThenChunked", post("Transfer-Encoding: gzip, chunked\r\n", chunk("hello") + "0\r\n\r\n"), 501, 0, "", "",
     "501: unknown Transfer-Encoding (RFC 9112 §6.1: a coding not understood is 501)"},
    {"ChunkedTwice", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                          chunk("hello") + "0\r\n\r\n"), 400, 0, "", "",
     "400: duplicate Transfer-Encoding; RFC 9112 §6.1: chunked only once"},
    {"ChunkedThenGzipLines", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
                                  chunk("hello") + "0\r\n\r\n"), 400, 0, "", "",
     "400: duplicate Transfer-Encoding"},
    {"ChunkedWithParameter", post("Transfer-Encoding: chunked;x=1\r\n", chunk("hello") + "0\r\n\r\n"), 400, 0,
     "", "", "501: unknown Transfer-Encoding"},
    {"EmptyListElement", post("Transfer-Encoding: ,chunked\r\n", chunk("hello") + "0\r\n\r\n"), 400, 0, "", "",
     "501: unknown Transfer-Encoding"},
    {"EmptyTransferEncoding", post("Transfer-Encoding: \r\n", ""), 400, 0, "", "",
     "501: unknown Transfer-Encoding"},
    // Beast unfolds obs-fold into spaces (RFC 9112 §5.2 allows that instead of a 400): the value is then
    // judged as it reads unfolded, and crudcast writes its own single line either way.
    {"ObsFoldInTransferEncoding", post("Transfer-Encoding: gzip,\r\n chunked\r\n", chunk("hello") + "0\r\n\r\n"),
     501, 0, "", "", "400: a line starting with a space is an invalid header line"},
    {"ObsFoldBeforeChunked", post("Transfer-Encoding:\r\n chunked\r\n", chunk("hello") + "0\r\n\r\n"), 200, 1,
     "Transfer-Encoding: chunked", "hello", "400: a line starting with a space is an invalid header line"},
    {"MissingHost", "GET /api/x HTTP/1.1\r\n\r\n", 400, 0, "", "", "400: client sent HTTP/1.1 request without Host"},
    {"MissingHostOnHttp10", "GET /api/x HTTP/1.0\r\n\r\n", 200, 1, "", "", "200: Host is optional on 1.0"},
    {"RepeatedHost", get_with_host("Host: a\r\nHost: b\r\n"), 400, 0, "", "", "400: client sent duplicate host header"},
    {"RepeatedSameHost", get_with_host("Host: a\r\nHost: a\r\n"), 400, 0, "", "",
     "400: client sent duplicate host header"},
    {"EmptyHost", get_with_host("Host: \r\n"), 400, 0, "", "", "400: client sent invalid host header"},
    {"HostWithSlash", get_with_host("Host: a/b\r\n"), 400, 0, "", "", "400: client sent invalid host header"},
    {"HostWithSpace", get_with_host("Host: a b\r\n"), 400, 0, "", "", "400: (nginx accepts spaces; stricter)"},
    {"HostWithUserinfo", get_with_host("Host: u@a\r\n"), 400, 0, "", "", "200 (nginx accepts '@'); stricter"},
    {"HostPortTooLarge", get_with_host("Host: a:99999\r\n"), 400, 0, "", "", "200 (nginx drops the port); stricter"},
    {"HostPortNotANumber", get_with_host("Host: a:b\r\n"), 400, 0, "", "", "200 (nginx drops the port); stricter"},
    {"HostNameAndPort", get_with_host("Host: api.example.com:8080\r\n"), 200, 1, "", "", "200"},
    {"HostIpv6", get_with_host("Host: [::1]:8080\r\n"), 200, 1, "", "", "200"},
    {"HostIpv6Unclosed", get_with_host("Host: [::1\r\n"), 400, 0, "", "", "400: client sent invalid host header"},
};
// clang-format on

void PrintTo(const RequestRow& row, std::ostream* os) { *os << row.name; }

class FramingRequests : public ::testing::TestWithParam<RequestRow> {
protected:
    static void SetUpTestSuite() {
        upstream = std::make_unique<RawUpstream>([](const RecordedRequest&) { return UpstreamReply::ok(); });
        gateway = start_gateway(test_config(upstream->port()));
    }
    static void TearDownTestSuite() {
        gateway.reset();
        upstream.reset();
    }
    static inline std::unique_ptr<RawUpstream> upstream;
    static inline std::unique_ptr<gateway::Gateway> gateway;
};

TEST_P(FramingRequests, AnswerAndWhatTheUpstreamSaw) {
    const auto& row = GetParam();
    SCOPED_TRACE(std::string("nginx: ") + row.nginx);
    const auto before = upstream->request_count();
    Client client(gateway->port());
    const auto response = client.roundtrip(row.request);
    EXPECT_EQ(response.status, row.status) << response.body;
    if (row.status >= 400) {
        EXPECT_TRUE(client.closed_by_peer(2s)) << "a refused message closes its connection";
    }
    if (row.seen > 0) {
        EXPECT_TRUE(upstream->wait_for_requests(before + row.seen));
    }
    std::this_thread::sleep_for(100ms);  // time for a smuggled second request to arrive
    const auto requests = upstream->requests();
    ASSERT_EQ(requests.size() - before, row.seen) << "requests the upstream saw";
    if (row.seen == 0) return;
    const auto& seen = requests[before];
    EXPECT_EQ(framing_lines(seen), row.framing) << seen.head;
    EXPECT_EQ(seen.body, row.body);
}

INSTANTIATE_TEST_SUITE_P(Rows, FramingRequests, ::testing::ValuesIn(request_rows),
                         [](const auto& info) { return std::string(info.param.name); });

// Beast reports whichever of the two headers came second as the bad one; the answer (and the
// access line, which carries the same text) names the conflict itself, in either order.
TEST_F(FramingRequests, BothFramingHeadersAreNamedInTheAnswer) {
    for (const auto* headers : {"Transfer-Encoding: chunked\r\nContent-Length: 10\r\n",
                                "Content-Length: 10\r\nTransfer-Encoding: chunked\r\n"}) {
        SCOPED_TRACE(headers);
        const auto response = Client(gateway->port()).roundtrip(post(headers, chunk("hello") + "0\r\n\r\n"));
        EXPECT_EQ(response.status, 400u);
        EXPECT_NE(response.body.find("malformed request: both Content-Length and Transfer-Encoding"), std::string::npos)
            << response.body;
    }
}

struct ResponseRow {
    const char* name;
    std::string response;  // the raw bytes the upstream answers with
    unsigned status;       // what the client gets
    const char* framing;   // the framing line the client gets, when 200
    const char* body;      // the body the client gets, when 200
    const char* nginx;
};

std::string answer(std::string_view headers, std::string_view body, std::string_view version = "HTTP/1.1") {
    return std::string(version) + " 200 OK\r\n" + std::string(headers) + "\r\n" + std::string(body);
}

// clang-format off
const ResponseRow response_rows[] = {
    {"ContentLength", answer("Content-Length: 5\r\n", "hello"), 200, "Content-Length: 5", "hello", "200"},
    {"Chunked", answer("Transfer-Encoding: Chunked\r\n", chunk("hello") + "0\r\n\r\n"), 200,
     "Transfer-Encoding: chunked", "hello", "200"},
    {"GzipLineThenChunkedLine",
     answer("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", chunk(smuggled) + "0\r\n\r\n"), 502, "",
     "", "502: upstream sent duplicate header line / unknown Transfer-Encoding"},
    {"ChunkedThenIdentity", answer("Transfer-Encoding: chunked, identity\r\n", "hello"), 502, "", "",
     "502: upstream sent unknown Transfer-Encoding"},
    {"Identity", answer("Transfer-Encoding: identity\r\n", "hello"), 502, "", "",
     "502: upstream sent unknown Transfer-Encoding"},
    {"TransferEncodingAndContentLength",
     answer("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", chunk("hello") + "0\r\n\r\n"), 502, "", "",
     "502: upstream sent Content-Length and Transfer-Encoding at the same time"},
    {"ContentLengthConflicting", answer("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), 502, "", "",
     "502: upstream sent duplicate header line"},
    {"ContentLengthRepeatedSame", answer("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), 502, "", "",
     "502: upstream sent duplicate header line"},
    {"ContentLengthPlusSign", answer("Content-Length: +5\r\n", "hello"), 502, "", "",
     "502: upstream sent invalid Content-Length"},
    {"ChunkedOnHttp10", answer("Transfer-Encoding: chunked\r\n", chunk("hello") + "0\r\n\r\n", "HTTP/1.0"), 502,
     "", "", "reads to close; RFC 9112 §6.1: TE in a 1.0 message is faulty framing"},
};
// clang-format on

void PrintTo(const ResponseRow& row, std::ostream* os) { *os << row.name; }

class FramingResponses : public ::testing::TestWithParam<ResponseRow> {};

TEST_P(FramingResponses, AnswerAndTheConnectionIsNotReused) {
    const auto& row = GetParam();
    SCOPED_TRACE(std::string("nginx: ") + row.nginx);
    RawUpstream upstream([&](const RecordedRequest& r) {
        if (r.target == "/row") return UpstreamReply{UpstreamReply::Kind::respond, row.response, {}, false};
        return UpstreamReply::ok("next");
    });
    auto gw = start_gateway(test_config(upstream.port()));
    Client client(gw->port());
    const auto response = client.roundtrip(get_request("/row"));
    EXPECT_EQ(response.status, row.status) << response.body;
    if (row.status == 200) {
        EXPECT_EQ(response.body, row.body);
        const bool chunked = std::string_view(row.framing).starts_with("Transfer-Encoding");
        EXPECT_EQ(response.chunked, chunked);
        EXPECT_EQ(response.headers.count("Content-Length"), chunked ? 0u : 1u);
        EXPECT_EQ(response.headers.count("Transfer-Encoding"), chunked ? 1u : 0u);
        return;
    }
    // The same client may go on; the bad answer's upstream connection is never used again.
    const auto next = client.roundtrip(get_request("/next"));
    EXPECT_EQ(next.status, 200u);
    EXPECT_EQ(next.body, "next");
    EXPECT_EQ(upstream.connections(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Rows, FramingResponses, ::testing::ValuesIn(response_rows),
                         [](const auto& info) { return std::string(info.param.name); });

// An upstream that sends more than its response: the extra bytes are never read as the next
// request's answer, and the connection does not go back to the pool.
struct OverrunRow {
    const char* name;
    std::string response;
};

void PrintTo(const OverrunRow& row, std::ostream* os) { *os << row.name; }

class FramingOverrun : public ::testing::TestWithParam<OverrunRow> {};

TEST_P(FramingOverrun, ExtraBytesNeverReachTheNextRequest) {
    const auto& row = GetParam();
    RawUpstream upstream([&](const RecordedRequest& r) {
        if (r.target == "/row") return UpstreamReply{UpstreamReply::Kind::respond, row.response, {}, false};
        return UpstreamReply::ok("next");
    });
    auto cfg = test_config(upstream.port());
    cfg.threads = 1;  // one pool: the next request would get the pooled connection
    auto gw = start_gateway(std::move(cfg));
    Client client(gw->port());
    const auto first = client.roundtrip(get_request("/row"));
    EXPECT_EQ(first.status, 200u);
    EXPECT_EQ(first.body, "ok");
    std::this_thread::sleep_for(50ms);
    const auto next = client.roundtrip(get_request("/next"));
    EXPECT_EQ(next.status, 200u);
    EXPECT_EQ(next.body, "next") << "the upstream's extra bytes were read as the next answer";
    EXPECT_EQ(upstream.connections(), 2u);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, FramingOverrun,
    ::testing::Values(
        // nginx: "upstream sent more data than specified in Content-Length"; not kept alive.
        OverrunRow{"BodyLongerThanContentLength", answer("Content-Length: 2\r\n", "okEXTRA")},
        OverrunRow{"SecondResponse", answer("Content-Length: 2\r\n", "ok") + answer("Content-Length: 4\r\n", "evil")},
        OverrunRow{"BytesAfterTheLastChunk", answer("Transfer-Encoding: chunked\r\n", chunk("ok") + "0\r\n\r\nX")}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
