// layers.hpp: config/'s own seams, not for other folders: the command line and the YAML file, each
// read into setting name -> text, which parse() (config.cpp) stacks over the environment and defaults.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/config.hpp"

namespace crudcast::config {

// The "security" group of the settings table (security_settings.cpp), and the checks of its
// settings that need each other (called by parse() once every layer is read).
std::vector<SettingSpec> security_settings();
void check_security(const Config& config);

// The bus settings (bus_settings.cpp): which bus, the broker's credentials; and their joint checks.
std::vector<SettingSpec> bus_settings();
void check_bus(const Config& config);

struct CommandLine {
    bool check_config = false;
    std::map<std::string, std::string> values;  // setting name -> text; a repeated flag's last value wins
};

// The flags (command_line.cpp); throws ConfigError for an unknown flag or a missing value.
CommandLine read_flags(const std::vector<std::string>& args);

// The file's plain settings as flag text, plus the structured keys only a file can give.
struct FileContents {
    std::map<std::string, std::string> values;
    std::optional<YAML::Node> routes;
    std::optional<YAML::Node> models;
};

// The YAML file named by --config (config_file.cpp); throws ConfigError naming the problem.
FileContents read_config_file(const std::string& path);

// `routes:` and `models:`, read after the plain settings so that those are reported first.
std::vector<RouteRule> parse_routes(const YAML::Node& node, const std::string& file);
std::vector<std::pair<std::string, std::string>> parse_models(const YAML::Node& node, const std::string& file);

// "idle_timeout" -> "idle-timeout": the YAML spelling of a name back to the flag's.
inline std::string underscores_to_dashes(std::string text) {
    for (char& c : text)
        if (c == '_') c = '-';
    return text;
}

}  // namespace crudcast::config
