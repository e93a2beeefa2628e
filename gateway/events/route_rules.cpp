// route_rules.cpp: path segmentation and percent-decoding shared by rule matching and model
// inference, and the compilation of `routes:` templates ({name}, *, trailing **) into patterns.
#include "gateway/events/route_rules.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace crudcast::gateway {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool is_identifier(std::string_view name) {
    return !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
           std::ranges::all_of(name, [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

// Splits on '/' and drops empty segments, so "/a//b/" and "/a/b" are the same path.
std::vector<std::string_view> raw_segments(std::string_view path) {
    std::vector<std::string_view> segments;
    std::size_t start = 0;
    while (start <= path.size()) {
        const auto slash = std::min(path.find('/', start), path.size());
        if (slash > start) segments.push_back(path.substr(start, slash - start));
        start = slash + 1;
    }
    return segments;
}

[[noreturn]] void bad_rule(const config::RouteRule& rule, std::size_t number, const std::string& problem) {
    throw std::invalid_argument("rule " + std::to_string(number) + " (" + rule.path + "): " + problem);
}

CompiledRule compile(const config::RouteRule& rule, std::size_t number) {
    CompiledRule compiled;
    compiled.number = number;
    compiled.path = rule.path;
    if (!rule.path.starts_with('/')) bad_rule(rule, number, "path must start with '/'");
    const auto segments = raw_segments(rule.path);
    std::vector<std::string> names;
    for (std::size_t i = 0; i < segments.size(); ++i) {
        const auto text = segments[i];
        CompiledRule::Part part;
        if (text == "**") {
            if (i + 1 != segments.size()) bad_rule(rule, number, "'**' may only be the last segment");
            part.kind = CompiledRule::Part::any_rest;
        } else if (text == "*") {
            part.kind = CompiledRule::Part::any_one;
        } else if (text.starts_with('{') && text.ends_with('}') && is_identifier(text.substr(1, text.size() - 2))) {
            part.kind = CompiledRule::Part::parameter;
            part.text = std::string(text.substr(1, text.size() - 2));
            if (std::ranges::find(names, part.text) != names.end())
                bad_rule(rule, number, "parameter {" + part.text + "} appears twice");
            names.push_back(part.text);
        } else if (text.find_first_of("{}*") != std::string_view::npos) {
            bad_rule(rule, number, "segment \"" + std::string(text) + "\" must be a literal, {name}, * or **");
        } else {
            // Requests are matched after decoding, so a template may be written either way.
            part.text = percent_decode(text);
        }
        compiled.pattern.push_back(std::move(part));
    }

    compiled.model = rule.model;
    if (rule.model == "all") bad_rule(rule, number, "model \"all\" is reserved for subscribing to every model");
    if (rule.id && rule.id->starts_with('{')) {
        const auto& id = *rule.id;
        const auto name = id.ends_with('}') ? id.substr(1, id.size() - 2) : std::string{};
        const auto at = std::ranges::find_if(compiled.pattern, [&](const auto& part) {
            return part.kind == CompiledRule::Part::parameter && part.text == name;
        });
        if (at == compiled.pattern.end()) bad_rule(rule, number, "id " + id + " is not a {parameter} of the path");
        compiled.id_segment = static_cast<std::size_t>(at - compiled.pattern.begin());
    } else if (rule.id) {
        if (rule.id->empty()) bad_rule(rule, number, "id is empty");
        compiled.id_field = rule.id;
    }
    if (rule.payload_pointer) {
        rapidjson::Pointer pointer(rule.payload_pointer->data(), rule.payload_pointer->size());
        if (!pointer.IsValid()) bad_rule(rule, number, "payload_pointer is not a JSON Pointer");
        compiled.pointer_text = rule.payload_pointer;
        compiled.pointer = std::move(pointer);
    }
    compiled.methods = rule.methods;
    compiled.publish = rule.publish;
    return compiled;
}

}  // namespace

std::string percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

std::vector<std::string> path_segments(std::string_view target) {
    if (const auto scheme = target.find("://"); !target.starts_with('/') && scheme != std::string_view::npos) {
        const auto path = target.find('/', scheme + 3);
        target = path == std::string_view::npos ? std::string_view{} : target.substr(path);
    }
    target = target.substr(0, target.find_first_of("?#"));
    std::vector<std::string> segments;
    for (const auto raw : raw_segments(target)) segments.push_back(percent_decode(raw));
    return segments;
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

RouteTable::RouteTable(const std::vector<config::RouteRule>& rules) {
    rules_.reserve(rules.size());
    for (std::size_t i = 0; i < rules.size(); ++i) rules_.push_back(compile(rules[i], i + 1));
}

const CompiledRule* RouteTable::match(const std::vector<std::string>& segments) const {
    for (const auto& rule : rules_)
        if (rule.matches(segments)) return &rule;
    return nullptr;
}

}  // namespace crudcast::gateway
