// route_rules.hpp: request targets as percent-decoded path segments, and the `routes:` rules compiled
// into segment patterns that the event mapper matches (first match wins). Compiling is validating:
// parse() compiles each rule as it reads the file, so a bad rule is a config error naming `routes`.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/pointer.h>

#include "config/config.hpp"

namespace crudcast::config {

// "/api/v1/a%2Fb//x/?q=1" -> {"api", "v1", "a/b", "x"}: no query or fragment, each segment decoded
// on its own (so %2F stays inside its segment), empty segments dropped. An absolute-form target
// ("http://host/x") counts from its path. Lenient on purpose: the upstream has already answered
// this target, so a '%' not followed by two hex digits, or a byte a URL may not hold, is kept as the
// client sent it (a template literal is decoded the same way, so the two still compare equal).
std::vector<std::string> path_segments(std::string_view target);

// A model is a WebSocket topic, listed comma-separated in ?topic=, so: lower-case, no commas, not
// "all". Throws std::invalid_argument saying why not; `models:` uses it too.
void check_model_name(const std::string& name);

struct CompiledRule {
    struct Part {
        enum Kind { literal, parameter, any_one, any_rest } kind = literal;
        std::string text;  // the literal (decoded) or the parameter's name
    };

    std::size_t number = 0;  // 1-based position in `routes:`, for log details
    std::string path;        // the template as configured
    std::vector<Part> pattern;
    std::optional<std::string> model;
    std::optional<std::size_t> id_segment;  // id: "{name}" -> the segment position that binds name
    std::optional<std::string> id_field;    // id: "field" -> that field of the payload object
    std::optional<std::string> pointer_text;
    std::optional<rapidjson::Pointer> pointer;  // no tokens = the whole body
    std::optional<std::vector<std::string>> methods;
    bool publish = true;

    bool matches(const std::vector<std::string>& segments) const;
    std::string describe() const { return "rule " + std::to_string(number) + " (" + path + ")"; }
};

// `rule` checked and compiled: its template (literal segments, {name}, *, a final **), its model, its
// id ("{name}" of the template, or a field) and its payload pointer (as --payload-pointer accepts).
// Throws std::invalid_argument whose what() is the problem, one line without the rule's name.
CompiledRule compile_rule(const RouteRule& rule, std::size_t number);

class RouteTable {
public:
    // Throws std::invalid_argument ("rule 2 (/a/{x}): ...") for a bad rule: parse() has refused it
    // already, but a Config can also be built in code, and a bad rule must stop start-up instead of
    // silently never matching.
    explicit RouteTable(const std::vector<RouteRule>& rules);

    // The first rule whose template matches, or nullptr.
    const CompiledRule* match(const std::vector<std::string>& segments) const;
    bool empty() const { return rules_.empty(); }

private:
    std::vector<CompiledRule> rules_;
};

}  // namespace crudcast::config
