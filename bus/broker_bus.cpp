// broker_bus.cpp: see broker_bus.hpp.
#include "bus/broker_bus.hpp"

#include <algorithm>
#include <bit>
#include <vector>

#include <rapidjson/reader.h>

#include "common/log.hpp"

namespace crudcast::bus {

using log::LogLevel;

namespace {

// Longer model names are not taken from the stream (plausible_entry), so none is appended either;
// the bound also keeps a NATS subject (escaped: up to three bytes per byte) below the server's
// 4 KiB limit on a protocol line, past which it drops the whole connection.
constexpr std::size_t kMaxModelBytes = 1024;

// A stream entry is crudcast's when its text, numbered, is one JSON object in valid UTF-8 and its
// model is a plausible topic: a broker shared with other programs is not trusted to hold only ours.
bool plausible_entry(std::string_view model, const std::string& json) {
    if (model.empty() || model.size() > kMaxModelBytes || !json.starts_with("{\"ts\":")) return false;
    rapidjson::Reader reader;
    rapidjson::StringStream stream(json.c_str());
    rapidjson::BaseReaderHandler<> ignore;
    // Iterative: an entry of a million '[' must not exhaust the reading thread's stack.
    constexpr unsigned flags =
        rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag | rapidjson::kParseStopWhenDoneFlag;
    return !reader.Parse<flags>(stream, ignore).IsError() && stream.Tell() == json.size();
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

BrokerBus::BrokerBus(InMemoryBus& local, std::unique_ptr<BrokerClient> client)
    : local_(local), client_(std::move(client)) {
    // Another instance may hand a client a position this one has not read yet (it lags by
    // milliseconds): that client then waits for it here instead of being told of a restart.
    local_.accept_ahead(std::uint64_t{1} << 20);
}

BrokerBus::~BrokerBus() { stop(); }

void BrokerBus::start(std::chrono::milliseconds catch_up) {
    client_->start(*this, 0);
    std::unique_lock lock(mutex_);
    // A broker that is down does not hold the start: its on_down line said so, and proxying goes on.
    const bool settled = caught_up_.wait_for(
        lock, catch_up, [this] { return read_once_.load() || stopped_ || state_.load() == BusState::down; });
    lock.unlock();
    if (!settled)
        log::write(LogLevel::warn,
                   state_.load() == BusState::up ? "bus: the stream's history is still being read; starting meanwhile"
                                                 : "bus: the broker has not answered yet; starting meanwhile",
                   {{"bus", client_->kind()}, {"waited_ms", static_cast<std::int64_t>(catch_up.count())}});
}

void BrokerBus::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopped_) return;
        stopped_ = true;
    }
    caught_up_.notify_all();
    client_->stop();
    std::multimap<std::uint64_t, PublishDone> waiters;
    {
        std::lock_guard lock(mutex_);
        waiters.swap(waiters_);
    }
    for (auto& [seq, done] : waiters) done(PublishResult{seq, 0, true});
}

PublishResult BrokerBus::publish(Event event) {
    const auto subscribers = local_.subscribers_of(event.model);
    publish_async(std::move(event), [](const PublishResult&) {});
    return PublishResult{0, subscribers, true};
}

void BrokerBus::publish_async(Event event, PublishDone done) {
    event.ts = now_ms();
    const auto subscribers = local_.subscribers_of(event.model);
    if (event.model.size() > kMaxModelBytes) {
        on_append(std::nullopt, "the model name is longer than 1024 bytes", subscribers, done);
        return;
    }
    auto text = serialize_unnumbered(event);
    client_->append(
        event.model, std::move(text),
        [this, subscribers, done = std::move(done)](std::optional<std::uint64_t> seq, std::string_view error) {
            on_append(seq, error, subscribers, done);
        });
}

void BrokerBus::on_append(std::optional<std::uint64_t> seq, std::string_view error, std::size_t subscribers,
                          const PublishDone& done) {
    if (!seq) {
        lost_.fetch_add(1, std::memory_order_relaxed);
        // Once per state change, not per request: a down broker must not flood the log.
        if (!losing_.exchange(true))
            log::write(LogLevel::warn, "bus: events are being lost (the broker did not take them); proxying goes on",
                       {{"bus", client_->kind()}, {"error", error}});
        done(PublishResult{0, subscribers, false});
        return;
    }
    note_known(*seq);
    {
        std::lock_guard lock(mutex_);
        if (local_.position().value_or(0) < *seq && !stopped_) {
            waiters_.emplace(*seq, [done, subscribers](const PublishResult& r) {
                done(PublishResult{r.seq, subscribers, true});
            });
            return;
        }
    }
    done(PublishResult{*seq, subscribers, true});
}

void BrokerBus::note_known(std::uint64_t seq) {
    auto known = known_.load(std::memory_order_relaxed);
    while (known < seq && !known_.compare_exchange_weak(known, seq)) {}
}

void BrokerBus::complete_waiters(std::uint64_t delivered) {
    std::vector<std::pair<std::uint64_t, PublishDone>> ready;
    {
        std::lock_guard lock(mutex_);
        const auto end = waiters_.upper_bound(delivered);
        for (auto it = waiters_.begin(); it != end; ++it) ready.emplace_back(it->first, std::move(it->second));
        waiters_.erase(waiters_.begin(), end);
    }
    for (auto& [seq, done] : ready) done(PublishResult{seq, 0, true});
}

void BrokerBus::tell_gap(std::uint64_t since, std::optional<std::uint64_t> next) {
    // Live subscribers now; a subscriber resuming later from before `since` through its plan.
    local_.mark_bus_loss(since);
    local_.broadcast_gap(gap_json(Gap{GapReason::bus, since, next}));
    gap_told_ = true;
}

void BrokerBus::on_connected(const StreamInfo& info) {
    std::unique_lock lock(mutex_);
    const bool first = !connected_once_;
    connected_once_ = true;
    const auto before = local_.position().value_or(0);
    const bool new_stream = first || info.offset != offset_;
    offset_ = info.offset;
    // An empty stream may have numbered entries it no longer holds (NATS keeps its last sequence):
    // the next entry follows its last.
    if (new_stream) local_.restart(info.first == 0 ? std::max(info.offset, info.last) : info.offset);
    note_known(info.last);
    const auto was = state_.exchange(BusState::up);
    losing_ = false;
    if (first) {
        catch_up_to_ = info.last;
        if (info.last <= info.offset || info.first == 0) read_once_ = true;
        // Started while the broker was down: whoever subscribed meanwhile missed the events of
        // that time. What the stream holds up to now is history, not news for them.
        if (was == BusState::down) tell_gap(std::max(info.offset, info.last), std::nullopt);
        lock.unlock();
        // Before the start line (start() waits for this): the stream as found, then what is read of it.
        log::write(LogLevel::info, "bus: connected",
                   {{"bus", client_->kind()},
                    {"retained", info.first == 0 ? std::uint64_t{0} : info.last - info.first + 1},
                    {"last_seq", info.last}});
        caught_up_.notify_all();
        return;
    }
    reconnects_.fetch_add(1, std::memory_order_relaxed);
    // What was lost while it was down (appends that failed; or, when the stream is new, what the
    // old one held that was not read) is told to every subscriber here, once.
    tell_gap(before, std::nullopt);
    lock.unlock();
    log::write(
        LogLevel::info,
        new_stream ? "bus: connected again; the stream is new (numbering starts over above)" : "bus: connected again",
        {{"bus", client_->kind()},
         {"was", bus_state_name(was)},
         {"last_seq", info.last},
         {"lost_total", lost_.load()}});
}

void BrokerBus::on_entry(std::uint64_t seq, std::string_view model, std::string_view event) {
    auto json = number_event(event, seq);
    if (!plausible_entry(model, json)) {
        const auto n = invalid_.fetch_add(1, std::memory_order_relaxed) + 1;
        if (std::has_single_bit(n))  // the 1st, 2nd, 4th...: a foreign writer cannot flood the log
            log::write(LogLevel::warn, "bus: passing over a stream entry that is not a crudcast event",
                       {{"bus", client_->kind()}, {"seq", seq}, {"invalid_total", n}});
        local_.skip(seq);  // not a hole in what subscribers get
        mark_read(seq);    // the stream's last entry may be a foreign one
        complete_waiters(seq);
        return;
    }
    const auto position = local_.position().value_or(0);
    std::unique_lock lock(mutex_);
    if (seq > position + 1 && read_once_ && !gap_told_) {
        // Entries this reader never got (it fell behind the stream's retention): never a silent hole.
        log::write(LogLevel::warn, "bus: stream entries were missed; subscribers are told of the gap",
                   {{"bus", client_->kind()}, {"after", position}, {"next", seq}});
        tell_gap(position, seq);
    }
    const std::string model_text(model);
    if (local_.deliver(seq, model_text, std::make_shared<const std::string>(websocket_text_frame(json)), read_once_))
        gap_told_ = false;
    note_known(seq);
    lock.unlock();
    mark_read(seq);
    complete_waiters(seq);
}

void BrokerBus::mark_read(std::uint64_t seq) {
    {
        std::lock_guard lock(mutex_);
        if (read_once_ || seq < catch_up_to_) return;
        read_once_ = true;
    }
    caught_up_.notify_all();
}

void BrokerBus::on_down(std::string_view why) {
    BusState was;
    {
        std::lock_guard lock(mutex_);  // start() waits on this state
        was = state_.exchange(BusState::down);
    }
    caught_up_.notify_all();
    losing_ = false;
    if (was == BusState::down) return;
    log::write(LogLevel::warn,
               was == BusState::connecting
                   ? "bus: cannot reach the broker; proxying goes on, events of writes are lost until it is reachable"
                   : "bus: lost the broker; proxying goes on, events of writes are lost until it is back",
               {{"bus", client_->kind()}, {"why", why}});
}

std::optional<std::uint64_t> BrokerBus::position() const {
    if (!read_once_.load(std::memory_order_acquire)) return std::nullopt;
    return local_.position();
}

BusStatus BrokerBus::status() const {
    BusStatus s;
    s.kind = std::string(client_->kind());
    s.state = state_.load();
    const auto known = known_.load();
    const auto position = local_.position().value_or(0);
    s.lag = known > position ? known - position : 0;
    s.lost = lost_.load();
    s.late = late_.load();
    s.reconnects = reconnects_.load();
    s.invalid = invalid_.load();
    return s;
}

}  // namespace crudcast::bus
