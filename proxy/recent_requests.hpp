// recent_requests.hpp: the last few hundred proxied requests of one worker thread, for the admin
// live page (GET /api/requests). Each worker records into its own ring under its own mutex, which
// only the admin page's occasional snapshot contends; a slot's strings keep their capacity, so
// once the ring has filled a steady stream of requests copies a few short strings and allocates
// nothing (a longer path than the slot has seen before grows that one string).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/exchange_observer.hpp"

namespace crudcast::proxy {

struct RequestRecord {
    std::int64_t time_us = 0;  // wall clock (Unix microseconds) when the exchange ended
    std::string request_id;
    std::string method;
    std::string path;     // the target without its query string (which may carry secrets)
    unsigned status = 0;  // as on the access line: 499 = client went away, 0 = none
    double duration_ms = 0;
    std::string event;  // "author/POST id=42 seq=17 subs=2", "none reason=status-404", "ws=subscribe", ""
    std::string error;  // why crudcast answered itself or the exchange broke; "" otherwise
};

class RecentRequests {
public:
    static constexpr std::size_t default_capacity = 200;

    explicit RecentRequests(std::size_t capacity = default_capacity);

    // Overwrites the oldest record. `note` is the observer's access-line fields (events).
    void record(std::string_view request_id, std::string_view method, std::string_view target, unsigned status,
                double duration_ms, const NoteFields& note, std::string_view error);
    // Appends a copy of every record held, newest first. Thread-safe.
    void append_to(std::vector<RequestRecord>& out) const;

private:
    mutable std::mutex mutex_;
    std::vector<RequestRecord> slots_;
    std::size_t next_ = 0;  // the slot written next (the oldest once full)
    std::size_t size_ = 0;
};

// Several workers' records merged: newest first, at most `limit`.
std::vector<RequestRecord> newest_first(std::vector<RequestRecord> records, std::size_t limit);

}  // namespace crudcast::proxy
