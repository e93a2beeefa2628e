// in_memory_bus.cpp: see in_memory_bus.hpp.
#include "bus/in_memory_bus.hpp"

#include <algorithm>
#include <chrono>
#include <unordered_set>

#include "common/text.hpp"

namespace crudcast::bus {

std::vector<std::string> normalize_topics(const std::vector<std::string>& topics) {
    std::vector<std::string> out;
    std::unordered_set<std::string> seen;  // a long query must not cost a quadratic search
    for (const auto& topic : topics) {
        auto t = ascii_lower(topic);
        if (t.empty()) continue;
        if (t == "all") return {"all"};
        if (seen.insert(t).second) out.push_back(std::move(t));
    }
    if (out.empty()) out.push_back("all");
    return out;
}

std::string_view bus_state_name(BusState state) {
    switch (state) {
        case BusState::connecting: return "connecting";
        case BusState::up: return "up";
        case BusState::down: return "down";
    }
    return "down";
}

namespace {

std::uint64_t start_micros() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}

}  // namespace

InMemoryBus::InMemoryBus(std::size_t shards, PostFn post_to_shard, std::size_t history_events,
                         std::size_t history_bytes, std::optional<std::uint64_t> base)
    : post_(std::move(post_to_shard)),
      base_(base.value_or(start_micros())),
      seq_(base_.load()),
      last_(base_.load()),
      history_(history_events, history_bytes) {
    for (std::size_t i = 0; i < shards; ++i) shards_.push_back(std::make_unique<Shard>());
}

void InMemoryBus::attach(std::size_t shard, ShardSink* sink) { shards_[shard]->sink = sink; }

std::uint64_t InMemoryBus::subscribe(std::size_t shard, const std::vector<std::string>& topics) {
    std::lock_guard lock(mutex_);
    for (const auto& t : topics) {
        ++counts_[t];
        ++shards_[shard]->counts[t];
    }
    return seq_;
}

ResumePlan InMemoryBus::plan_resume(std::uint64_t since, std::uint64_t position,
                                    const std::vector<std::string>& topics) const {
    std::lock_guard lock(history_mutex_);
    if (ahead_ > 0 && since > position && since >= base_.load() && since - position <= ahead_) {
        ResumePlan plan;
        plan.replay_after = since;  // read_history finds nothing after it yet: live from here
        return plan;
    }
    return bus::plan_resume(since, base_.load(), position, history_, topics);
}

std::optional<std::uint64_t> InMemoryBus::read_history(std::uint64_t after, const std::vector<std::string>& topics,
                                                       std::size_t max_bytes, std::vector<Delivery>& out) const {
    // A bounded scan per read: a topic subscriber's replay through other topics' events does not
    // hold the lock (and publishers) for the whole history.
    constexpr std::size_t max_scan = 4096;
    std::lock_guard lock(history_mutex_);
    return history_.read(after, topics, max_bytes, max_scan, out);
}

std::pair<std::size_t, std::size_t> InMemoryBus::history_usage() const {
    std::lock_guard lock(history_mutex_);
    return {history_.size(), history_.bytes()};
}

void InMemoryBus::unsubscribe(std::size_t shard, const std::vector<std::string>& topics) {
    std::lock_guard lock(mutex_);
    auto drop = [](std::unordered_map<std::string, std::size_t>& counts, const std::string& t) {
        if (auto it = counts.find(t); it != counts.end() && --it->second == 0) counts.erase(it);
    };
    for (const auto& t : topics) {
        drop(counts_, t);
        drop(shards_[shard]->counts, t);
    }
}

PublishResult InMemoryBus::publish(Event event) {
    PublishResult result;
    std::lock_guard lock(mutex_);
    // Seq, timestamp and the posts to every shard happen under one lock: each shard's queue then
    // receives frames in seq order, whichever thread published them.
    event.seq = ++seq_;
    last_.store(seq_, std::memory_order_release);
    event.ts =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    result.seq = event.seq;
    if (auto it = counts_.find(event.model); it != counts_.end()) result.subscribers += it->second;
    if (auto it = counts_.find("all"); it != counts_.end()) result.subscribers += it->second;
    if (result.subscribers == 0 && !history_.enabled()) return result;  // numbered, never serialized
    fan_out(event.seq, event.model, std::make_shared<const std::string>(websocket_text_frame(serialize(event))));
    return result;
}

bool InMemoryBus::deliver(std::uint64_t seq, const std::string& model, Frame frame, bool live) {
    std::lock_guard lock(mutex_);
    if (seq <= seq_) return false;
    if (seq != seq_ + 1) {
        std::lock_guard history_lock(history_mutex_);
        history_.restart_after(seq - 1);
    }
    seq_ = seq;
    last_.store(seq_, std::memory_order_release);
    fan_out(seq, model, frame, live);
    return true;
}

void InMemoryBus::skip(std::uint64_t seq) {
    std::lock_guard lock(mutex_);
    if (seq != seq_ + 1) return;  // a jump is deliver()'s to handle
    seq_ = seq;
    last_.store(seq_, std::memory_order_release);
}

void InMemoryBus::restart(std::uint64_t base) {
    std::lock_guard lock(mutex_);
    std::lock_guard history_lock(history_mutex_);
    base_.store(base, std::memory_order_release);
    seq_ = base;
    last_.store(seq_, std::memory_order_release);
    history_.restart_after(base);
}

void InMemoryBus::mark_bus_loss(std::uint64_t after) {
    std::lock_guard history_lock(history_mutex_);
    history_.mark_bus_loss(after);
}

void InMemoryBus::broadcast_gap(std::string gap_json) {
    std::lock_guard lock(mutex_);
    fan_out(0, {}, std::make_shared<const std::string>(std::move(gap_json)));
}

void InMemoryBus::fan_out(std::uint64_t seq, const std::string& model, const Frame& frame, bool live) {
    const bool gap = model.empty();
    if (!gap && history_.enabled()) {
        std::lock_guard history_lock(history_mutex_);
        history_.append(seq, model, frame);
    }
    for (std::size_t i = 0; live && i < shards_.size(); ++i) {
        auto& shard = *shards_[i];
        if (gap ? shard.counts.empty() : !shard.counts.contains(model) && !shard.counts.contains("all")) continue;
        bool post = false;
        {
            std::lock_guard inbox_lock(shard.inbox_mutex);
            shard.inbox.push_back({model, frame, seq});
            post = !shard.drain_posted;
            shard.drain_posted = true;
        }
        if (post) post_(i, [this, i] { drain(i); });
    }
}

void InMemoryBus::drain(std::size_t shard) {
    auto& s = *shards_[shard];
    thread_local std::vector<Delivery> batch;
    {
        std::lock_guard inbox_lock(s.inbox_mutex);
        batch.swap(s.inbox);
        s.drain_posted = false;
    }
    if (s.sink != nullptr) s.sink->on_events(batch);
    batch.clear();
}

std::vector<std::pair<std::string, std::size_t>> InMemoryBus::top_subscriber_counts(std::size_t max,
                                                                                    std::string_view other) const {
    auto counts = subscriber_counts();
    std::sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    std::vector<std::pair<std::string, std::size_t>> top;
    std::size_t rest = 0;
    for (auto& [topic, n] : counts) {
        if (top.size() < max && topic != other) {
            top.emplace_back(std::move(topic), n);
        } else {
            rest += n;
        }
    }
    if (rest > 0) top.emplace_back(std::string(other), rest);
    return top;
}

std::size_t InMemoryBus::subscribers_of(const std::string& model) const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    if (auto it = counts_.find(model); it != counts_.end()) n += it->second;
    if (auto it = counts_.find("all"); it != counts_.end()) n += it->second;
    return n;
}

std::vector<std::pair<std::string, std::size_t>> InMemoryBus::subscriber_counts() const {
    std::lock_guard lock(mutex_);
    return {counts_.begin(), counts_.end()};
}

}  // namespace crudcast::bus
