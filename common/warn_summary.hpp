// warn_summary.hpp: at most one log line per interval for each kind of a repeated event. The first
// occurrence of a burst is logged at once; later ones within the interval are only counted, and the
// count rides on the next line of that kind (a `repeated` field) or, when the burst has ended, on a
// summary line that flush() hands out. No occurrence is lost: each is either a line of its own or
// counted in a later one. Thread-safe; one atomic read-modify-write per occurrence. Tested in
// tests/failure_log_test.cpp.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

namespace crudcast::log {

class WarnSummary {
public:
    using Clock = std::chrono::steady_clock;

    WarnSummary(std::size_t kinds, std::chrono::milliseconds interval)
        : slots_(std::make_unique<std::atomic<std::uint64_t>[]>(kinds)),
          kinds_(kinds),
          interval_ms_(static_cast<std::int32_t>(interval.count())),
          epoch_(Clock::now()) {}

    struct Decision {
        bool log = false;            // write this occurrence's line now
        std::uint64_t repeated = 0;  // when log: earlier occurrences of the kind that had no line of their own
    };
    // One occurrence of `kind` at `now`.
    Decision record(std::size_t kind, Clock::time_point now = Clock::now()) {
        auto& slot = slots_[kind];
        const auto at = ms(now);
        std::uint64_t s = slot.load(std::memory_order_relaxed);
        for (;;) {
            if (active(s) && elapsed(at, s) < interval_ms_) {
                const std::uint64_t next = count(s) < max_count ? s + 1 : s;  // saturates, never wraps
                if (slot.compare_exchange_weak(s, next, std::memory_order_relaxed)) return {false, 0};
            } else if (slot.compare_exchange_weak(s, pack(at), std::memory_order_relaxed)) {
                return {true, active(s) ? count(s) : 0};
            }
        }
    }

    // For each kind whose interval has passed (every kind when `all`, e.g. at shutdown) and that has
    // occurrences without a line: write(kind, count, ms since its last line). A kind left with a count
    // starts a new interval, so a burst that goes on still gets at most one line per interval.
    template <class Write>
    void flush(Write&& write, bool all = false, Clock::time_point now = Clock::now()) {
        const auto at = ms(now);
        for (std::size_t kind = 0; kind < kinds_; ++kind) {
            auto& slot = slots_[kind];
            std::uint64_t s = slot.load(std::memory_order_relaxed);
            while (active(s) && (all || elapsed(at, s) >= interval_ms_)) {
                const bool pending = count(s) > 0;
                if (slot.compare_exchange_weak(s, pending && !all ? pack(at) : 0, std::memory_order_relaxed)) {
                    if (pending) write(kind, count(s), static_cast<std::uint32_t>(std::max(elapsed(at, s), 0)));
                    break;
                }
            }
        }
    }

private:
    // A slot: bits 63..32 the start of its interval (ms since epoch_, modulo 2^32: ~49 days, and an
    // interval never stays open that long while flush runs), bit 31 set while an interval is open,
    // bits 30..0 the occurrences without a line in it.
    static constexpr std::uint64_t active_bit = 1ull << 31;
    static constexpr std::uint64_t max_count = active_bit - 1;
    static bool active(std::uint64_t s) { return (s & active_bit) != 0; }
    static std::uint32_t start(std::uint64_t s) { return static_cast<std::uint32_t>(s >> 32); }
    static std::uint64_t count(std::uint64_t s) { return s & max_count; }
    static std::uint64_t pack(std::uint32_t at) { return (static_cast<std::uint64_t>(at) << 32) | active_bit; }
    // Signed: a thread that read the clock just before another opened the interval is inside it.
    static std::int32_t elapsed(std::uint32_t at, std::uint64_t s) { return static_cast<std::int32_t>(at - start(s)); }
    std::uint32_t ms(Clock::time_point now) const {
        return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now - epoch_).count());
    }

    std::unique_ptr<std::atomic<std::uint64_t>[]> slots_;
    std::size_t kinds_;
    std::int32_t interval_ms_;
    Clock::time_point epoch_;
};

}  // namespace crudcast::log
