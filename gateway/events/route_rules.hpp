// route_rules.hpp: request targets as percent-decoded path segments, and the configured route
// rules compiled once into segment patterns that the event mapper matches (first match wins).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/pointer.h>

#include "config/config.hpp"

namespace crudcast::gateway {

// "/api/v1/a%2Fb//x/?q=1" -> {"api", "v1", "a/b", "x"}: no query or fragment, each segment decoded
// on its own (so %2F stays inside its segment), empty segments dropped. An absolute-form target
// ("http://host/x") counts from its path. A '%' not followed by two hex digits is kept as is.
std::vector<std::string> path_segments(std::string_view target);

std::string percent_decode(std::string_view text);

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

class RouteTable {
public:
    // Throws std::invalid_argument for a rule the config parser would have refused (a Config can
    // also be built in code), so a bad rule stops start-up instead of silently never matching.
    explicit RouteTable(const std::vector<config::RouteRule>& rules);

    // The first rule whose template matches, or nullptr.
    const CompiledRule* match(const std::vector<std::string>& segments) const;

private:
    std::vector<CompiledRule> rules_;
};

}  // namespace crudcast::gateway
