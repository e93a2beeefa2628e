// ws_counters.hpp: the WebSocket subscribers' counters, shared by all worker threads, each declared
// once with its names in /metrics and /api/stats (common/stats.hpp).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/stats.hpp"

namespace crudcast::gateway {

// X(type, member, Prometheus name, /api/stats key, help), in the order both exporters write them.
// `open` is in /api/stats only: /metrics has the subscribers by topic (by_topic_info), and one family
// cannot have a series without the topic label beside those with it.
#define CRUDCAST_WEBSOCKET_STATS(X)                                                                                  \
    X(gauge, open, "", "websocket_subscribers", "WebSocket subscribers connected now")                               \
    X(counter, connections, "crudcast_websocket_connections_total", "websocket_connections_total",                   \
      "WebSocket subscribers ever connected")                                                                        \
    X(counter, frames_sent, "crudcast_websocket_frames_sent_total", "websocket_frames_sent",                         \
      "Event frames written to subscribers")                                                                         \
    X(counter, slow_closes, "crudcast_websocket_slow_closes_total", "websocket_slow_closes",                         \
      "Subscribers closed with 1013 because their queue overflowed")                                                 \
    X(counter, write_timeouts, "crudcast_websocket_write_timeouts_total", "websocket_write_timeouts",                \
      "Subscribers dropped because a write made no progress within ws-write-timeout")                                \
    X(counter, credential_expiries, "crudcast_websocket_credential_expiries_total", "websocket_credential_expiries", \
      "Subscribers closed with 1008 because their token expired")                                                    \
    X(counter, resumes, "crudcast_websocket_resumes_total", "websocket_resumes",                                     \
      "Subscribers that resumed after a position (since=, Last-Event-ID)")                                           \
    X(counter, replayed_frames, "crudcast_websocket_replayed_frames_total", "websocket_replayed_frames",             \
      "Event frames replayed from the history to resuming subscribers")

// Why a handshake at the ws path was refused: the `reason` on the access line (ws=denied reason=...)
// and the label of crudcast_websocket_denied_total. The JWT reasons are gateway/auth's JwtVerdict's.
inline constexpr std::array<std::string_view, 19> ws_deny_reasons = {
    "bad_request",           // a bad topic list (400)
    "origin",                // ws-allowed-origins, or a cookie from a foreign Origin (403)
    "rate_limited",          // ws-handshake-rate (429)
    "token_missing",         // jwt: no Authorization: Bearer and no access_token (401)
    "malformed",             // jwt: not a well-formed token (401)
    "algorithm",             // jwt: alg is not jwt-algorithm (401)
    "unknown_kid",           // jwt: no key with the token's kid (401)
    "bad_signature",         // jwt (401)
    "expired",               // jwt (401)
    "not_yet_valid",         // jwt (401)
    "issuer",                // jwt (401)
    "audience",              // jwt (401)
    "no_topics_claim",       // jwt with jwt-require-topics (403)
    "bad_topics_claim",      // jwt: the claim is not a list of topics (403)
    "topic_not_allowed",     // a topic outside the token's claim or the API's answer (403)
    "unauthorized",          // forward: the API answered 401
    "forbidden",             // forward: the API answered 403
    "auth_unavailable",      // forward: no usable answer in time (503)
    "too_many_subscribers",  // ws-max-subscribers (503)
};

// Why a resuming subscriber was told of a gap, in the order of bus::GapReason.
inline constexpr std::array<std::string_view, 3> gap_reasons = {"history", "restart", "bus"};

struct WebSocketCounters {
    CRUDCAST_WEBSOCKET_STATS(CRUDCAST_STAT_MEMBER)

    // Refused handshakes by reason, in the order of ws_deny_reasons.
    std::array<std::atomic<std::uint64_t>, ws_deny_reasons.size()> denied_by{};
    static constexpr stats::Info denied_info{"counter",
                                             "crudcast_websocket_denied_total",
                                             "WebSocket handshakes refused, by reason",
                                             "websocket_denied_by",
                                             {}};
    // Gap messages sent, by reason (gap_reasons).
    std::array<std::atomic<std::uint64_t>, gap_reasons.size()> gaps{};
    static constexpr stats::Info gaps_info{"counter",
                                           "crudcast_websocket_gaps_total",
                                           "Gap messages sent to resuming subscribers, by reason",
                                           "websocket_gaps_by",
                                           {}};
    // The bus's history and position (bus::InMemoryBus::history_usage, position), exported beside these.
    static constexpr stats::Info history_events_info{"gauge",
                                                     "crudcast_history_events",
                                                     "Events kept for resuming subscribers (history-size)",
                                                     "history_events",
                                                     {}};
    static constexpr stats::Info history_bytes_info{"gauge",
                                                    "crudcast_history_bytes",
                                                    "Bytes of events kept for resuming subscribers (history-bytes)",
                                                    "history_bytes",
                                                    {}};
    static constexpr stats::Info position_info{
        "gauge", "crudcast_stream_position", "The seq of the last event published (X-Crudcast-Seq)", "position", {}};
    // Counts a refusal; false when `reason` is not in ws_deny_reasons (not counted).
    bool count_denied(std::string_view reason) {
        for (std::size_t i = 0; i < ws_deny_reasons.size(); ++i) {
            if (ws_deny_reasons[i] == reason) {
                denied_by[i].fetch_add(1, std::memory_order_relaxed);
                return true;
            }
        }
        return false;
    }

    // Subscribers by topic: the bus counts them (bus::InMemoryBus::subscriber_counts), these are their names.
    static constexpr stats::Info by_topic_info{"gauge",
                                               "crudcast_websocket_subscribers",
                                               "WebSocket subscribers, by topic",
                                               "websocket_subscribers_by_topic",
                                               {}};

    // Takes one of `max` subscriber places (ws-max-subscribers): false when all are taken. The
    // session created for it gives the place back when it ends (it owns one unit of `open`).
    bool reserve_subscriber(std::size_t max) {
        auto n = open.load(std::memory_order_relaxed);
        do {
            if (n >= static_cast<std::int64_t>(max)) return false;
        } while (!open.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
        return true;
    }

    // visit(const stats::Info&, value) for each counter of CRUDCAST_WEBSOCKET_STATS, in its order.
    template <class Visit>
    void for_each_stat(Visit&& visit) const {
        CRUDCAST_WEBSOCKET_STATS(CRUDCAST_STAT_VISIT)
    }
};

}  // namespace crudcast::gateway
