// exchange_failure.cpp: see exchange_failure.hpp. The table is the one place a failure's answer is decided.
#include "proxy/exchange_failure.hpp"

#include <array>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

namespace crudcast::proxy {

namespace http = beast::http;

namespace {

using config::LogLevel;
using enum Failure;
constexpr auto none = FailureCounter::none;
constexpr auto bad_gateway = FailureCounter::bad_gateway;
constexpr auto gateway_timeout = FailureCounter::gateway_timeout;
constexpr auto client_closed = FailureCounter::client_closed;
constexpr std::string_view write_retry = "retry: reused upstream connection failed on write, using a new one";
constexpr std::string_view answer_retry = "retry: reused upstream connection closed before answering, using a new one";

// clang-format off
constexpr std::array<FailureRule, failure_count> rules{{
    // A connect failure is 502 even when it timed out: the upstream was never reached, and the
    // client's request body (if any) is still unread, so only a body-less request keeps its connection.
    {.kind = connect_failed, .status = 502, .error = "bad_gateway", .counter = bad_gateway,
     .after = AfterFailure::keep_if_no_body, .retry = Retry::never},
    {.kind = connect_timeout, .status = 502, .error = "bad_gateway", .counter = bad_gateway,
     .after = AfterFailure::keep_if_no_body, .retry = Retry::never},
    // A write can fail on a pooled connection the upstream closed while it idled: replay once.
    {.kind = send_failed, .status = 502, .error = "bad_gateway", .counter = bad_gateway,
     .after = AfterFailure::close, .retry = Retry::if_replayable, .retry_line = write_retry},
    {.kind = send_timeout, .status = 504, .error = "gateway_timeout", .counter = gateway_timeout,
     .after = AfterFailure::close, .retry = Retry::if_replayable, .retry_line = write_retry},
    // A slow upstream is never asked twice: the request may be running there still.
    {.kind = head_timeout, .status = 504, .error = "gateway_timeout", .counter = gateway_timeout,
     .after = AfterFailure::keep, .retry = Retry::never},
    {.kind = head_closed, .status = 502, .error = "bad_gateway", .counter = bad_gateway,
     .after = AfterFailure::keep, .retry = Retry::if_replayable_unanswered, .retry_line = answer_retry},
    {.kind = head_invalid, .status = 502, .error = "bad_gateway", .counter = bad_gateway,
     .after = AfterFailure::keep, .retry = Retry::if_replayable_unanswered, .retry_line = answer_retry},
    // Transfer-Encoding not exactly chunked, with Content-Length, or Content-Length repeated or not a
    // number (RFC 9112 §6.3): the response's end is unknown, so neither it nor its connection is used.
    {.kind = head_framing, .status = 502, .error = "bad_gateway", .counter = bad_gateway,
     .after = AfterFailure::keep, .retry = Retry::never},
    // The status line already went out: the client learns of it by the connection closing early.
    {.kind = response_broke_off, .status = 0, .error = {}, .counter = none, .after = AfterFailure::close,
     .retry = Retry::never, .level = LogLevel::warn,
     .line = "upstream response broke off; closing the client connection"},
    // Held whole for its event (X-Crudcast-Seq in its head): nothing went out, so the client gets a
    // 502 instead of a closed connection. The upstream connection is dropped.
    {.kind = held_response_broke_off, .status = 502, .error = "bad_gateway", .counter = bad_gateway,
     .after = AfterFailure::keep, .retry = Retry::never},
    // Nothing of the response went out yet: the client hears why. The upstream connection is dropped.
    {.kind = response_framing_too_large, .status = 502, .error = "bad_gateway", .counter = bad_gateway,
     .after = AfterFailure::keep, .retry = Retry::never},
    {.kind = upgrade_send_failed, .status = 502, .error = "bad_gateway", .counter = bad_gateway,
     .after = AfterFailure::close, .retry = Retry::never},
    {.kind = upgrade_head_timeout, .status = 504, .error = "gateway_timeout", .counter = gateway_timeout,
     .after = AfterFailure::close, .retry = Retry::never},
    {.kind = upgrade_head_failed, .status = 502, .error = "bad_gateway", .counter = bad_gateway,
     .after = AfterFailure::close, .retry = Retry::never},
    {.kind = body_too_large, .status = 413, .error = "body_too_large", .counter = none,
     .after = AfterFailure::close, .retry = Retry::never},
    // The stalled read was cancelled, not the socket closed: the client hears the 408.
    {.kind = body_stalled, .status = 408, .error = "request_timeout", .counter = none,
     .after = AfterFailure::close, .retry = Retry::never},
    {.kind = body_malformed, .status = 400, .error = "bad_request", .counter = none,
     .after = AfterFailure::close, .retry = Retry::never},
    // Chunk extensions and trailers are header bytes: over max-header-bytes is 431, as for the head.
    {.kind = body_framing_too_large, .status = 431, .error = "header_too_large", .counter = none,
     .after = AfterFailure::close, .retry = Retry::never},
    // Client closed before a response, as nginx logs it.
    {.kind = client_gone_mid_request, .status = 499, .error = {}, .counter = none,
     .after = AfterFailure::close, .retry = Retry::never},
    // The upstream connection holds unread body bytes: it is dropped with the lease.
    {.kind = client_gone_mid_response, .status = 0, .error = {}, .counter = none,
     .after = AfterFailure::close, .retry = Retry::never},
    // No access line here has always been the behaviour (noted for the hardening issue).
    {.kind = client_gone_at_interim, .status = 0, .error = {}, .counter = none,
     .after = AfterFailure::close, .retry = Retry::never, .access_line = false},
    // Nobody is left to answer: logged as 499, as nginx logs a client that closed; the upstream
    // connection is closed (the upstream sees the cancel), never pooled.
    {.kind = client_left, .status = 499, .error = {}, .counter = client_closed, .after = AfterFailure::close,
     .retry = Retry::never, .line = "client left before the response head; upstream request cancelled"},
}};
// clang-format on

constexpr bool rules_in_enum_order() {
    for (std::size_t i = 0; i < rules.size(); ++i)
        if (static_cast<std::size_t>(rules[i].kind) != i) return false;
    return true;
}
static_assert(rules_in_enum_order(), "one rule per Failure, in the enum's order");

}  // namespace

const FailureRule& failure_rule(Failure kind) { return rules[static_cast<std::size_t>(kind)]; }

// A switch, not an array by position: a new or reordered kind cannot get another kind's name, and
// one without a case fails the build (-Wswitch).
std::string_view failure_name(Failure kind) {
#define CRUDCAST_FAILURE_NAME(k) \
    case k: return #k;
    switch (kind) {
        CRUDCAST_FAILURE_NAME(connect_failed)
        CRUDCAST_FAILURE_NAME(connect_timeout)
        CRUDCAST_FAILURE_NAME(send_failed)
        CRUDCAST_FAILURE_NAME(send_timeout)
        CRUDCAST_FAILURE_NAME(head_timeout)
        CRUDCAST_FAILURE_NAME(head_closed)
        CRUDCAST_FAILURE_NAME(head_invalid)
        CRUDCAST_FAILURE_NAME(head_framing)
        CRUDCAST_FAILURE_NAME(response_framing_too_large)
        CRUDCAST_FAILURE_NAME(response_broke_off)
        CRUDCAST_FAILURE_NAME(held_response_broke_off)
        CRUDCAST_FAILURE_NAME(upgrade_send_failed)
        CRUDCAST_FAILURE_NAME(upgrade_head_timeout)
        CRUDCAST_FAILURE_NAME(upgrade_head_failed)
        CRUDCAST_FAILURE_NAME(body_too_large)
        CRUDCAST_FAILURE_NAME(body_stalled)
        CRUDCAST_FAILURE_NAME(body_malformed)
        CRUDCAST_FAILURE_NAME(body_framing_too_large)
        CRUDCAST_FAILURE_NAME(client_gone_mid_request)
        CRUDCAST_FAILURE_NAME(client_gone_mid_response)
        CRUDCAST_FAILURE_NAME(client_gone_at_interim)
        CRUDCAST_FAILURE_NAME(client_left)
    }
#undef CRUDCAST_FAILURE_NAME
    return "unknown";
}

void FailureWarnings::flush(bool all) {
    summary_.flush(
        [](std::size_t kind, std::uint64_t repeated, std::uint32_t since_ms) {
            if (kind == failure_count) {
                log::write(LogLevel::warn, "own refusals repeated",
                           {{"repeated", repeated}, {"in_last_ms", static_cast<std::uint64_t>(since_ms)}});
                return;
            }
            const auto failure = static_cast<Failure>(kind);
            const auto& rule = failure_rule(failure);
            log::write(LogLevel::warn, "upstream failures repeated",
                       {{"kind", failure_name(failure)},
                        {"status", rule.status},
                        {"repeated", repeated},
                        {"in_last_ms", static_cast<std::uint64_t>(since_ms)}});
        },
        all);
}

std::string failure_detail(Failure kind, const error_code& ec, std::string_view pool_detail,
                           const config::Config& cfg) {
    switch (kind) {
        case connect_failed:
        case connect_timeout: return std::string(pool_detail);
        case send_failed: return "sending the request to the upstream failed: " + ec.message();
        case send_timeout: return "the upstream did not take the request within upstream-timeout";
        case head_timeout:
            return "no response from the upstream within upstream-timeout (" +
                   std::to_string(cfg.upstream_timeout.count()) + "ms)";
        case head_closed: return "upstream closed the connection without a response";
        case head_invalid: return "invalid response from the upstream: " + ec.message();
        case head_framing: return "invalid response framing from the upstream: " + std::string(pool_detail);
        case response_broke_off: return "upstream failed mid-response: " + ec.message();
        case held_response_broke_off: return "upstream failed mid-response, before any of it was sent: " + ec.message();
        case response_framing_too_large:
            return "upstream response's chunk extensions or trailers exceed " + std::to_string(upstream_header_limit) +
                   " bytes";
        case upgrade_send_failed: return "sending the upgrade request failed";
        case upgrade_head_timeout:
        case upgrade_head_failed: return "upstream did not answer the upgrade request: " + ec.message();
        case body_too_large:
            return "request body exceeds max-body-bytes (" + std::to_string(cfg.max_body_bytes) + " bytes)";
        case body_stalled:
            return "request body stalled past client-body-timeout (" + std::to_string(cfg.client_body_timeout.count()) +
                   "ms)";
        case body_malformed: return "malformed request body: " + ec.message();
        case body_framing_too_large:
            return "request chunk extensions or trailers exceed max-header-bytes (" +
                   std::to_string(cfg.max_header_bytes) + " bytes)";
        case client_gone_mid_request: return "client request body: " + ec.message();
        case client_gone_mid_response: return "client went away: " + ec.message();
        case client_gone_at_interim: return "client went away before an interim answer: " + ec.message();
        case client_left: return "client_closed: the client left before the response; upstream request cancelled";
    }
    return {};
}

Failure classify_head_error(const error_code& ec) {
    if (ec == beast::error::timeout) return head_timeout;
    if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset)
        return head_closed;
    return head_invalid;
}

Failure classify_request_body_error(const error_code& ec) {
    if (ec == http::error::body_limit) return body_too_large;
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) return body_framing_too_large;
    if (ec == beast::error::timeout) return body_stalled;
    if (!is_client_gone(ec)) return body_malformed;
    return client_gone_mid_request;
}

bool is_client_gone(const error_code& ec) {
    return ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::eof ||
           ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
           ec == asio::error::operation_aborted;
}

}  // namespace crudcast::proxy
