// exchange_failure_test.cpp: the failure table (proxy/exchange_failure) row by row: what each kind of
// failure answers, which counter it moves, what it does with the client connection, when it retries,
// and the detail it writes. The same mapping is exercised over real sockets in proxy_failure_test.cpp.
#include <gtest/gtest.h>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include "proxy/exchange_failure.hpp"

namespace crudcast::proxy {
namespace {

namespace http = boost::beast::http;

struct Row {
    const char* name;
    Failure kind;
    unsigned status;
    const char* error;  // "" when crudcast cannot answer
    FailureCounter counter;
    AfterFailure after;
    Retry retry;
};

void PrintTo(const Row& r, std::ostream* os) { *os << r.name; }

class FailureTable : public ::testing::TestWithParam<Row> {};

TEST_P(FailureTable, MapsTheKindToItsAnswerCounterConnectionAndRetry) {
    const auto& row = GetParam();
    const auto& rule = failure_rule(row.kind);
    EXPECT_EQ(rule.kind, row.kind);
    EXPECT_EQ(failure_name(row.kind), row.name);  // the kind's name in logs ("upstream failures repeated")
    EXPECT_EQ(rule.status, row.status);
    EXPECT_EQ(rule.error, row.error);
    EXPECT_EQ(rule.answers(), std::string_view(row.error) != "");
    EXPECT_EQ(rule.counter, row.counter);
    EXPECT_EQ(rule.after, row.after);
    EXPECT_EQ(rule.retry, row.retry);
    EXPECT_EQ(rule.retry_line.empty(), row.retry == Retry::never);
}

using enum Failure;
constexpr auto bad_gateway = FailureCounter::bad_gateway;
constexpr auto gateway_timeout = FailureCounter::gateway_timeout;
constexpr auto no_counter = FailureCounter::none;
constexpr auto client_closed = FailureCounter::client_closed;
constexpr auto closes = AfterFailure::close;
constexpr auto keeps = AfterFailure::keep;
constexpr auto keep_if_no_body = AfterFailure::keep_if_no_body;
constexpr auto never = Retry::never;
constexpr auto if_replayable = Retry::if_replayable;
constexpr auto if_unanswered = Retry::if_replayable_unanswered;

INSTANTIATE_TEST_SUITE_P(
    EveryKind, FailureTable,
    ::testing::Values(
        Row{"connect_failed", connect_failed, 502, "bad_gateway", bad_gateway, keep_if_no_body, never},
        Row{"connect_timeout", connect_timeout, 502, "bad_gateway", bad_gateway, keep_if_no_body, never},
        Row{"send_failed", send_failed, 502, "bad_gateway", bad_gateway, closes, if_replayable},
        Row{"send_timeout", send_timeout, 504, "gateway_timeout", gateway_timeout, closes, if_replayable},
        Row{"head_timeout", head_timeout, 504, "gateway_timeout", gateway_timeout, keeps, never},
        Row{"head_closed", head_closed, 502, "bad_gateway", bad_gateway, keeps, if_unanswered},
        Row{"head_invalid", head_invalid, 502, "bad_gateway", bad_gateway, keeps, if_unanswered},
        Row{"head_framing", head_framing, 502, "bad_gateway", bad_gateway, keeps, never},
        Row{"response_broke_off", response_broke_off, 0, "", no_counter, closes, never},
        Row{"held_response_broke_off", held_response_broke_off, 502, "bad_gateway", bad_gateway, keeps, never},
        Row{"response_framing_too_large", response_framing_too_large, 502, "bad_gateway", bad_gateway, keeps, never},
        Row{"upgrade_send_failed", upgrade_send_failed, 502, "bad_gateway", bad_gateway, closes, never},
        Row{"upgrade_head_timeout", upgrade_head_timeout, 504, "gateway_timeout", gateway_timeout, closes, never},
        Row{"upgrade_head_failed", upgrade_head_failed, 502, "bad_gateway", bad_gateway, closes, never},
        Row{"body_too_large", body_too_large, 413, "body_too_large", no_counter, closes, never},
        Row{"body_stalled", body_stalled, 408, "request_timeout", no_counter, closes, never},
        Row{"body_malformed", body_malformed, 400, "bad_request", no_counter, closes, never},
        Row{"body_framing_too_large", body_framing_too_large, 431, "header_too_large", no_counter, closes, never},
        Row{"client_gone_mid_request", client_gone_mid_request, 499, "", no_counter, closes, never},
        Row{"client_gone_mid_response", client_gone_mid_response, 0, "", no_counter, closes, never},
        Row{"client_gone_at_interim", client_gone_at_interim, 0, "", no_counter, closes, never},
        Row{"client_left", client_left, 499, "", client_closed, closes, never}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(FailureTable, EveryKindHasARow) {
    EXPECT_EQ(failure_count, 22u) << "a new Failure needs a row above and in the table";
    for (std::size_t i = 0; i < failure_count; ++i)
        EXPECT_EQ(static_cast<std::size_t>(failure_rule(static_cast<Failure>(i)).kind), i);
}

TEST(FailureTable, ClientConnectionAfterAFailure) {
    const auto& connect = failure_rule(connect_failed);
    EXPECT_TRUE(connect.keeps_client(true, false));
    EXPECT_FALSE(connect.keeps_client(true, true)) << "an unread request body leaves the framing unknown";
    EXPECT_FALSE(connect.keeps_client(false, false));
    EXPECT_TRUE(failure_rule(head_timeout).keeps_client(true, true));
    EXPECT_FALSE(failure_rule(head_timeout).keeps_client(false, false));
    EXPECT_FALSE(failure_rule(send_failed).keeps_client(true, false));
}

TEST(FailureTable, RetriesOnlyAReplayableAttemptAndOnlyWhileUnanswered) {
    EXPECT_TRUE(failure_rule(send_failed).retries(true, true));
    EXPECT_FALSE(failure_rule(send_failed).retries(false, false));
    EXPECT_TRUE(failure_rule(send_timeout).retries(true, false));
    EXPECT_TRUE(failure_rule(head_closed).retries(true, false));
    EXPECT_FALSE(failure_rule(head_closed).retries(true, true)) << "bytes of an answer came back";
    EXPECT_FALSE(failure_rule(head_closed).retries(false, false));
    EXPECT_FALSE(failure_rule(head_timeout).retries(true, false)) << "a slow upstream is never asked twice";
    EXPECT_FALSE(failure_rule(connect_failed).retries(true, false));
}

TEST(FailureTable, OnlyTheLogOnlyKindsHaveTheirOwnLine) {
    EXPECT_EQ(failure_rule(response_broke_off).line, "upstream response broke off; closing the client connection");
    EXPECT_EQ(failure_rule(response_broke_off).level, log::LogLevel::warn);
    EXPECT_EQ(failure_rule(client_left).line, "client left before the response head; upstream request cancelled");
    EXPECT_EQ(failure_rule(head_closed).retry_line,
              "retry: reused upstream connection closed before answering, using a new one");
    EXPECT_EQ(failure_rule(send_failed).retry_line,
              "retry: reused upstream connection failed on write, using a new one");
    for (std::size_t i = 0; i < failure_count; ++i) {
        const auto& rule = failure_rule(static_cast<Failure>(i));
        if (rule.answers()) {
            EXPECT_TRUE(rule.line.empty()) << i << ": an answer logs \"crudcast answered itself\"";
        }
        EXPECT_EQ(rule.access_line, rule.kind != client_gone_at_interim) << i;
    }
}

struct DetailCase {
    Failure kind;
    boost::system::error_code ec;
    const char* expected;
};

TEST(FailureTable, Details) {
    config::Config cfg;
    cfg.upstream_timeout = std::chrono::milliseconds(1234);
    cfg.max_body_bytes = 1000;
    cfg.max_header_bytes = 2000;
    cfg.client_body_timeout = std::chrono::milliseconds(4321);
    const auto reset = make_error_code(boost::asio::error::connection_reset);
    const auto bad_chunk = make_error_code(http::error::bad_chunk);
    const DetailCase cases[] = {
        {connect_failed, {}, "the pool's sentence"},
        {connect_timeout, {}, "the pool's sentence"},
        {send_failed, reset, "sending the request to the upstream failed: "},
        {send_timeout, {}, "the upstream did not take the request within upstream-timeout"},
        {head_timeout, {}, "no response from the upstream within upstream-timeout (1234ms)"},
        {head_closed, reset, "upstream closed the connection without a response"},
        {head_invalid, bad_chunk, "invalid response from the upstream: "},
        {head_framing, {}, "invalid response framing from the upstream: the pool's sentence"},
        {response_broke_off, reset, "upstream failed mid-response: "},
        {held_response_broke_off, reset, "upstream failed mid-response, before any of it was sent: "},
        {upgrade_send_failed, reset, "sending the upgrade request failed"},
        {upgrade_head_timeout, reset, "upstream did not answer the upgrade request: "},
        {upgrade_head_failed, reset, "upstream did not answer the upgrade request: "},
        {body_too_large, {}, "request body exceeds max-body-bytes (1000 bytes)"},
        {response_framing_too_large, {}, "upstream response's chunk extensions or trailers exceed 65536 bytes"},
        {body_stalled, {}, "request body stalled past client-body-timeout (4321ms)"},
        {body_framing_too_large, {}, "request chunk extensions or trailers exceed max-header-bytes (2000 bytes)"},
        {client_left, {}, "client_closed: the client left before the response; upstream request cancelled"},
        {body_malformed, bad_chunk, "malformed request body: "},
        {client_gone_mid_request, reset, "client request body: "},
        {client_gone_mid_response, reset, "client went away: "},
    };
    for (const auto& c : cases) {
        std::string expected = c.expected;
        if (expected.ends_with(": ")) expected += c.ec.message();
        EXPECT_EQ(failure_detail(c.kind, c.ec, "the pool's sentence", cfg), expected) << static_cast<int>(c.kind);
    }
}

TEST(FailureTable, ClassifiesReadErrors) {
    EXPECT_EQ(classify_head_error(boost::beast::error::timeout), head_timeout);
    EXPECT_EQ(classify_head_error(http::error::end_of_stream), head_closed);
    EXPECT_EQ(classify_head_error(boost::asio::error::eof), head_closed);
    EXPECT_EQ(classify_head_error(boost::asio::error::connection_reset), head_closed);
    EXPECT_EQ(classify_head_error(http::error::bad_version), head_invalid);
    EXPECT_EQ(classify_request_body_error(http::error::body_limit), body_too_large);
    EXPECT_EQ(classify_request_body_error(boost::beast::error::timeout), body_stalled);
    EXPECT_EQ(classify_request_body_error(http::error::bad_chunk), body_malformed);
    EXPECT_EQ(classify_request_body_error(http::error::header_limit), body_framing_too_large);
    EXPECT_EQ(classify_request_body_error(http::error::buffer_overflow), body_framing_too_large);
    EXPECT_EQ(classify_request_body_error(http::error::partial_message), client_gone_mid_request);
    EXPECT_EQ(classify_request_body_error(boost::asio::error::connection_reset), client_gone_mid_request);
}

}  // namespace
}  // namespace crudcast::proxy
