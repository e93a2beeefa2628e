// exchange_failure.hpp: every way a forwarded exchange can fail once crudcast has accepted the request,
// and what crudcast does about each, in one table (nginx's ngx_http_upstream_next): the status, the
// JSON error and its detail, the counter, the log line, the client connection and the retry rule.
// Pure, no I/O; DownstreamSession::fail carries a rule out; tested in tests/exchange_failure_test.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/asio.hpp"
#include "common/log.hpp"
#include "common/warn_summary.hpp"
#include "config/config.hpp"

namespace crudcast::proxy {

// The largest response head crudcast reads from the upstream; the response's chunk extensions
// and trailers count against it too.
inline constexpr std::size_t upstream_header_limit = 64 * 1024;

enum class Failure : std::uint8_t {
    // The upstream side.
    connect_failed,              // no connection: the upstream's name did not resolve or it refused
    connect_timeout,             // no connection within connect-timeout
    send_failed,                 // writing the request to the upstream failed
    send_timeout,                // the upstream took no request bytes within upstream-timeout
    head_timeout,                // no response head within upstream-timeout
    head_closed,                 // the upstream closed (or reset) the connection before a response head
    head_invalid,                // what came back is not an HTTP response head
    head_framing,                // the response head's framing is ambiguous (proxy/framing.hpp): never reused
    response_broke_off,          // the upstream failed mid-body: the head is already with the client
    held_response_broke_off,     // the upstream failed mid-body of a response held for its event: nothing
                                 // of it reached the client yet, so the client hears a 502
    response_framing_too_large,  // the response's chunk lines or trailers passed the response header
                                 // limit before any byte of it reached the client
    upgrade_send_failed,         // a tunnelled upgrade request could not be sent
    upgrade_head_timeout,        // no answer to an upgrade request within upstream-timeout
    upgrade_head_failed,         // the upstream closed or garbled its answer to an upgrade request
    // The client side.
    body_too_large,            // the request body passed max-body-bytes while it streamed
    body_stalled,              // a read of the request body stalled past client-body-timeout
    body_malformed,            // the request body's framing is broken (bad chunk)
    body_framing_too_large,    // the request body's chunk lines or trailers passed max-header-bytes
    client_gone_mid_request,   // the client closed while sending its body
    client_gone_mid_response,  // the client closed (or stalled) while the response streamed to it
    client_gone_at_interim,    // the client closed before it got a 100 Continue or a 101 head
    client_left,               // the client left while the upstream worked on a request that cannot publish: cancelled
};
inline constexpr std::size_t failure_count = static_cast<std::size_t>(Failure::client_left) + 1;

// The counters a failure may bump (ProxyCounters members of the same name).
enum class FailureCounter : std::uint8_t { none, bad_gateway, gateway_timeout, client_closed };

// The client's connection after the failure (a drain closes it in any case).
enum class AfterFailure : std::uint8_t {
    close,            // the request or response is half-way: the connection's framing is lost
    keep_if_no_body,  // the request body was never read: the connection is clean only without one
    keep,             // the request was read whole: the client may send another
};

// When a failed attempt is replayed on a fresh connection. Only a body-less idempotent request on a
// reused pooled connection, on its first attempt, is replayable (a keep-alive connection the upstream
// closed while it idled looks healthy until it is used); never twice.
enum class Retry : std::uint8_t {
    never,
    if_replayable,             // the request never fully left
    if_replayable_unanswered,  // ... and not one byte of an answer came back
};

struct FailureRule {
    Failure kind;
    // The status answered with crudcast's JSON error, or only logged when `error` is empty (the
    // client cannot be answered: 408 and 499 as nginx logs them); 0 keeps the upstream's status,
    // whose head has already gone out.
    unsigned status;
    std::string_view error;  // the JSON error name; empty: no answer is written
    FailureCounter counter;
    AfterFailure after;
    Retry retry;
    std::string_view retry_line = {};  // the debug line of a retry
    // The failure's own line when crudcast cannot answer (an answer logs "crudcast answered itself").
    log::LogLevel level = log::LogLevel::debug;
    std::string_view line = {};
    bool access_line = true;  // false only where no access line was ever written (see the table)

    bool answers() const { return !error.empty(); }
    bool keeps_client(bool client_keep_alive, bool has_body) const {
        return after == AfterFailure::keep              ? client_keep_alive
               : after == AfterFailure::keep_if_no_body ? client_keep_alive && !has_body
                                                        : false;
    }
    // `replayable`: reused pooled connection, first attempt, idempotent, no body.
    // `answered`: bytes of a response arrived from the upstream.
    bool retries(bool replayable, bool answered) const {
        return retry == Retry::if_replayable              ? replayable
               : retry == Retry::if_replayable_unanswered ? replayable && !answered
                                                          : false;
    }
};

const FailureRule& failure_rule(Failure kind);
// The kind's name in logs: "connect_failed", ...
std::string_view failure_name(Failure kind);

// A failing upstream fails every request (a 3 s outage under load was 42,800 warn lines): the warn
// line of each failure kind is written at most once a second. The first failure of a burst has its
// line at once; the ones after it in that second are logged at debug only and counted, and the count
// is written with the kind's next warn line (`repeated=N`) or, when the burst is over, on a line of
// its own ("upstream failures repeated") by flush(), which the gateway calls every 100 ms and at exit.
// Shared by all threads; one atomic operation per failure.
class FailureWarnings {
public:
    FailureWarnings() : summary_(failure_count + 1, std::chrono::seconds(1)) {}
    // Whether this failure's warn line is written now, and how many earlier ones it speaks for.
    log::WarnSummary::Decision record(Failure kind) { return summary_.record(static_cast<std::size_t>(kind)); }
    // The same for a 5xx crudcast answers for a reason of its own, no upstream failure (e.g. a
    // handshake over ws-max-subscribers): a reconnect storm must not write a line per attempt.
    log::WarnSummary::Decision record_own_refusal() { return summary_.record(failure_count); }
    // The "upstream failures repeated" line of each kind whose second is over with failures not yet
    // written (`all`: every kind's count now, at exit).
    void flush(bool all = false);

private:
    log::WarnSummary summary_;
};

// The detail of the JSON error (and the access line's error field). `ec` is the failed operation's
// error, `pool_detail` the pool's sentence when no connection was had (or the framing refusal, head_framing).
std::string failure_detail(Failure kind, const error_code& ec, std::string_view pool_detail, const config::Config& cfg);

// Which failure a failed read of the upstream's response head is (`ec` is beast's timeout when the
// deadline passed): timed out, closed before answering, or not HTTP.
Failure classify_head_error(const error_code& ec);
// Which failure a failed read of the client's request body is.
Failure classify_request_body_error(const error_code& ec);
// The client closed or reset its connection (as opposed to sending something malformed).
bool is_client_gone(const error_code& ec);

}  // namespace crudcast::proxy
