// topics.hpp: the topics a subscriber names in its ws-path query string, and whether crudcast can
// serve them. Topic names end up in logs, in /metrics labels and in the bus's tables, so they are
// checked before the handshake: bounded in number and length, UTF-8, no control characters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crudcast::gateway {

// The longest topic name accepted, in bytes (a model name is a path segment: far shorter).
inline constexpr std::size_t max_topic_bytes = 128;

// Topics from a ws-path query string: `topic=a,b&topic=c`, percent-decoded (`+` is a space),
// trimmed, normalised (no topic at all is "all"). nullopt when the target is not a valid URI
// reference (a bad % escape): the handshake is refused rather than widened to every topic.
std::optional<std::vector<std::string>> topics_from_query(std::string_view target);

// Why `topic` (as decoded) cannot be a topic name, or "" when it can: longer than max_topic_bytes,
// not UTF-8, or holding a control character (C0, DEL, C1).
std::string topic_name_problem(std::string_view topic);

// Why a subscription at `target` cannot be served (the detail of its 400), or "" when it can: a bad
// query string, a bad topic name, or more than `max_topics` distinct topics.
std::string subscription_refusal(std::string_view target, std::size_t max_topics);

// The position a subscriber resumes after: `Last-Event-ID` (what an EventSource sends when it
// reconnects, newer than its URL) or else the `since` query parameter. Either is a decimal seq.
struct ResumePosition {
    std::optional<std::uint64_t> since;  // nullopt: a fresh subscription
    std::string problem;                 // not empty: the handshake is refused (400) with this detail
};
ResumePosition resume_position(std::string_view target, std::string_view last_event_id, bool has_last_event_id);

}  // namespace crudcast::gateway
