// config_file.cpp: the YAML file named by --config — its plain settings as the text a flag would
// carry, and the file-only `routes:` (each rule compiled by route_rules.cpp to check it) and `models:`.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/text.hpp"
#include "config/layers.hpp"
#include "config/route_rules.hpp"

namespace crudcast::config {
namespace {

using std::string;

string node_kind(const YAML::Node& node) { return node.IsMap() ? "mapping" : node.IsSequence() ? "list" : "value"; }

// One setting's value from the file as the text a flag would carry.
string file_value(const SettingSpec& spec, const YAML::Node& node, const string& where) {
    if (node.IsNull()) return "";  // "key:" with nothing after it reads as an empty value
    if (node.IsScalar()) return node.Scalar();
    if (node.IsSequence() && spec.is_list) {
        string joined;
        bool first = true;
        for (const auto& item : node) {
            if (!item.IsScalar()) throw ConfigError(spec.name, "list items must be plain values (" + where + ")");
            joined += (first ? "" : ",") + item.Scalar();
            first = false;
        }
        return joined;
    }
    throw ConfigError(spec.name, "expected a single value, not a " + node_kind(node) + " (" + where + ")");
}

}  // namespace

FileContents read_config_file(const string& path) {
    std::error_code error;
    if (std::filesystem::is_directory(path, error))
        throw ConfigError("config", "cannot read " + quoted(path) + ": it is a directory");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError("config", "cannot read " + quoted(path) + ": " + std::strerror(errno));
    std::stringstream text;
    text << in.rdbuf();
    if (in.bad()) throw ConfigError("config", "cannot read " + quoted(path) + ": " + std::strerror(errno));

    YAML::Node root;
    try {
        root = YAML::Load(text.str());
    } catch (const YAML::Exception& e) {
        throw ConfigError("config", quoted(path) + " is not valid YAML: line " + std::to_string(e.mark.line + 1) +
                                        ", column " + std::to_string(e.mark.column + 1) + ": " + e.msg);
    }
    FileContents contents;
    if (root.IsNull()) return contents;  // an empty file sets nothing
    if (!root.IsMap())
        throw ConfigError("config", quoted(path) + " must be a mapping of setting: value at the top level");

    std::set<string> seen;
    for (const auto& entry : root) {
        if (!entry.first.IsScalar())
            throw ConfigError("config", quoted(path) + " has a key that is not a setting name");
        const string key = entry.first.Scalar();
        if (!seen.insert(key).second)
            throw ConfigError("config", "key " + quoted(key) + " appears twice in " + quoted(path));
        // Lists of maps have no flag or env form; they are read after the plain settings.
        if (key == "routes") contents.routes = entry.second;
        if (key == "models") contents.models = entry.second;
        if (key == "routes" || key == "models") continue;
        if (key == "config")
            throw ConfigError("config", quoted(path) + " cannot name another config file (key \"config\")");
        const string name = underscores_to_dashes(key);
        const auto* spec = find_setting(name);
        if (spec == nullptr || key != yaml_key(name)) {
            string hint = spec != nullptr ? " (did you mean " + yaml_key(name) + "?)" : "";
            throw ConfigError("config", "unknown key " + quoted(key) + " in " + quoted(path) + hint);
        }
        contents.values[name] = file_value(*spec, entry.second, "key " + key + " in " + path);
    }
    return contents;
}

namespace {

// --- routes: and models: ---------------------------------------------------------------------

string scalar(const YAML::Node& node, const string& key) {
    if (node.IsNull()) return "";
    if (!node.IsScalar()) throw std::invalid_argument(key + " must be a single value, not a " + node_kind(node));
    return node.Scalar();
}

// Validates through the settings table, so a rule's methods and publish flag accept exactly what
// --publish-methods and a boolean flag accept (compile_rule does the same for its pointer).
template <auto member>
auto through_setting(const char* setting, const string& text) {
    Config scratch;
    find_setting(setting)->apply(scratch, text);
    return scratch.*member;
}

// The YAML shape of one rule; what its values mean is checked where the rule is compiled.
RouteRule parse_rule(const YAML::Node& node, std::size_t number, string& label) {
    label = "rule " + std::to_string(number);
    if (!node.IsMap()) throw std::invalid_argument("must be a mapping with a path, not a " + node_kind(node));
    if (!node["path"]) throw std::invalid_argument("has no path (e.g. path: /api/v2/people/{id})");
    RouteRule rule;
    rule.path = scalar(node["path"], "path");
    label += " (" + rule.path + ")";

    std::set<string> seen;
    for (const auto& entry : node) {
        const string key = entry.first.IsScalar() ? entry.first.Scalar() : "";
        if (!seen.insert(key).second) throw std::invalid_argument("key " + quoted(key) + " appears twice");
        const YAML::Node& value = entry.second;
        if (key == "path") continue;
        if (key == "model") {
            rule.model = scalar(value, key);
        } else if (key == "id") {
            rule.id = scalar(value, key);
        } else if (key == "payload_pointer") {
            rule.payload_pointer = scalar(value, key);
        } else if (key == "methods") {
            string joined;
            if (value.IsSequence()) {
                for (const auto& item : value) {
                    if (!joined.empty()) joined += ',';
                    joined += scalar(item, "each method");
                }
                if (value.size() == 0) throw std::invalid_argument("methods is empty (publish: false excludes a path)");
            } else {
                joined = scalar(value, key);
            }
            rule.methods = through_setting<&Config::publish_methods>("publish-methods", joined);
        } else if (key == "publish") {
            rule.publish = through_setting<&Config::preserve_host>("preserve-host", scalar(value, key));
        } else {
            throw std::invalid_argument("unknown key " + quoted(key) +
                                        " (expected path, model, id, payload_pointer, methods or publish)");
        }
    }
    // Compiled now only to be checked (the event mapper compiles the rules it keeps), so a bad
    // template, model, id or pointer stops the load as a config error naming `routes`.
    compile_rule(rule, number);
    return rule;
}

}  // namespace

std::vector<RouteRule> parse_routes(const YAML::Node& node, const string& file) {
    const string where = "; set by routes in " + file;
    if (node.IsNull()) return {};
    if (!node.IsSequence())
        throw ConfigError("routes", "must be a list of rules (- path: /api/...), not a " + node_kind(node) + where);
    std::vector<RouteRule> rules;
    for (const auto& item : node) {
        string label;
        try {
            rules.push_back(parse_rule(item, rules.size() + 1, label));
        } catch (const std::logic_error& e) {
            throw ConfigError("routes", label + ": " + e.what() + where);
        }
    }
    return rules;
}

std::vector<std::pair<string, string>> parse_models(const YAML::Node& node, const string& file) {
    const string where = "; set by models in " + file;
    if (node.IsNull()) return {};
    if (!node.IsMap())
        throw ConfigError(
            "models", "must be a mapping of plural: singular (e.g. people: person), not a " + node_kind(node) + where);
    std::vector<std::pair<string, string>> models;
    for (const auto& entry : node) {
        const string plural = entry.first.IsScalar() ? ascii_lower(entry.first.Scalar()) : "";
        try {
            if (plural.empty()) throw std::invalid_argument("a key is not a plural word");
            if (std::ranges::find(models, plural, &std::pair<string, string>::first) != models.end())
                throw std::invalid_argument("appears twice (plurals are compared case-insensitively)");
            const string singular = scalar(entry.second, "the singular");
            check_model_name(singular);
            models.emplace_back(plural, singular);
        } catch (const std::logic_error& e) {
            throw ConfigError("models", (plural.empty() ? "" : quoted(plural) + ": ") + e.what() + where);
        }
    }
    return models;
}

}  // namespace crudcast::config
