// history.cpp: see history.hpp.
#include "bus/history.hpp"

#include <algorithm>

namespace crudcast::bus {

std::string_view gap_reason_name(GapReason reason) {
    switch (reason) {
        case GapReason::history: return "history";
        case GapReason::restart: return "restart";
        case GapReason::bus: return "bus";
    }
    return "history";
}

std::string gap_json(const Gap& gap) {
    std::string out = R"({"type":"gap","reason":")";
    out += gap_reason_name(gap.reason);
    out += R"(","since":)";
    out += std::to_string(gap.since);
    out += R"(,"next":)";
    out += gap.next ? std::to_string(*gap.next) : std::string("null");
    out += '}';
    return out;
}

bool topics_want(const std::vector<std::string>& topics, std::string_view model) {
    for (const auto& t : topics) {
        if (t == model || t == "all") return true;
    }
    return false;
}

void EventHistory::append(std::uint64_t seq, std::string model, Frame frame) {
    if (!enabled()) return;
    bytes_ += frame->size();
    entries_.push_back({std::move(model), std::move(frame), seq});
    while (!entries_.empty() && (entries_.size() > max_events_ || bytes_ > max_bytes_)) {
        auto& oldest = entries_.front();
        bytes_ -= oldest.frame->size();
        dropped_any_ = oldest.seq;
        if (auto it = dropped_.find(oldest.model); it != dropped_.end()) {
            it->second = oldest.seq;
        } else if (dropped_.size() < max_models) {
            dropped_.emplace(std::move(oldest.model), oldest.seq);
        } else {
            dropped_overflow_ = true;
        }
        entries_.pop_front();
    }
}

void EventHistory::restart_after(std::uint64_t last) {
    entries_.clear();
    bytes_ = 0;
    dropped_.clear();
    dropped_any_ = std::max(dropped_any_, last);
    dropped_overflow_ = true;  // every model counts as having lost dropped_any_
    bus_losses_.clear();       // a resume from before `last` gets the history gap
}

void EventHistory::mark_bus_loss(std::uint64_t after) {
    if (!bus_losses_.empty() && bus_losses_.back() >= after) return;
    bus_losses_.push_back(after);
    // An older mark than that is older than what a resume can be told apart from a history gap.
    if (bus_losses_.size() > max_bus_losses) bus_losses_.pop_front();
}

std::optional<std::uint64_t> EventHistory::bus_loss_after(std::uint64_t since) const {
    const auto it = std::lower_bound(bus_losses_.begin(), bus_losses_.end(), since);
    if (it == bus_losses_.end()) return std::nullopt;
    return *it;
}

bool EventHistory::lost_after(std::uint64_t after, const std::vector<std::string>& topics) const {
    if (dropped_any_ <= after) return false;
    for (const auto& t : topics) {
        if (t == "all") return true;
        const auto it = dropped_.find(t);
        const auto dropped = it != dropped_.end() ? it->second : dropped_overflow_ ? dropped_any_ : 0;
        if (dropped > after) return true;
    }
    return false;
}

std::size_t EventHistory::index_after(std::uint64_t after) const {
    // Seqs grow but may skip (a broker stream entry that was not an event): a binary search.
    const auto it = std::upper_bound(entries_.begin(), entries_.end(), after,
                                     [](std::uint64_t a, const Delivery& e) { return a < e.seq; });
    return static_cast<std::size_t>(it - entries_.begin());
}

std::optional<std::uint64_t> EventHistory::read(std::uint64_t after, const std::vector<std::string>& topics,
                                                std::size_t max_bytes, std::size_t max_scan,
                                                std::vector<Delivery>& out) const {
    if (lost_after(after, topics)) return std::nullopt;
    std::uint64_t upto = after;
    std::size_t bytes = 0;
    std::size_t scanned = 0;
    for (auto i = index_after(after); i < entries_.size() && scanned < max_scan; ++i, ++scanned) {
        const auto& e = entries_[i];
        if (topics_want(topics, e.model)) {
            if (bytes > 0 && bytes + e.frame->size() > max_bytes) break;
            out.push_back(e);
            bytes += e.frame->size();
        }
        upto = std::max(upto, e.seq);
    }
    return upto;
}

std::optional<std::uint64_t> EventHistory::next_wanted(std::uint64_t after,
                                                       const std::vector<std::string>& topics) const {
    for (auto i = index_after(after); i < entries_.size(); ++i) {
        if (topics_want(topics, entries_[i].model)) return entries_[i].seq;
    }
    return std::nullopt;
}

ResumePlan plan_resume(std::uint64_t since, std::uint64_t base, std::uint64_t position, const EventHistory& history,
                       const std::vector<std::string>& topics) {
    ResumePlan plan;
    if (since < base || since > position) {
        // Not a position of this process: everything retained follows the gap.
        plan.replay_after = history.empty() ? position : history.first_seq() - 1;
        plan.gap = Gap{GapReason::restart, since, history.next_wanted(plan.replay_after, topics)};
        return plan;
    }
    plan.replay_after = since;
    if (since == position) {
        if (const auto lost = history.bus_loss_after(since)) plan.gap = Gap{GapReason::bus, *lost, std::nullopt};
        return plan;
    }
    if (!history.enabled()) {
        plan.replay_after = position;
        plan.gap = Gap{GapReason::history, since, std::nullopt};
    } else if (history.lost_after(since, topics)) {
        // Everything dropped is older than the oldest retained event: the replay starts there.
        plan.replay_after = history.empty() ? position : std::max(since, history.first_seq() - 1);
        plan.gap = Gap{GapReason::history, since, history.next_wanted(plan.replay_after, topics)};
    } else if (const auto lost = history.bus_loss_after(since)) {
        // Everything numbered is retained, but events of the outage after `lost` were never numbered.
        plan.gap = Gap{GapReason::bus, *lost, history.next_wanted(*lost, topics)};
    }
    return plan;
}

}  // namespace crudcast::bus
