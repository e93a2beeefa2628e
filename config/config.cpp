// config.cpp: parse() — flags over env over the YAML file over defaults — plus --help, describe(),
// the duration and size syntax every setting shares, and the file-only `routes:` and `models:`.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <yaml-cpp/yaml.h>

#include "config/config.hpp"

extern char** environ;

namespace crudcast::config {
namespace {

using std::string;

// Messages go to a one-line log and a one-line CLI error; a stray newline would split them.
string one_line(string text) {
    std::ranges::replace(text, '\n', ' ');
    std::ranges::replace(text, '\r', ' ');
    return text;
}

std::size_t leading_digits(const string& text) {
    std::size_t count = 0;
    while (count < text.size() && std::isdigit(static_cast<unsigned char>(text[count]))) ++count;
    return count;
}

string lower(string text) {
    std::ranges::transform(text, text.begin(), [](unsigned char c) { return std::tolower(c); });
    return text;
}

string dashes_to_underscores(string text) {
    std::ranges::replace(text, '-', '_');
    return text;
}

string underscores_to_dashes(string text) {
    std::ranges::replace(text, '_', '-');
    return text;
}

struct CommandLine {
    bool check_config = false;
    std::map<string, string> values;  // setting name -> text; a repeated flag's last value wins
};

[[noreturn]] void unknown_flag(const string& flag, const string& name) {
    string problem = "unknown flag " + flag;
    // A common slip is writing the YAML spelling on the command line.
    if (const auto* spec = find_setting(underscores_to_dashes(name)); spec != nullptr && name != spec->name)
        problem += " (did you mean --" + string(spec->name) + "?)";
    throw ConfigError(name.empty() ? "arguments" : name, problem + "; see crudcast --help");
}

CommandLine read_flags(const std::vector<string>& args) {
    CommandLine line;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const string& arg = args[i];
        if (arg == "--check-config") {
            line.check_config = true;
            continue;
        }
        if (!arg.starts_with("--") || arg == "--") {
            if (arg.size() > 1 && arg[0] == '-') unknown_flag(arg, arg.substr(1));
            // "--preserve-host false" reads naturally but would silently mean true.
            if (i > 0 && args[i - 1].starts_with("--")) {
                const auto* previous = find_setting(args[i - 1].substr(2));
                if (previous != nullptr && string(previous->value_hint).empty())
                    throw ConfigError(previous->name, "write --" + string(previous->name) + "=" + arg +
                                                          " (a boolean flag does not take a separate value)");
            }
            throw ConfigError("arguments", "unexpected argument " + quoted(arg) +
                                               " (settings are given as --name VALUE or --name=VALUE)");
        }
        const string body = arg.substr(2);
        const auto equals = body.find('=');
        const string name = body.substr(0, equals);
        const bool has_value = equals != string::npos;
        const string inline_value = has_value ? body.substr(equals + 1) : "";
        if (name == "check-config") throw ConfigError(name, "--check-config takes no value");

        const auto* negated = name.starts_with("no-") ? find_setting(name.substr(3)) : nullptr;
        if (negated != nullptr && string(negated->value_hint).empty()) {
            if (has_value) throw ConfigError(negated->name, "--" + name + " takes no value");
            line.values[negated->name] = "false";
            continue;
        }
        const auto* spec = find_setting(name);
        if (spec == nullptr) unknown_flag("--" + name, name);
        if (has_value) {
            line.values[name] = inline_value;
        } else if (string(spec->value_hint).empty()) {
            line.values[name] = "true";
        } else if (i + 1 < args.size() && !args[i + 1].starts_with("--")) {
            line.values[name] = args[++i];
        } else {
            throw ConfigError(name, "--" + name + " needs a value (" + spec->value_hint + ")");
        }
    }
    return line;
}

string node_kind(const YAML::Node& node) {
    return node.IsMap() ? "mapping" : node.IsSequence() ? "list" : "value";
}

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

// The file's plain settings as flag text, plus the structured keys only a file can give.
struct FileContents {
    std::map<string, string> values;
    std::optional<YAML::Node> routes;
    std::optional<YAML::Node> models;
};

FileContents read_file(const string& path) {
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

// --- routes: and models: ---------------------------------------------------------------------

// A model is a WebSocket topic, listed comma-separated in ?topic=, so: lower-case, no commas.
void check_model_name(const string& name) {
    const bool ok = !name.empty() && std::isalnum(static_cast<unsigned char>(name[0])) &&
                    std::ranges::all_of(name, [](unsigned char c) {
                        return std::islower(c) || std::isdigit(c) || c == '_' || c == '-' || c == '.';
                    });
    if (!ok) throw std::invalid_argument(quoted(name) + " is not a lower-case model name (a-z, 0-9, _ - .)");
    if (name == "all") throw std::invalid_argument("\"all\" is reserved: it is the topic of every model");
}

// A rule's path template: literal segments, {name}, * and a final **. Returns the parameter names.
std::vector<string> route_parameters(const string& path) {
    if (!path.starts_with('/')) throw std::invalid_argument("path " + quoted(path) + " must start with '/'");
    if (std::ranges::any_of(path, [](unsigned char c) { return c <= ' ' || c == 0x7f || c == '?' || c == '#'; }))
        throw std::invalid_argument("path " + quoted(path) + " must be a plain path (no spaces, query or fragment)");
    std::vector<string> segments;  // empty ones dropped, as request paths are matched
    for (std::size_t start = 0, slash = 0; start <= path.size(); start = slash + 1) {
        slash = std::min(path.find('/', start), path.size());
        if (slash > start) segments.push_back(path.substr(start, slash - start));
    }
    std::vector<string> names;
    for (const auto& segment : segments) {
        if (segment == "**") {
            if (&segment != &segments.back()) throw std::invalid_argument("'**' may only be the last segment of the path");
        } else if (segment.starts_with('{') && segment.ends_with('}') && segment.size() > 2 &&
                   !std::isdigit(static_cast<unsigned char>(segment[1])) &&
                   std::all_of(segment.begin() + 1, segment.end() - 1,
                               [](unsigned char c) { return std::isalnum(c) || c == '_'; })) {
            const string name = segment.substr(1, segment.size() - 2);
            if (std::ranges::find(names, name) != names.end())
                throw std::invalid_argument("parameter {" + name + "} appears twice in the path");
            names.push_back(name);
        } else if (segment != "*" && segment.find_first_of("{}*") != string::npos) {
            throw std::invalid_argument("path segment " + quoted(segment) +
                                        " must be a literal, {name} (letters, digits, _), * or **");
        }
    }
    return names;
}

string scalar(const YAML::Node& node, const string& key) {
    if (node.IsNull()) return "";
    if (!node.IsScalar()) throw std::invalid_argument(key + " must be a single value, not a " + node_kind(node));
    return node.Scalar();
}

// Validates through the settings table, so a rule's pointer, methods and publish flag accept
// exactly what --payload-pointer, --publish-methods and a boolean flag accept.
template <auto member>
auto through_setting(const char* setting, const string& text) {
    Config scratch;
    find_setting(setting)->apply(scratch, text);
    return scratch.*member;
}

RouteRule parse_rule(const YAML::Node& node, std::size_t number, string& label) {
    label = "rule " + std::to_string(number);
    if (!node.IsMap()) throw std::invalid_argument("must be a mapping with a path, not a " + node_kind(node));
    if (!node["path"]) throw std::invalid_argument("has no path (e.g. path: /api/v2/people/{id})");
    RouteRule rule;
    rule.path = scalar(node["path"], "path");
    label += " (" + rule.path + ")";
    const auto parameters = route_parameters(rule.path);

    std::set<string> seen;
    for (const auto& entry : node) {
        const string key = entry.first.IsScalar() ? entry.first.Scalar() : "";
        if (!seen.insert(key).second) throw std::invalid_argument("key " + quoted(key) + " appears twice");
        const YAML::Node& value = entry.second;
        if (key == "path") continue;
        if (key == "model") {
            rule.model = scalar(value, key);
            check_model_name(*rule.model);
        } else if (key == "id") {
            const string id = scalar(value, key);
            if (id.empty()) throw std::invalid_argument("id is empty (a {parameter} of the path or a field name)");
            if (id.starts_with('{') && (!id.ends_with('}') || std::ranges::find(parameters, id.substr(1, id.size() - 2)) ==
                                                                  parameters.end()))
                throw std::invalid_argument("id " + quoted(id) + " is not a {parameter} of the path");
            rule.id = id;
        } else if (key == "payload_pointer") {
            rule.payload_pointer = through_setting<&Config::payload_pointer>("payload-pointer", scalar(value, key));
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
    return rule;
}

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
        throw ConfigError("models", "must be a mapping of plural: singular (e.g. people: person), not a " +
                                        node_kind(node) + where);
    std::vector<std::pair<string, string>> models;
    for (const auto& entry : node) {
        const string plural = entry.first.IsScalar() ? lower(entry.first.Scalar()) : "";
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

// Where a value came from, so an error points at the place to fix.
string origin(const SettingSpec& spec, Source source, const string& file) {
    switch (source) {
    case Source::flag: return "set by --" + string(spec.name);
    case Source::env: return "set by " + env_var_name(spec.name);
    case Source::file: return "set by " + yaml_key(spec.name) + " in " + file;
    case Source::default_value: break;
    }
    return "the default";
}

std::optional<Action> informational_action(const std::vector<string>& args) {
    // --help and --version win over everything else on the line, including mistakes in it.
    for (const auto& arg : args) {
        if (arg == "--help" || arg == "-h") return Action::help;
        if (arg == "--version" || arg == "-V") return Action::version;
    }
    return std::nullopt;
}

ParseResult parse_checked(const std::vector<string>& args, const std::map<string, string>& env) {
    ParseResult result;
    if (auto action = informational_action(args)) {
        result.action = *action;
        return result;
    }
    const CommandLine line = read_flags(args);
    if (line.check_config) result.action = Action::check_config;

    std::map<string, string> env_values;
    for (const auto& spec : settings())
        if (auto found = env.find(env_var_name(spec.name)); found != env.end()) env_values[spec.name] = found->second;

    string file_path;
    if (auto flag = line.values.find("config"); flag != line.values.end()) file_path = flag->second;
    else if (auto var = env_values.find("config"); var != env_values.end()) file_path = var->second;
    const auto file = file_path.empty() ? FileContents{} : read_file(file_path);
    const auto& file_values = file.values;

    Config& config = result.config;
    for (const auto& spec : settings()) {
        Source source = Source::default_value;
        const string* value = nullptr;
        using Layer = std::pair<const std::map<string, string>*, Source>;
        for (auto [layer, layer_source] : {Layer{&line.values, Source::flag}, Layer{&env_values, Source::env},
                                           Layer{&file_values, Source::file}}) {
            if (auto found = layer->find(spec.name); found != layer->end()) {
                value = &found->second;
                source = layer_source;
                break;
            }
        }
        config.sources[spec.name] = source;
        if (value == nullptr) continue;
        try {
            spec.apply(config, *value);
        } catch (const std::logic_error& e) {
            throw ConfigError(spec.name, string(e.what()) + "; " + origin(spec, source, file_path));
        }
    }

    if (file.routes) {
        config.routes = parse_routes(*file.routes, file_path);
        config.sources["routes"] = Source::file;
    }
    if (file.models) {
        config.models = parse_models(*file.models, file_path);
        config.sources["models"] = Source::file;
    }

    if (config.sources["upstream"] == Source::default_value)
        throw ConfigError("upstream", "is required: set --upstream, CRUDCAST_UPSTREAM or upstream in the config "
                                      "file (e.g. http://127.0.0.1:3000)");
    if (config.admin_listen && config.listen.port != 0 && config.admin_listen->port == config.listen.port &&
        config.admin_listen->host == config.listen.host)
        throw ConfigError("admin-listen", "is the same address as listen; give the admin listener its own port "
                                          "or turn it off");
    if (config.threads == 0) config.threads = std::max(1u, std::thread::hardware_concurrency());
    return result;
}

}  // namespace

ConfigError::ConfigError(std::string setting_name, std::string problem_text)
    : std::runtime_error(one_line(setting_name + ": " + problem_text)),
      setting(std::move(setting_name)),
      problem(one_line(std::move(problem_text))) {}

ParseResult parse(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
    try {
        return parse_checked(args, env);
    } catch (const ConfigError&) {
        throw;
    } catch (const std::exception& e) {
        // Only ConfigError may leave parse(); anything else is still a configuration failure.
        throw ConfigError("config", e.what());
    }
}

std::map<std::string, std::string> environment() {
    std::map<std::string, std::string> env;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        const std::string text = *entry;
        const auto equals = text.find('=');
        if (text.starts_with("CRUDCAST_") && equals != std::string::npos)
            env[text.substr(0, equals)] = text.substr(equals + 1);
    }
    return env;
}

std::string help_text() {
    std::string text =
        "Usage: crudcast --upstream http://HOST[:PORT][/BASE] [OPTIONS]\n"
        "\n"
        "A sidecar reverse proxy that turns successful CRUD responses into WebSocket events.\n"
        "\n"
        "Each setting is a flag (--name VALUE or --name=VALUE), an environment variable\n"
        "(CRUDCAST_NAME) or a key in the YAML file named by --config (name with '_' for '-').\n"
        "A flag beats the environment, which beats the file, which beats the default.\n"
        "Durations: 1500ms, 5s, 2m, 1h or a number of seconds. Sizes: 1024, 64k, 16m, 1g.\n"
        "\n"
        "  -h, --help        Print this help and exit\n"
        "  -V, --version     Print the version and exit\n"
        "  --check-config    Validate the settings, print each with its source, and exit\n";
    const std::pair<const char*, const char*> groups[] = {{"proxy", "Proxy"},   {"timeouts", "Timeouts"},
                                                          {"limits", "Limits"}, {"logging", "Logging"},
                                                          {"events", "Events"}, {"admin", "Admin"}};
    for (const auto& [group, title] : groups) {
        text += std::string("\n") + title + ":\n";
        for (const auto& spec : settings()) {
            if (std::string(spec.group) != group) continue;
            const std::string hint = spec.value_hint;
            const std::string name = spec.name;
            text += hint.empty() ? "  --" + name + "[=BOOL], --no-" + name : "  --" + name + " " + hint;
            text += "\n      " + std::string(spec.description) + "\n      env " + env_var_name(name) +
                    ", default " + default_text(spec) + "\n";
        }
    }
    return text;
}

std::string describe(const Config& config) {
    // No effective value can hold a secret: the only candidate, a password in --upstream, is refused
    // at parse time (with the password masked in the error), and show() prints the normalized URL,
    // which has no userinfo. A future secret-bearing setting must mask itself in its show().
    std::string text;
    for (const auto& spec : settings()) {
        const auto source = config.sources.find(spec.name);
        text += std::string(spec.name) + " = " + spec.show(config) + "  (" +
                to_string(source == config.sources.end() ? Source::default_value : source->second) + ")\n";
    }
    // Only when the file gives them, so the common case stays one line per flag-settable setting.
    const auto count = [](std::size_t n, const char* one, const char* many) {
        return std::to_string(n) + " " + (n == 1 ? one : many);
    };
    if (config.sources.contains("routes"))
        text += "routes = " + count(config.routes.size(), "rule", "rules") + "  (file)\n";
    if (config.sources.contains("models"))
        text += "models = " + count(config.models.size(), "override", "overrides") + "  (file)\n";
    return text;
}

std::chrono::milliseconds parse_duration(const std::string& text) {
    const std::string expected = " (expected e.g. 1500ms, 5s, 2m, 1h or a number of seconds)";
    if (text.starts_with('-')) throw std::invalid_argument(quoted(text) + " is negative");
    const auto digits = leading_digits(text);
    const std::string unit = text.substr(digits);
    std::uint64_t unit_ms = 0;
    if (unit == "ms") unit_ms = 1;
    else if (unit == "s" || unit.empty()) unit_ms = 1000;
    else if (unit == "m") unit_ms = 60'000;
    else if (unit == "h") unit_ms = 3'600'000;
    if (digits == 0 || unit_ms == 0) throw std::invalid_argument(quoted(text) + " is not a duration" + expected);
    // A year is far beyond any sane timeout and keeps deadline arithmetic clear of overflow.
    constexpr std::uint64_t max_ms = 8760ull * 3'600'000;
    if (digits > 12 || std::stoull(text.substr(0, digits)) * unit_ms > max_ms)
        throw std::invalid_argument(quoted(text) + " is too long (at most 8760h)");
    return std::chrono::milliseconds(std::stoull(text.substr(0, digits)) * unit_ms);
}

std::uint64_t parse_size(const std::string& text) {
    const std::string expected = " (expected e.g. 1024, 64k, 16m or 1g)";
    if (text.starts_with('-')) throw std::invalid_argument(quoted(text) + " is negative");
    const auto digits = leading_digits(text);
    const std::string unit = lower(text.substr(digits));
    std::uint64_t multiplier = 0;
    if (unit.empty()) multiplier = 1;
    else if (unit == "k") multiplier = 1ull << 10;
    else if (unit == "m") multiplier = 1ull << 20;
    else if (unit == "g") multiplier = 1ull << 30;
    if (digits == 0 || multiplier == 0) throw std::invalid_argument(quoted(text) + " is not a size" + expected);
    if (digits > 19) throw std::invalid_argument(quoted(text) + " is too large");
    const std::uint64_t number = std::stoull(text.substr(0, digits));
    if (number > std::numeric_limits<std::uint64_t>::max() / multiplier)
        throw std::invalid_argument(quoted(text) + " is too large");
    return number * multiplier;
}

std::string format_duration(std::chrono::milliseconds duration) {
    const auto ms = duration.count();
    if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
    if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

std::string format_size(std::uint64_t bytes) {
    for (auto [shift, unit] : {std::pair{30, "g"}, std::pair{20, "m"}, std::pair{10, "k"}}) {
        if (bytes != 0 && bytes % (1ull << shift) == 0) return std::to_string(bytes >> shift) + unit;
    }
    return std::to_string(bytes);
}

std::string quoted(const std::string& value) {
    std::string out = "\"";
    for (unsigned char c : value) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string env_var_name(const std::string& name) {
    std::string var = "CRUDCAST_" + dashes_to_underscores(name);
    std::ranges::transform(var, var.begin(), [](unsigned char c) { return std::toupper(c); });
    return var;
}

std::string yaml_key(const std::string& name) { return dashes_to_underscores(name); }

const char* to_string(LogLevel level) {
    switch (level) {
    case LogLevel::error: return "error";
    case LogLevel::warn: return "warn";
    case LogLevel::info: return "info";
    case LogLevel::debug: return "debug";
    case LogLevel::trace: return "trace";
    }
    return "info";
}

const char* to_string(LogFormat format) { return format == LogFormat::json ? "json" : "text"; }

const char* to_string(Source source) {
    switch (source) {
    case Source::default_value: return "default";
    case Source::file: return "file";
    case Source::env: return "env";
    case Source::flag: return "flag";
    }
    return "default";
}

}  // namespace crudcast::config
