// pass_slicing.hpp: how a fan-out pass over many subscribers shares its worker thread with HTTP.
// A pass writes to every subscriber of the thread; with a thousand of them it takes milliseconds,
// and a POST on the same thread needs several turns of the event loop (request read, upstream
// write and read, response write). So a pass runs in slices bounded by time, and each next slice
// is queued behind the I/O completions that are ready by then, so every step of a POST waits for
// at most one slice rather than for the whole pass.
#pragma once

#include <chrono>
#include <cstddef>
#include <utility>

#include <boost/asio/post.hpp>

namespace crudcast::gateway {

// When a slice has done enough: after `max_time`, or after `max_sessions` sessions whatever the
// time (a fast machine gets fewer, larger slices; a loaded one smaller slices of the same length).
class SliceBudget {
public:
    using Clock = std::chrono::steady_clock;
    // Measured with bench/fanout.sh (1,000 subscribers, blocking client, 2 shared cores): a send to
    // a subscriber cost 8-10 µs of CPU there (perf stat), more in wall time, so 200 µs is 10-25
    // subscribers; each slice costs one extra post and one epoll poll, a few µs (1-2 %).
    static constexpr std::chrono::microseconds default_time{200};
    static constexpr std::size_t default_sessions = 64;

    explicit SliceBudget(Clock::time_point start, std::chrono::microseconds max_time = default_time,
                         std::size_t max_sessions = default_sessions)
        : deadline_(start + max_time), max_sessions_(max_sessions) {}

    // `served` sessions were written to in this slice, and the clock reads `now`.
    bool spent(std::size_t served, Clock::time_point now) const { return served >= max_sessions_ || now >= deadline_; }

private:
    Clock::time_point deadline_;
    std::size_t max_sessions_;
};

// Runs `fn` on `executor`'s thread after the handlers that are ready now, I/O completions included.
// One post is not enough: a handler posted from the thread itself is queued ahead of the
// completions the event loop collects next, so the next slice would run before them. The first
// handler runs after that collection; what it posts lands behind the completions.
template <class Executor, class Fn>
void after_ready_io(const Executor& executor, Fn fn) {
    boost::asio::post(executor,
                      [executor, fn = std::move(fn)]() mutable { boost::asio::post(executor, std::move(fn)); });
}

}  // namespace crudcast::gateway
