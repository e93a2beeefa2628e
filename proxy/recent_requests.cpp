// recent_requests.cpp: see recent_requests.hpp.
#include "proxy/recent_requests.hpp"

#include <algorithm>
#include <chrono>

namespace crudcast::proxy {

RecentRequests::RecentRequests(std::size_t capacity) : slots_(std::max<std::size_t>(capacity, 1)) {}

void RecentRequests::record(std::string_view request_id, std::string_view method, std::string_view target,
                            unsigned status, double duration_ms, const NoteFields& note, std::string_view error) {
    const auto now =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    std::lock_guard lock(mutex_);
    RequestRecord& r = slots_[next_];
    next_ = (next_ + 1) % slots_.size();
    size_ = std::min(size_ + 1, slots_.size());
    r.time_us = now;
    r.request_id.assign(request_id);
    r.method.assign(method);
    r.path.assign(target.substr(0, target.find('?')));
    r.status = status;
    r.duration_ms = duration_ms;
    // The access line's note, minus its "event=" key: "author/POST id=42 seq=17 subs=2".
    r.event.clear();
    for (const auto& [key, value] : note) {
        if (!r.event.empty()) r.event += ' ';
        if (key != "event") {
            r.event += key;
            r.event += '=';
        }
        r.event += value;
    }
    r.error.assign(error);
}

void RecentRequests::append_to(std::vector<RequestRecord>& out) const {
    std::lock_guard lock(mutex_);
    // Newest first, so that records of the same microsecond stay in order after the merge's sort.
    for (std::size_t i = 1; i <= size_; ++i) out.push_back(slots_[(next_ + slots_.size() - i) % slots_.size()]);
}

std::vector<RequestRecord> newest_first(std::vector<RequestRecord> records, std::size_t limit) {
    std::stable_sort(records.begin(), records.end(),
                     [](const RequestRecord& a, const RequestRecord& b) { return a.time_us > b.time_us; });
    if (records.size() > limit) records.resize(limit);
    return records;
}

}  // namespace crudcast::proxy
