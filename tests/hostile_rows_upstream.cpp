// hostile_rows_upstream.cpp: the hostile table's upstream faults (part of hostile_test). A row is
// how the upstream answers GET /row (refused, reset, truncated, slow, two answers, interim answers,
// a 101 nobody asked for, no framing, a body where none may be); then what the client reads, whether
// its connection stays usable, the access line's status and error, and that the next request (on
// the same connection when it stays, else a new one) gets its own answer: nothing of the fault
// reaches it. One worker thread, so the next request would get a pooled upstream connection. Each
// row says what nginx (1.25, proxy_pass with keepalive upstreams) does.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "tests/hostile_rows.hpp"

namespace {

using namespace crudcast;
using namespace crudcast::hostile;

// `release` opens once the client has read its answer; a fault written after the answer opens `delivered`.
using Reply = std::function<UpstreamReply(const RecordedRequest&, Gate& release, Gate& delivered)>;

struct UpstreamRow {
    const char* name;
    Reply reply;        // the answer to /row
    unsigned status;    // what the client reads; 0: the connection ends before the response is complete
    const char* body;   // the body it reads, when status is not 0
    bool kept;          // the client connection stays usable
    unsigned logged;    // the access line's status
    const char* error;  // how the access line's error starts ("" = no error, nullptr = any error)
    const char* nginx;
    std::string request = get_request("/row");
    bool settle = false;     // the fault comes after the answer: wait for `delivered` before the next request
    bool may_reuse = false;  // the upstream connection is sound afterwards (else /next must come on a new one)
};

void PrintTo(const UpstreamRow& row, std::ostream* os) { *os << row.name; }

UpstreamReply bytes(std::string wire, bool close_after = false) {
    return {UpstreamReply::Kind::respond, std::move(wire), {}, close_after};
}
// `wire`, then the connection ends with RST instead of FIN.
UpstreamReply bytes_then_reset(std::string wire) {
    UpstreamReply r = bytes(std::move(wire));
    r.then = [](Socket& s) {
        const linger abort{1, 0};
        ::setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    };
    return r;
}
// `wire`, then nothing more until the test releases the connection.
UpstreamReply bytes_then_stall(std::string wire, Gate& release) {
    UpstreamReply r = bytes(std::move(wire));
    r.then = [&release](Socket&) { release.wait(); };
    return r;
}
const std::string chunked_head =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
const std::string ok_row = http_response(200, "OK", {{{"Content-Type", "application/json"}}}, "row");

// clang-format off
const UpstreamRow upstream_rows[] = {
    {"Refused", {}, 502, nullptr, true, 502, "connect to upstream",
     "502: connect() failed (111: Connection refused); the client connection stays"},
    {"ResetBeforeAnswering", [](const RecordedRequest&, Gate&, Gate&) { return bytes_then_reset(""); }, 502, nullptr, true,
     502, nullptr, "502: recv() failed (104: Connection reset by peer) while reading response header"},
    {"ResetMidBody",
     [](const RecordedRequest&, Gate&, Gate&) { return bytes_then_reset("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"); },
     0, nullptr, false, 200, "upstream failed mid-response",
     "sends what it has, then closes the client connection (upstream prematurely closed connection)"},
    {"TruncatedChunkedBody",
     [](const RecordedRequest&, Gate&, Gate&) { return bytes(chunked_head + "5\r\nhello\r\n", true); },
     0, nullptr, false, 200, "upstream failed mid-response",
     "sends the chunks it has, never the last chunk, and closes the client connection"},
    {"SlowHeadThenALateAnswer",
     [](const RecordedRequest&, Gate& release, Gate&) { release.wait(); return UpstreamReply::ok("late"); },
     504, nullptr, true, 504, "no response from the upstream within upstream-timeout",
     "504 (upstream timed out while reading response header); that upstream connection is closed"},
    {"SlowBody",
     [](const RecordedRequest&, Gate& release, Gate&) {
         return bytes_then_stall("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", release);
     },
     0, nullptr, false, 200, "upstream failed mid-response",
     "sends what it has; at proxy_read_timeout closes the client connection"},
    {"SecondResponseWrittenLater",
     [](const RecordedRequest&, Gate& release, Gate& delivered) {
         UpstreamReply r = UpstreamReply::ok("first");
         r.then = [&release, &delivered](Socket& s) {  // a second answer nobody asked for, after the first
             release.wait();
             s.send_all(http_response(200, "OK", {}, "evil"));
             delivered.open();  // on loopback the bytes are in crudcast's receive queue once send returns
             while (s.fill(forever) == Socket::Status::data) s.consume(s.buffered().size());
         };
         return r;
     },
     200, "first", true, 200, "",
     "an idle keepalive connection that becomes readable is closed, never reused", get_request("/row"), true},
    {"InterimResponsesBeforeTheAnswer",
     [](const RecordedRequest&, Gate&, Gate&) {
         return bytes("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
                      ok_row);
     },
     200, "row", true, 200, "", "1xx answers are skipped (1.25), the final one forwarded", get_request("/row"),
     false, true},
    {"SwitchingProtocolsWithoutAnUpgradeRequest",
     [](const RecordedRequest&, Gate& release, Gate&) {
         return bytes_then_stall("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
                                 release);
     },
     502, nullptr, true, 502, "invalid response framing from the upstream: 101", "502: upstream sent 101 without an upgrade request (invalid header)"},
    {"NoFramingOnAKeepAliveConnection",
     [](const RecordedRequest&, Gate& release, Gate&) {
         return bytes_then_stall("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npartial", release);
     },
     0, nullptr, false, 200, "upstream failed mid-response",
     "reads to close; at proxy_read_timeout closes the client connection without the last chunk"},
    {"NoContentWithABody",
     [](const RecordedRequest&, Gate&, Gate&) { return bytes("HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nevil"); },
     204, "", true, 204, "", "204 without a body; the stray bytes close that upstream connection"},
    {"BodyAnsweringHead", [](const RecordedRequest&, Gate&, Gate&) { return UpstreamReply::ok("evil"); }, 200, "", true,
     200, "", "200 without a body; the body bytes close that upstream connection",
     "HEAD /row HTTP/1.1\r\nHost: test\r\n\r\n"},
    {"HugeResponseHeader",
     [](const RecordedRequest&, Gate&, Gate&) {
         return bytes(http_response(200, "OK", {{{"X-Huge", std::string(100 * 1024, 'h')}}}, "row"));
     },
     502, nullptr, true, 502, "invalid response from the upstream",
     "502: upstream sent too big header (proxy_buffer_size, 4k or 8k)"},
    {"StatusCodeOfFourDigits", [](const RecordedRequest&, Gate&, Gate&) { return bytes("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"); },
     502, nullptr, true, 502, "invalid response from the upstream", "502: upstream sent no valid HTTP/1.0 header"},
};
// clang-format on

class HostileUpstream : public ::testing::TestWithParam<UpstreamRow> {};

TEST_P(HostileUpstream, AnswerAccessLineAndTheNextRequestIsClean) {
    const auto& row = GetParam();
    SCOPED_TRACE(std::string("nginx: ") + row.nginx);
    Gate release, delivered;
    const bool down = !row.reply;
    Stack stack(
        [&](const RecordedRequest& r) {
            return r.target == "/row" ? row.reply(r, release, delivered) : UpstreamReply::ok("next");
        },
        [](config::Config& c) { c.upstream_timeout = 300ms; }, down ? std::optional(free_port()) : std::nullopt);
    Client client(stack.port());
    client.send(row.request);
    ReadOptions options;
    options.head_request = row.request.starts_with("HEAD");
    if (row.status != 0) {
        const auto res = client.read_response(options);
        EXPECT_EQ(res.status, row.status) << res.body;
        if (row.body) {
            EXPECT_EQ(res.body, row.body);
        }
        EXPECT_EQ(res.keep_alive, row.kept);
    } else {
        try {
            const auto res = client.read_response();
            ADD_FAILURE() << "a complete response: " << res.status << " " << res.body;
        } catch (const std::runtime_error& e) {
            EXPECT_EQ(std::string_view(e.what()).find("timed out"), std::string_view::npos) << e.what();
        }
    }
    release.open();
    if (row.settle) {
        ASSERT_TRUE(delivered.wait());
    }
    std::optional<Client> fresh;
    if (!row.kept) {
        EXPECT_TRUE(client.closed_by_peer(3s)) << "crudcast kept a connection whose response broke off";
        fresh.emplace(stack.port());
    }
    const auto next = (fresh ? *fresh : client).roundtrip(get_request("/next"));
    EXPECT_EQ(next.status, down ? 502u : 200u);
    if (!down) {
        EXPECT_EQ(next.body, "next") << "the fault's bytes reached the next request";
        const auto seen = stack.upstream.requests();
        ASSERT_GE(seen.size(), 2u);
        if (!row.may_reuse) {
            EXPECT_NE(seen.front().connection, seen.back().connection) << "the faulty upstream connection was reused";
        }
    }

    const auto records = stack.records_when(2, std::nullopt);
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[0].status, row.logged);
    if (!row.error) {
        EXPECT_NE(records[0].error, "");
    } else if (!*row.error) {
        EXPECT_EQ(records[0].error, "");
    } else {
        EXPECT_TRUE(records[0].error.starts_with(row.error)) << records[0].error;
    }
}

INSTANTIATE_TEST_SUITE_P(Rows, HostileUpstream, ::testing::ValuesIn(upstream_rows),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
