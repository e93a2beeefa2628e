// event_counters.hpp: the event publisher's counters, shared by all threads: events published by
// model and method, responses skipped by reason; each family declared once with its names in
// /metrics and /api/stats (common/stats.hpp).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "common/stats.hpp"
#include "gateway/events/no_event_reason.hpp"

namespace crudcast::gateway {

struct EventCounters {
    static constexpr stats::Info skipped_info{"counter", "crudcast_events_skipped_total",
                                              "Responses that made no event, by reason", "events_skipped_by",
                                              "events_skipped"};
    // One slot per reason. Skips happen on most requests (every GET), so they are counted without a lock.
    std::array<stats::counter, no_event_reasons.size()> skipped_by{};
    void count_skip(NoEventReason reason) { skipped_by[index_of(reason)].fetch_add(1, std::memory_order_relaxed); }

    static constexpr stats::Info published_info{"counter", "crudcast_events_published_total",
                                                "Events published, by model and method", "events_published_by",
                                                "events_published"};
    // Published events by "model\tMETHOD": models are open-ended, and publishing already takes
    // the bus lock, so one more short lock per event is fine. The first stats::max_label_values
    // models have their own key; later ones are counted under stats::other_label (first come rather
    // than most used: a counter's series must not change meaning).
    mutable std::mutex mutex;
    std::map<std::string, std::uint64_t> published_by;
    std::set<std::string, std::less<>> labelled_models;

    void count_published(std::string_view model, std::string_view method) {
        std::lock_guard lock(mutex);
        if (!labelled_models.contains(model)) {
            if (labelled_models.size() < stats::max_label_values && model != stats::other_label) {
                labelled_models.emplace(model);
            } else {
                model = stats::other_label;
            }
        }
        std::string key(model);
        key += '\t';
        key += method;
        ++published_by[key];
    }
};

}  // namespace crudcast::gateway
