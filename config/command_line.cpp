// command_line.cpp: the flags — `--name VALUE`, `--name=VALUE`, `--flag`, `--no-flag`,
// --check-config — read into setting name -> text, with a hint for each common slip.
#include <string>
#include <vector>

#include "config/layers.hpp"

namespace crudcast::config {
namespace {

using std::string;

[[noreturn]] void unknown_flag(const string& flag, const string& name) {
    string problem = "unknown flag " + flag;
    // A common slip is writing the YAML spelling on the command line.
    if (const auto* spec = find_setting(underscores_to_dashes(name)); spec != nullptr && name != spec->name)
        problem += " (did you mean --" + string(spec->name) + "?)";
    throw ConfigError(name.empty() ? "arguments" : name, problem + "; see crudcast --help");
}

}  // namespace

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

}  // namespace crudcast::config
