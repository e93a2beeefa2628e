// config.cpp: parse() — flags over env over the YAML file over defaults — and the syntax every
// setting shares (durations, sizes, names, quoting). The flags, the file and --help have files of
// their own (command_line.cpp, config_file.cpp, help.cpp); the settings table is settings.cpp.
#include <algorithm>
#include <cctype>
#include <limits>
#include <optional>
#include <stdexcept>
#include <thread>

#include "common/json_text.hpp"
#include "common/text.hpp"
#include "config/config.hpp"
#include "config/layers.hpp"

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
    const auto file = file_path.empty() ? FileContents{} : read_config_file(file_path);
    const auto& file_values = file.values;

    Config& config = result.config;
    for (const auto& spec : settings()) {
        Source source = Source::default_value;
        const string* value = nullptr;
        using Layer = std::pair<const std::map<string, string>*, Source>;
        for (auto [layer, layer_source] :
             {Layer{&line.values, Source::flag}, Layer{&env_values, Source::env}, Layer{&file_values, Source::file}}) {
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
        throw ConfigError("upstream",
                          "is required: set --upstream, CRUDCAST_UPSTREAM or upstream in the config "
                          "file (e.g. http://127.0.0.1:3000)");
    if (config.admin_listen && config.listen.port != 0 && config.admin_listen->port == config.listen.port &&
        config.admin_listen->host == config.listen.host)
        throw ConfigError("admin-listen",
                          "is the same address as listen; give the admin listener its own port "
                          "or turn it off");
    check_security(config);
    check_bus(config);
    if (config.threads == 0) config.threads = std::max(1u, std::thread::hardware_concurrency());
    return result;
}

}  // namespace

ConfigError::ConfigError(std::string setting_name, std::string problem_text)
    : std::runtime_error(one_line(setting_name + ": " + problem_text)),
      setting(one_line(std::move(setting_name))),
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
    const std::string unit = ascii_lower(text.substr(digits));
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

std::string quoted(const std::string& value) { return json_string(value); }

std::string env_var_name(const std::string& name) { return "CRUDCAST_" + ascii_upper(yaml_key(name)); }

std::string yaml_key(const std::string& name) {
    std::string key = name;
    std::ranges::replace(key, '-', '_');
    return key;
}

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

const char* to_string(WsAuth mode) {
    switch (mode) {
        case WsAuth::none: return "none";
        case WsAuth::jwt: return "jwt";
        case WsAuth::forward: return "forward";
    }
    return "none";
}

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
