// route_rules.cpp: path segmentation shared by rule matching and model inference, and the one place
// a `routes:` rule is checked and compiled (templates with {name}, *, a final **) into a pattern.
#include "config/route_rules.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "common/url.hpp"

namespace crudcast::config {
namespace {

using std::string;

[[noreturn]] void fail(const string& problem) { throw std::invalid_argument(problem); }

bool is_identifier(std::string_view name) {
    return !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
           std::ranges::all_of(name, [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

// Splits on '/' and drops empty segments, as request paths are matched ("/a//b/" is "/a/b").
std::vector<std::string_view> template_segments(std::string_view path) {
    std::vector<std::string_view> segments;
    std::size_t start = 0;
    while (start <= path.size()) {
        const auto slash = std::min(path.find('/', start), path.size());
        if (slash > start) segments.push_back(path.substr(start, slash - start));
        start = slash + 1;
    }
    return segments;
}

// A template is not a URL ('{' and '}' are not URL characters), so it is split here, and only its
// literal segments are decoded, the same lenient way as request paths (path_segments).
std::vector<CompiledRule::Part> compile_template(const string& path) {
    if (!path.starts_with('/')) fail("path " + quoted(path) + " must start with '/'");
    if (std::ranges::any_of(path, [](unsigned char c) { return c <= ' ' || c == 0x7f || c == '?' || c == '#'; }))
        fail("path " + quoted(path) + " must be a plain path (no spaces, query or fragment)");
    const auto segments = template_segments(path);
    std::vector<CompiledRule::Part> pattern;
    for (std::size_t i = 0; i < segments.size(); ++i) {
        const auto text = segments[i];
        CompiledRule::Part part;
        if (text == "**") {
            if (i + 1 != segments.size()) fail("'**' may only be the last segment of the path");
            part.kind = CompiledRule::Part::any_rest;
        } else if (text == "*") {
            part.kind = CompiledRule::Part::any_one;
        } else if (text.starts_with('{') && text.ends_with('}') && is_identifier(text.substr(1, text.size() - 2))) {
            part.kind = CompiledRule::Part::parameter;
            part.text = string(text.substr(1, text.size() - 2));
            const auto same = [&](const auto& other) { return other.kind == part.kind && other.text == part.text; };
            if (std::ranges::any_of(pattern, same)) fail("parameter {" + part.text + "} appears twice in the path");
        } else if (text.find_first_of("{}*") != std::string_view::npos) {
            fail("path segment " + quoted(string(text)) + " must be a literal, {name} (letters, digits, _), * or **");
        } else {
            // Requests are matched after decoding, so a template may be written either way.
            part.text = url::percent_decode(url::escape_invalid(text)).value_or(string(text));
        }
        pattern.push_back(std::move(part));
    }
    return pattern;
}

}  // namespace

void check_model_name(const string& name) {
    const bool ok = !name.empty() && std::isalnum(static_cast<unsigned char>(name[0])) &&
                    std::ranges::all_of(name, [](unsigned char c) {
                        return std::islower(c) || std::isdigit(c) || c == '_' || c == '-' || c == '.';
                    });
    if (!ok) fail(quoted(name) + " is not a lower-case model name (a-z, 0-9, _ - .)");
    if (name == "all") fail("\"all\" is reserved: it is the topic of every model");
}

CompiledRule compile_rule(const RouteRule& rule, std::size_t number) {
    CompiledRule compiled;
    compiled.number = number;
    compiled.path = rule.path;
    compiled.pattern = compile_template(rule.path);
    if (rule.model) check_model_name(*rule.model);
    compiled.model = rule.model;
    if (rule.id && rule.id->starts_with('{')) {
        const auto& id = *rule.id;
        const auto name = id.ends_with('}') ? id.substr(1, id.size() - 2) : string{};
        const auto at = std::ranges::find_if(compiled.pattern, [&](const auto& part) {
            return part.kind == CompiledRule::Part::parameter && part.text == name;
        });
        if (at == compiled.pattern.end()) fail("id " + quoted(id) + " is not a {parameter} of the path");
        compiled.id_segment = static_cast<std::size_t>(at - compiled.pattern.begin());
    } else if (rule.id) {
        if (rule.id->empty()) fail("id is empty (a {parameter} of the path or a field name)");
        compiled.id_field = rule.id;
    }
    if (rule.payload_pointer) {
        // Exactly what --payload-pointer accepts, with its message.
        Config scratch;
        find_setting("payload-pointer")->apply(scratch, *rule.payload_pointer);
        compiled.pointer_text = rule.payload_pointer;
        compiled.pointer = rapidjson::Pointer(rule.payload_pointer->data(), rule.payload_pointer->size());
    }
    compiled.methods = rule.methods;
    compiled.publish = rule.publish;
    return compiled;
}

std::vector<std::string> path_segments(std::string_view target) {
    // Most targets are valid as sent; only the others pay for escape_invalid's copy.
    auto segments = url::path_segments(target);
    if (!segments) segments = url::path_segments(url::escape_invalid(target));
    if (!segments) return {};
    std::erase(*segments, string{});  // "/a//b/" and "/a/b" are the same path
    return std::move(*segments);
}

bool CompiledRule::matches(const std::vector<std::string>& segments) const {
    std::size_t at = 0;
    for (const auto& part : pattern) {
        if (part.kind == Part::any_rest) return true;
        if (at == segments.size()) return false;
        if (part.kind == Part::literal && segments[at] != part.text) return false;
        ++at;
    }
    return at == segments.size();
}

RouteTable::RouteTable(const std::vector<RouteRule>& rules) {
    rules_.reserve(rules.size());
    for (std::size_t i = 0; i < rules.size(); ++i) {
        try {
            rules_.push_back(compile_rule(rules[i], i + 1));
        } catch (const std::invalid_argument& e) {
            fail("rule " + std::to_string(i + 1) + " (" + rules[i].path + "): " + e.what());
        }
    }
}

const CompiledRule* RouteTable::match(const std::vector<std::string>& segments) const {
    for (const auto& rule : rules_)
        if (rule.matches(segments)) return &rule;
    return nullptr;
}

}  // namespace crudcast::config
