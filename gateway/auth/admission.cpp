// admission.cpp: see admission.hpp.
#include "gateway/auth/admission.hpp"

#include <algorithm>
#include <cmath>

#include "common/text.hpp"

namespace crudcast::gateway::auth {

AllowedTopics parse_allowed_topics(std::string_view list) {
    std::vector<std::string> topics;
    while (!list.empty()) {
        const auto comma = std::min(list.find(','), list.size());
        auto item = list.substr(0, comma);
        list.remove_prefix(std::min(comma + 1, list.size()));
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        if (item.empty()) continue;
        if (item == "*") return std::nullopt;
        auto topic = ascii_lower(std::string(item));
        if (std::ranges::find(topics, topic) == topics.end()) topics.push_back(std::move(topic));
    }
    return topics;
}

std::string refused_topic(const TopicRequest& request, const AllowedTopics& allowed) {
    if (!allowed) return {};
    if (request.all) return "all";
    for (const auto& topic : request.topics)
        if (std::ranges::find(*allowed, topic) == allowed->end()) return topic;
    return {};
}

TopicRequest narrow(const TopicRequest& request, const AllowedTopics& allowed) {
    if (!allowed) return request;
    if (request.all) return {false, *allowed};
    TopicRequest out{false, {}};
    for (const auto& topic : request.topics)
        if (std::ranges::find(*allowed, topic) != allowed->end()) out.topics.push_back(topic);
    return out;
}

bool HandshakeLimiter::admit(std::string_view address, std::chrono::steady_clock::time_point now,
                             unsigned* retry_after) {
    if (rate_ == 0) return true;
    std::lock_guard lock(mutex_);
    forget_full(now);
    auto [it, inserted] = buckets_.try_emplace(std::string(address));
    Bucket& b = it->second;
    if (inserted && buckets_.size() > max_tracked) {
        // Handshakes from more addresses at once than this are a distributed storm the table cannot
        // tell apart anyway: they are admitted untracked rather than growing it without end.
        buckets_.erase(it);
        return true;
    }
    if (inserted) {
        b.tokens = burst_;
    } else {
        const double elapsed = std::chrono::duration<double>(now - b.updated).count();
        b.tokens = std::min<double>(burst_, b.tokens + std::max(0.0, elapsed) * rate_);
    }
    b.updated = now;
    if (b.tokens >= 1) {
        b.tokens -= 1;
        return true;
    }
    if (retry_after != nullptr) *retry_after = std::max(1u, static_cast<unsigned>(std::ceil((1 - b.tokens) / rate_)));
    return false;
}

std::size_t HandshakeLimiter::tracked() const {
    std::lock_guard lock(mutex_);
    return buckets_.size();
}

// At most once a second: drop the buckets that have refilled completely (as good as new).
void HandshakeLimiter::forget_full(std::chrono::steady_clock::time_point now) {
    if (now - last_cleanup_ < std::chrono::seconds(1)) return;
    last_cleanup_ = now;
    const auto refill = std::chrono::duration<double>(static_cast<double>(burst_) / rate_);
    std::erase_if(buckets_, [&](const auto& entry) { return now - entry.second.updated >= refill; });
}

}  // namespace crudcast::gateway::auth
