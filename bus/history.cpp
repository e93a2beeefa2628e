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
    if (max_events_ == 0) return;
    bytes_ += frame->size();
    entries_.push_back({std::move(model), std::move(frame), seq});
    while (!entries_.empty() && (entries_.size() > max_events_ || bytes_ > max_bytes_)) {
        bytes_ -= entries_.front().frame->size();
        entries_.pop_front();
    }
}

std::size_t EventHistory::index_after(std::uint64_t after) const {
    // Consecutive seqs: the event after `after` sits at a computed index.
    const auto first = first_seq();
    if (entries_.empty() || after + 1 <= first) return 0;
    return static_cast<std::size_t>(std::min<std::uint64_t>(after + 1 - first, entries_.size()));
}

std::optional<std::uint64_t> EventHistory::read(std::uint64_t after, std::uint64_t through,
                                                const std::vector<std::string>& topics, std::size_t max_bytes,
                                                std::size_t max_scan, std::vector<Delivery>& out) const {
    if (after >= through) return after;
    if (entries_.empty() || after + 1 < first_seq()) return std::nullopt;
    std::uint64_t upto = after;
    std::size_t bytes = 0;
    std::size_t scanned = 0;
    for (auto i = index_after(after); i < entries_.size(); ++i) {
        const auto& e = entries_[i];
        if (e.seq > through) return through;
        if (scanned == max_scan) return upto;
        if (topics_want(topics, e.model)) {
            if (bytes > 0 && bytes + e.frame->size() > max_bytes) return upto;
            out.push_back(e);
            bytes += e.frame->size();
        }
        upto = e.seq;
        ++scanned;
    }
    // Every event up to `through` was published before the reader was planned, and is read.
    return through;
}

std::optional<std::uint64_t> EventHistory::next_wanted(std::uint64_t after, std::uint64_t through,
                                                       const std::vector<std::string>& topics) const {
    for (auto i = index_after(after); i < entries_.size(); ++i) {
        const auto& e = entries_[i];
        if (e.seq > through) break;
        if (topics_want(topics, e.model)) return e.seq;
    }
    return std::nullopt;
}

ResumePlan plan_resume(std::uint64_t since, std::uint64_t base, std::uint64_t through, const EventHistory& history,
                       const std::vector<std::string>& topics) {
    ResumePlan plan;
    const bool ours = since >= base && since <= through;
    const bool retained = ours && (since == through || (!history.empty() && since + 1 >= history.first_seq()));
    if (retained) {
        plan.replay_after = since;
        return plan;
    }
    // Replay whatever is retained; the gap names what is lost before it.
    plan.replay_after = history.empty() ? through : history.first_seq() - 1;
    plan.gap = Gap{ours ? GapReason::history : GapReason::restart, since,
                   history.next_wanted(plan.replay_after, through, topics)};
    return plan;
}

}  // namespace crudcast::bus
