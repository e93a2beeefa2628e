// event_mapper.cpp: EVENTS.md's rules from one proxied exchange to an Event — model and id from
// the URL or a route rule, the payload from the body at a JSON pointer, and each reason for none.
#include "gateway/events/event_mapper.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <utility>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/json_text.hpp"
#include "common/text.hpp"
#include "config/route_rules.hpp"
#include "gateway/events/publish_safety.hpp"

namespace crudcast::gateway {
namespace {

using std::string;
using std::string_view;

bool is_digits(string_view text) {
    return !text.empty() && std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; });
}

string_view trim_json_whitespace(string_view text) {
    constexpr string_view whitespace = " \t\r\n";  // RFC 8259's insignificant whitespace
    const auto first = text.find_first_not_of(whitespace);
    if (first == string_view::npos) return {};
    return text.substr(first, text.find_last_not_of(whitespace) - first + 1);
}

// "v1", "V2", "v10": an API version, not a collection.
bool is_version(string_view segment) {
    return segment.size() >= 2 && (segment[0] == 'v' || segment[0] == 'V') && is_digits(segment.substr(1));
}

// application/json and any */*+json (application/vnd.api+json, ...), parameters allowed.
bool is_json_content_type(string_view content_type) {
    const string media = ascii_lower(trim(content_type.substr(0, content_type.find(';'))));
    if (media == "application/json") return true;
    const auto slash = media.find('/');
    return slash != string::npos && slash > 0 && media.size() - slash - 1 > 5 && media.ends_with("+json");
}

bool is_success(unsigned status) { return status >= 200 && status <= 299; }

// An id from the URL as JSON. Digits that fit an int64 are a number, as the backend's integer key
// most likely is. Leading zeros ("007") stay a string: a JSON number cannot have them, and to the
// backend "007" and 7 may well be different keys. Anything else (UUID, slug, too big) is a string.
string id_json_from_segment(string_view text) {
    if (is_digits(text) && (text.size() == 1 || text[0] != '0')) {
        std::int64_t value = 0;
        const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (error == std::errc{} && end == text.data() + text.size()) return string(text);
    }
    return json_string(text);
}

string to_json(const rapidjson::Value& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    value.Accept(writer);
    return string(buffer.GetString(), buffer.GetSize());
}

// The parser is iterative, but Value::Accept (used to write a sub-value) recurses once per level;
// a body of a million '[' echoed back by the backend must not be able to overflow a thread's stack.
constexpr std::size_t max_json_depth = 512;

bool nested_too_deep(string_view json) {
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < json.size(); ++i) {
        const char c = json[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_json_depth) return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return false;
}

// Plurals that no suffix rule gets right, and words that only look plural.
constexpr std::array<std::pair<string_view, string_view>, 31> builtin_irregular{{
    {"people", "person"},     {"children", "child"},  {"men", "man"},         {"women", "woman"},
    {"mice", "mouse"},        {"geese", "goose"},     {"feet", "foot"},       {"teeth", "tooth"},
    {"oxen", "ox"},           {"data", "data"},       {"series", "series"},   {"species", "species"},
    {"news", "news"},         {"status", "status"},   {"statuses", "status"}, {"addresses", "address"},
    {"analyses", "analysis"}, {"crises", "crisis"},   {"theses", "thesis"},   {"indices", "index"},
    {"matrices", "matrix"},   {"vertices", "vertex"}, {"buses", "bus"},       {"aliases", "alias"},
    {"viruses", "virus"},     {"campuses", "campus"}, {"quizzes", "quiz"},    {"movies", "movie"},
    {"cookies", "cookie"},    {"caches", "cache"},    {"shoes", "shoe"},
}};

std::optional<string> builtin_singular(string_view word) {
    for (const auto& [plural, singular] : builtin_irregular)
        if (word == plural) return string(singular);
    return std::nullopt;
}

string singular_by_suffix(const string& word) {
    const auto cut = [&](std::size_t count, string_view add = {}) {
        return word.substr(0, word.size() - count) + string(add);
    };
    if (word.ends_with("ies") && word.size() > 4) return cut(3, "y");  // categories; "pies" -> pie below
    if (word.ends_with("sses")) return cut(2);                         // classes
    if (word.ends_with("xes") || word.ends_with("ches") || word.ends_with("shes") || word.ends_with("zzes"))
        return cut(2);                                            // boxes, matches, wishes, buzzes
    if (word.ends_with("oes") && word.size() > 4) return cut(2);  // heroes; "toes" -> toe below
    // Plain -s; -ss, -us and -is are singular already (class, status, analysis). "sizes" -> size.
    if (word.ends_with('s') && word.size() > 1 && !word.ends_with("ss") && !word.ends_with("us") &&
        !word.ends_with("is"))
        return cut(1);
    return word;  // already singular, or a word like staff or sheep
}

}  // namespace

std::string singularize(std::string_view plural, const std::vector<std::pair<std::string, std::string>>& irregular) {
    const string word = ascii_lower(plural);
    for (const auto& [from, to] : irregular)
        if (iequals(from, word)) return ascii_lower(to);
    if (auto singular = builtin_singular(word)) return *singular;
    // "sales-people", "user_addresses": the last word of a compound decides.
    if (const auto joint = word.find_last_of("-_"); joint != string::npos) {
        if (auto singular = builtin_singular(string_view(word).substr(joint + 1)))
            return word.substr(0, joint + 1) + *singular;
    }
    return singular_by_suffix(word);
}

struct EventMapper::Impl {
    // What the request line and status decide, before any body.
    struct Plan {
        std::optional<NoEventReason> reason;
        string detail;
        const config::CompiledRule* rule = nullptr;
        string model;
        std::optional<string> url_id;  // the id segment from the URL, still text
    };

    explicit Impl(const config::Config& config)
        : id_field(config.id_field),
          pointer_text(config.payload_pointer),
          pointer(config.payload_pointer.data(), config.payload_pointer.size()),
          methods(config.publish_methods),
          max_event_bytes(config.max_event_bytes),
          routes(config.routes),
          never_publish(config.never_publish),
          redact_fields(config.redact_fields) {
        if (!pointer.IsValid())
            throw std::invalid_argument("payload-pointer " + json_string(pointer_text) + " is not a JSON Pointer");
        for (const auto& prefix : config.path_prefixes) {
            std::vector<string> segments;
            for (auto& segment : config::path_segments("/" + prefix)) segments.push_back(ascii_lower(segment));
            if (!segments.empty()) prefixes.push_back(std::move(segments));  // "" or "/" means no prefix
        }
        for (const auto& [from, to] : config.models) irregular.emplace_back(ascii_lower(from), ascii_lower(to));
    }

    Plan plan(string_view method, string_view target, unsigned status) const {
        Plan plan;
        // Without route rules the method alone decides most requests (every GET): no need to read the path.
        if (routes.empty() && std::ranges::find(methods, method) == methods.end())
            return fail(std::move(plan), NoEventReason::method);
        const auto segments = config::path_segments(target);
        plan.rule = routes.match(segments);
        if (plan.rule != nullptr) plan.detail = plan.rule->describe();
        if (plan.rule != nullptr && !plan.rule->publish) return fail(std::move(plan), NoEventReason::rule);

        const auto& allowed = plan.rule != nullptr && plan.rule->methods ? *plan.rule->methods : methods;
        if (std::ranges::find(allowed, method) == allowed.end()) return fail(std::move(plan), NoEventReason::method);
        // Before the status: every answer of a credential endpoint gives the same reason.
        if (const auto listed = never_publish.first_listed(segments);
            listed && !names_literally(plan.rule, segments, *listed)) {
            append(plan.detail, "path segment " + json_string(segments[*listed]) +
                                    " is in never-publish; a route rule naming it opts the path back in");
            return fail(std::move(plan), NoEventReason::never_publish);
        }
        if (!is_success(status)) return fail(std::move(plan), NoEventReason::status);

        // Skip prefixes and versions, then the rest alternates collection, id, collection, id...
        std::size_t at = 0;
        while (at < segments.size()) {
            const auto prefix = std::ranges::find_if(prefixes, [&](const auto& words) {
                return words.size() <= segments.size() - at &&
                       std::ranges::equal(words, std::span(segments).subspan(at, words.size()), iequals);
            });
            if (prefix != prefixes.end()) at += prefix->size();
            else if (is_version(segments[at])) ++at;
            else break;
        }
        const std::size_t rest = segments.size() - at;
        const std::size_t collection = at + (rest % 2 == 0 ? rest - 2 : rest - 1);
        if (rest >= 2 && rest % 2 == 0) plan.url_id = segments[at + rest - 1];

        if (plan.rule != nullptr && plan.rule->model) {
            plan.model = *plan.rule->model;
        } else if (rest == 0) {
            return fail(std::move(plan), NoEventReason::no_model);
        } else {
            plan.model = singularize(segments[collection], irregular);
            if (plan.model == "all") {
                append(plan.detail, "path's model is \"all\", the reserved topic; a route rule can name its model");
                return fail(std::move(plan), NoEventReason::reserved);
            }
        }
        if (plan.rule != nullptr && plan.rule->id_segment) plan.url_id = segments[*plan.rule->id_segment];
        else if (plan.rule != nullptr && plan.rule->id_field) plan.url_id.reset();
        return plan;
    }

    // A route rule opts a never-publish path back in only when its template spells out every listed
    // segment as a literal: a catch-all such as /api/** or /api/{name} was not written for a login.
    bool names_literally(const config::CompiledRule* rule, const std::vector<string>& segments,
                         std::size_t first) const {
        if (rule == nullptr) return false;
        for (std::size_t i = first; i < segments.size(); ++i) {
            if (!never_publish.listed(segments[i])) continue;
            if (i >= rule->pattern.size() || rule->pattern[i].kind != config::CompiledRule::Part::literal) return false;
        }
        return true;
    }

    // The payload's id field as JSON, or "null". Read after redaction: a redacted id field must not
    // reach subscribers as the event's id.
    string id_from_payload(const rapidjson::Value& payload, const config::CompiledRule* rule, string& detail) const {
        const auto& field = rule != nullptr && rule->id_field ? *rule->id_field : id_field;
        const auto member = payload.FindMember(rapidjson::StringRef(field.data(), field.size()));
        if (member != payload.MemberEnd() && (member->value.IsString() || member->value.IsNumber()))
            return to_json(member->value);
        if (std::ranges::find(redact_fields, field) != redact_fields.end())
            append(detail, "id field " + json_string(field) + " is in redact-fields: the event has no id");
        return "null";
    }

    static Plan fail(Plan plan, NoEventReason reason) {
        plan.reason = reason;
        return plan;
    }

    static void append(string& detail, string_view more) {
        if (!detail.empty()) detail += "; ";
        detail += more;
    }

    std::vector<std::vector<string>> prefixes;  // each prefix as lower-case segments
    std::vector<std::pair<string, string>> irregular;
    string id_field;
    string pointer_text;
    rapidjson::Pointer pointer;
    std::vector<string> methods;
    std::size_t max_event_bytes;
    config::RouteTable routes;
    NeverPublish never_publish;
    std::vector<string> redact_fields;
};

EventMapper::EventMapper(const config::Config& config) : impl_(std::make_shared<const Impl>(config)) {}

std::optional<NoEventReason> EventMapper::precheck(std::string_view method, std::string_view target, unsigned status,
                                                   std::string_view content_type, long long content_length) const {
    auto plan = impl_->plan(method, target, status);
    if (plan.reason) return plan.reason;
    if (content_length > 0 && static_cast<unsigned long long>(content_length) > impl_->max_event_bytes)
        return NoEventReason::too_large;
    // 204 and 205 never have a body. With an unknown length a non-JSON type is refused already:
    // an empty chunked body under such a type is rare, and capturing would stop it streaming.
    const bool surely_empty = content_length == 0 || status == 204 || status == 205;
    if (!surely_empty && !is_json_content_type(content_type)) return NoEventReason::content_type;
    return std::nullopt;
}

bool EventMapper::might_publish(std::string_view method, std::string_view target) const {
    // Without route rules nothing can opt a never-publish path back in, so its segments decide after
    // the method, read from the raw target without allocating (a POST pays ~n instructions a byte).
    if (impl_->routes.empty())
        return std::ranges::find(impl_->methods, method) != impl_->methods.end() &&
               !impl_->never_publish.target_has_listed(target);
    return !precheck(method, target, 200, "application/json", -1);
}

MapResult EventMapper::map(const Exchange& exchange) const {
    const Impl& impl = *impl_;
    auto plan = impl.plan(exchange.method, exchange.target, exchange.status);
    MapResult result;
    result.detail = std::move(plan.detail);
    const auto fail = [&](NoEventReason reason) {
        result.reason = reason;
        return std::move(result);
    };
    if (plan.reason) return fail(*plan.reason);
    if (exchange.body_too_large || exchange.body.size() > impl.max_event_bytes) return fail(NoEventReason::too_large);

    bus::Event event;
    event.model = std::move(plan.model);
    event.method = string(exchange.method);
    if (plan.url_id) event.id_json = id_json_from_segment(*plan.url_id);

    string_view body = exchange.body;
    // RapidJSON skips a UTF-8 byte order mark (RFC 8259 allows that); the payload's raw bytes
    // must not carry it into the middle of the event's JSON.
    if (body.starts_with("\xEF\xBB\xBF")) body.remove_prefix(3);
    body = trim_json_whitespace(body);
    if (body.empty()) {  // 204 No Content, or an empty 200: the event says what happened, without data
        result.event = std::move(event);
        return result;
    }
    if (!is_json_content_type(exchange.content_type)) return fail(NoEventReason::content_type);
    if (nested_too_deep(body)) {
        Impl::append(result.detail, "JSON nested deeper than " + std::to_string(max_json_depth) + " levels");
        return fail(NoEventReason::invalid_json);
    }
    // RapidJSON takes a NUL byte for the end of the text and skips any of the bytes EF, BB, BF at its
    // start (its BOM check), so bytes that are not JSON would reach subscribers raw: those after a NUL,
    // or such a byte after leading whitespace or alone. A JSON text starts with an ASCII byte and
    // holds no raw NUL (RFC 8259 §7: control characters are escaped).
    if (const auto nul = body.find('\0'); nul != string_view::npos || static_cast<unsigned char>(body[0]) >= 0x80) {
        Impl::append(result.detail, nul != string_view::npos
                                        ? "JSON error at byte " + std::to_string(nul) + ": a NUL byte"
                                        : string("JSON error at byte 0: not ASCII where a value starts"));
        return fail(NoEventReason::invalid_json);
    }
    rapidjson::Document document;
    // Validated UTF-8, because the raw bytes go into a WebSocket text frame; full precision, so a
    // number re-written under a pointer is the number the backend sent.
    constexpr unsigned flags =
        rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag | rapidjson::kParseFullPrecisionFlag;
    document.Parse<flags>(body.data(), body.size());
    if (document.HasParseError()) {
        Impl::append(result.detail, "JSON error at byte " + std::to_string(document.GetErrorOffset()) + ": " +
                                        rapidjson::GetParseError_En(document.GetParseError()));
        return fail(NoEventReason::invalid_json);
    }

    // Redacted on the whole body before the pointer is read, so a pointer cannot select a secret
    // either: a pointer into a removed member falls back to the (redacted) whole body.
    const bool redacted = !impl.redact_fields.empty() && redact_members(document, impl.redact_fields);
    const bool rule_pointer = plan.rule != nullptr && plan.rule->pointer;
    const auto& pointer = rule_pointer ? *plan.rule->pointer : impl.pointer;
    const rapidjson::Value* payload = &document;
    if (pointer.GetTokenCount() > 0) {
        if (const auto* found = pointer.Get(document)) {
            payload = found;
        } else {
            const auto& text = rule_pointer ? *plan.rule->pointer_text : impl.pointer_text;
            Impl::append(result.detail,
                         "payload pointer " + json_string(text) + " did not resolve; the payload is the whole body");
        }
    }
    // The whole body was validated by parsing; its own bytes are cheaper than re-serializing, unless
    // a member was redacted out of them.
    event.payload_json = payload == &document && !redacted ? string(body) : to_json(*payload);
    event.many = payload->IsArray();

    if (!plan.url_id && payload->IsObject()) event.id_json = impl.id_from_payload(*payload, plan.rule, result.detail);
    result.event = std::move(event);
    return result;
}

}  // namespace crudcast::gateway
