// topics.cpp: see topics.hpp.
#include "gateway/ws/topics.hpp"

#include <charconv>

#include "bus/bus.hpp"
#include "common/json_text.hpp"
#include "common/text.hpp"
#include "common/url.hpp"

namespace crudcast::gateway {

namespace {

// Every topic named, in order, before normalisation; nullopt for a query that is not valid.
std::optional<std::vector<std::string>> named_topics(std::string_view target) {
    const auto values = url::query_values(target, "topic");
    if (!values) return std::nullopt;
    std::vector<std::string> topics;
    for (const auto& value : *values) {
        std::string_view rest = value;
        while (!rest.empty()) {
            const auto comma = rest.find(',');
            const auto topic = trim(rest.substr(0, comma));
            if (!topic.empty()) topics.emplace_back(topic);
            rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        }
    }
    return topics;
}

}  // namespace

std::optional<std::vector<std::string>> topics_from_query(std::string_view target) {
    auto topics = named_topics(target);
    if (!topics) return std::nullopt;
    return bus::normalize_topics(*topics);
}

std::string topic_name_problem(std::string_view topic) {
    if (topic.size() > max_topic_bytes) return "is longer than " + std::to_string(max_topic_bytes) + " bytes";
    for (std::size_t i = 0; i < topic.size();) {
        const auto c = static_cast<unsigned char>(topic[i]);
        const auto length = utf8_sequence_length(topic, i);
        if (length == 0) return "is not valid UTF-8";
        // C0 controls and DEL; C1 controls (U+0080..U+009F) are 0xC2 0x80..0x9F in UTF-8.
        const bool c1 = c == 0xc2 && static_cast<unsigned char>(topic[i + 1]) < 0xa0;
        if (c < 0x20 || c == 0x7f || c1) return "contains a control character";
        i += length;
    }
    return {};
}

std::string subscription_refusal(std::string_view target, std::size_t max_topics) {
    const auto named = named_topics(target);
    if (!named) return "the query string is not valid (RFC 3986): no topics can be read from it";
    for (std::size_t i = 0; i < named->size(); ++i) {
        if (auto problem = topic_name_problem((*named)[i]); !problem.empty())
            return "topic " + std::to_string(i + 1) + " " + problem;
    }
    const auto topics = bus::normalize_topics(*named);
    if (topics.size() > max_topics) {
        return std::to_string(topics.size()) + " topics: a subscriber may name at most " + std::to_string(max_topics) +
               " (ws-max-topics)";
    }
    return {};
}

namespace {

// A position: decimal digits only (no sign, no spaces), at most 2^63 - 1.
std::optional<std::uint64_t> parse_position(std::string_view text) {
    if (text.empty() || text.size() > 19) return std::nullopt;
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value > INT64_MAX) return std::nullopt;
    return value;
}

}  // namespace

ResumePosition resume_position(std::string_view target, std::string_view last_event_id, bool has_last_event_id) {
    static constexpr std::string_view must = " must be a position: the seq of an event, or an X-Crudcast-Seq value";
    ResumePosition out;
    // An empty Last-Event-ID (some EventSource polyfills send one before any id) means none.
    if (has_last_event_id && !trim(last_event_id).empty()) {
        if (!(out.since = parse_position(trim(last_event_id)))) out.problem = "Last-Event-ID" + std::string(must);
        return out;
    }
    const auto values = url::query_values(target, "since");
    if (!values || values->empty()) return out;
    if (values->size() > 1) {
        out.problem = "since is given more than once";
        return out;
    }
    if (!(out.since = parse_position(values->front()))) out.problem = "since" + std::string(must);
    return out;
}

}  // namespace crudcast::gateway
