// session_resume.cpp: the parts of a WebSocketSession that resume a subscriber (?since=,
// Last-Event-ID: the replay from the bus's history and the gap message) and that serve it as
// Server-Sent Events instead of WebSocket frames. See websocket_session.hpp.
#include <algorithm>

#include <boost/asio/write.hpp>

#include "bus/history.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "gateway/ws/websocket_session.hpp"

namespace crudcast::gateway {

using config::LogLevel;

namespace {

// One replay write carries at most this much: the socket paces the replay, not a queue.
constexpr std::size_t replay_read_bytes = 256 * 1024;

}  // namespace

void WebSocketSession::subscribe(const http::request<http::buffer_body>& request) {
    const auto position = shard_.subscribe(this);
    const auto last_event_id = request.find("Last-Event-ID");
    since_ = resume_position(request.target(), last_event_id == request.end() ? "" : last_event_id->value(),
                             last_event_id != request.end())
                 .since;  // checked (400) by the admission before the handoff
    if (!since_) return;
    const auto plan = shard_.bus().plan_resume(*since_, position, topics_);
    // The history serves everything up to where it ends when the reader catches up; events after
    // `position` reach this thread's log too, and the log's copies of what the history served are
    // passed over. Until then the cursor follows the log, so a replay holds no live frames.
    replay_after_ = plan.replay_after;
    skip_through_ = position;
    replaying_ = true;
    auto& counters = shard_.counters();
    counters.resumes.fetch_add(1, std::memory_order_relaxed);
    if (plan.gap) {
        gap_ = plan.gap;
        counters.gaps[static_cast<std::size_t>(plan.gap->reason)].fetch_add(1, std::memory_order_relaxed);
        const auto json = bus::gap_json(*plan.gap);
        writer_.queue_control(sse() ? "event: gap\ndata: " + json + "\n\n" : bus::websocket_text_frame(json));
    }
    if (log::enabled(LogLevel::debug)) {
        log::write(LogLevel::debug, "resume planned",
                   {{"rid", request_id_},
                    {"since", *since_},
                    {"replay_after", replay_after_},
                    {"position", position},
                    {"gap", gap_ ? bus::gap_reason_name(gap_->reason) : std::string_view("-")}});
    }
}

void WebSocketSession::on_bus_gap(const std::string& gap_json) {
    if (state_ != State::handshaking && state_ != State::open) return;
    shard_.counters().gaps[static_cast<std::size_t>(bus::GapReason::bus)].fetch_add(1, std::memory_order_relaxed);
    queue_control(sse() ? "event: gap\ndata: " + gap_json + "\n\n" : bus::websocket_text_frame(gap_json));
}

bool WebSocketSession::fetch_replay() {
    while (replaying_ && replay_batch_.empty()) {
        const auto upto = shard_.bus().read_history(replay_after_, topics_, replay_read_bytes, replay_batch_);
        if (!upto) {
            // Events this subscriber wants were dropped from the history while it read slowly: it
            // cannot catch up without a hole. It is closed as too slow; when it resumes, the gap
            // message tells it what is lost.
            replay_batch_.clear();
            shard_.counters().slow_closes.fetch_add(1, std::memory_order_relaxed);
            log::write(LogLevel::warn,
                       sse() ? "sse subscriber too slow for its replay; closing it"
                             : "websocket subscriber too slow for its replay; closing it with 1013",
                       {{"client", client_address_},
                        {"topics", join(topics_)},
                        {"since", since_.value_or(0)},
                        {"replayed_to", replay_after_},
                        {"rid", request_id_}});
            close_with(1013, "subscriber too slow: the history moved past its replay (resume with since=)");
            return false;
        }
        const bool progressed = *upto > replay_after_;
        replay_after_ = *upto;
        skip_through_ = std::max(skip_through_, replay_after_);
        if (!progressed) replaying_ = false;  // nothing retained after it: live from the log
    }
    skip_replayed();
    return !replay_batch_.empty();
}

void WebSocketSession::skip_replayed() {
    // Log entries up to skip_through_ were (or will be) served from the history, or are before
    // `since`: passed over. Entries are in seq order, so the first later one ends the walk.
    const auto& log = shard_.log();
    auto cursor = subscription_.cursor();
    for (; cursor < log.end_index(); ++cursor) {
        const auto& e = log.entry(cursor);
        if (e.seq > skip_through_) break;
        if (!subscription_.all() && subscription_.wants(e.topic)) subscription_.count_sent(1, e.size);
    }
    subscription_.advance(cursor);
}

asio::awaitable<error_code> WebSocketSession::write_sse_head(const http::request<http::buffer_body>& request) {
    // The stream is the rest of the connection (no length, no chunks): it ends when crudcast closes it.
    std::string head =
        "HTTP/1.1 200 OK\r\nServer: crudcast\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "X-Accel-Buffering: no\r\nConnection: close\r\nX-Request-ID: " +
        request_id_ + "\r\n";
    if (const auto origin = request[http::field::origin]; !origin.empty()) {
        // The admission checked the origin (ws-allowed-origins); a listed one may send credentials.
        head += "Access-Control-Allow-Origin: " + std::string(origin) + "\r\nVary: Origin\r\n";
        if (!shard_.config().ws_allowed_origins.empty()) head += "Access-Control-Allow-Credentials: true\r\n";
    }
    head += "\r\n";
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(head), use_nothrow);
    (void)n;
    co_return ec;
}

}  // namespace crudcast::gateway
