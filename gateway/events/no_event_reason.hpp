// no_event_reason.hpp: why a response made no event, as one enum and one table that names each
// reason on the access line (reason=...), in the log, in /metrics (the reason label) and in
// /api/stats (events_skipped_by), and says how loudly to log it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/log.hpp"

namespace crudcast::gateway {

enum class NoEventReason : std::uint8_t {
    method,        // not among publish-methods (or the route rule's methods)
    status,        // not a 2xx
    content_type,  // a body that is not JSON
    invalid_json,
    too_large,  // the body is over max-event-bytes
    rule,       // a route rule says publish: false
    no_model,   // no collection in the path
    reserved,   // the inferred model is "all", the reserved topic
    // A path segment is in never-publish (login, token, ...) and no route rule names it literally.
    // Not publishing a credential endpoint is the expected outcome, so it logs at debug.
    never_publish,
    // The mapper gave neither an event nor a reason: a bug, counted rather than trusted. Kept from
    // the days of string reasons, when it caught a reason without a counter slot, so the series
    // dashboards may query (reason="other") stays.
    other,
};

struct NoEventReasonRow {
    NoEventReason reason;
    std::string_view name;  // on the wire: the access line, the log, the metric label, the JSON key
    // warn when the operator can fix it (name the model with a route rule, raise max-event-bytes);
    // debug when not publishing is the expected outcome.
    log::LogLevel level;
    std::string_view message;
};

inline constexpr std::array<NoEventReasonRow, 10> no_event_reasons{{
    {NoEventReason::method, "method", log::LogLevel::debug, "no event"},
    {NoEventReason::status, "status", log::LogLevel::debug, "no event"},
    {NoEventReason::content_type, "content-type", log::LogLevel::debug, "no event"},
    {NoEventReason::invalid_json, "invalid-json", log::LogLevel::debug, "no event"},
    {NoEventReason::too_large, "too-large", log::LogLevel::warn, "no event: response body larger than max-event-bytes"},
    {NoEventReason::rule, "rule", log::LogLevel::debug, "no event"},
    {NoEventReason::no_model, "no-model", log::LogLevel::debug, "no event"},
    {NoEventReason::reserved, "reserved", log::LogLevel::warn,
     "no event: the inferred model is the reserved topic 'all'; name it with a route rule"},
    {NoEventReason::never_publish, "never-publish", log::LogLevel::debug, "no event"},
    {NoEventReason::other, "other", log::LogLevel::debug, "no event"},
}};

constexpr std::size_t index_of(NoEventReason reason) { return static_cast<std::size_t>(reason); }

// The table is indexed by the enum: row i describes reason i.
constexpr bool rows_in_enum_order() {
    for (std::size_t i = 0; i < no_event_reasons.size(); ++i)
        if (index_of(no_event_reasons[i].reason) != i) return false;
    return index_of(NoEventReason::other) + 1 == no_event_reasons.size();
}
static_assert(rows_in_enum_order(), "no_event_reasons: one row per NoEventReason, in enum order");

constexpr const NoEventReasonRow& describe(NoEventReason reason) { return no_event_reasons[index_of(reason)]; }
constexpr std::string_view name_of(NoEventReason reason) { return describe(reason).name; }

}  // namespace crudcast::gateway
