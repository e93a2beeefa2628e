// help.cpp: what crudcast prints about its settings — `--help` (every setting with its env var and
// default) and `--check-config`'s describe() (each effective value with its source).
#include <string>
#include <utility>

#include "config/config.hpp"

namespace crudcast::config {

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
    const std::pair<const char*, const char*> groups[] = {
        {"proxy", "Proxy"},   {"timeouts", "Timeouts"},           {"limits", "Limits"},     {"logging", "Logging"},
        {"events", "Events"}, {"bus", "Bus (several instances)"}, {"security", "Security"}, {"admin", "Admin"}};
    for (const auto& [group, title] : groups) {
        text += std::string("\n") + title + ":\n";
        for (const auto& spec : settings()) {
            if (std::string(spec.group) != group) continue;
            const std::string hint = spec.value_hint;
            const std::string name = spec.name;
            text += hint.empty() ? "  --" + name + "[=BOOL], --no-" + name : "  --" + name + " " + hint;
            text += "\n      " + std::string(spec.description) + "\n      env " + env_var_name(name) + ", default " +
                    default_text(spec) + "\n";
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

}  // namespace crudcast::config
