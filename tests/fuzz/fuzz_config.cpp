// fuzz_config.cpp: the configuration parser, config::parse() (the function main() calls, which throws
// ConfigError and never exits): a YAML config file's text and command-line arguments. A refusal must
// be a ConfigError whose setting and problem are one line each (main prints them on one line, exit
// 2); an accepted configuration must describe itself, and its route rules must compile and build an
// event mapper (parse() validated them). Input: one option byte (whether CRUDCAST_UPSTREAM is set),
// then the file's text, then after a NUL byte the arguments, NUL-separated.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "config/route_rules.hpp"
#include "gateway/events/event_mapper.hpp"
#include "tests/fuzz/http_feed.hpp"

namespace {

using namespace crudcast::config;

// A file of this process's own, rewritten for each input (parse() reads the file by its path).
const std::string& config_path() {
    static const std::string path = [] {
        char name[] = "/tmp/crudcast-fuzz-config-XXXXXX";
        const int fd = mkstemp(name);
        CRUDCAST_FUZZ_CHECK(fd >= 0);
        close(fd);
        std::atexit([] { std::remove(config_path().c_str()); });
        return std::string(name);
    }();
    return path;
}

void write_file(std::string_view text) {
    std::FILE* file = std::fopen(config_path().c_str(), "wb");
    CRUDCAST_FUZZ_CHECK(file != nullptr);
    CRUDCAST_FUZZ_CHECK(std::fwrite(text.data(), 1, text.size(), file) == text.size());
    std::fclose(file);
}

bool one_line(const std::string& text) { return text.find_first_of("\r\n") == std::string::npos; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t options = data[0];
    std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto nul = input.find('\0');
    const auto file_text = input.substr(0, nul);
    std::vector<std::string> args;
    if (!file_text.empty()) {
        write_file(file_text);
        args = {"--config", config_path()};
    }
    if (nul != std::string_view::npos) {
        std::string_view rest = input.substr(nul + 1);
        while (!rest.empty()) {
            const auto end = rest.find('\0');
            args.emplace_back(rest.substr(0, end));
            rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
        }
    }
    std::map<std::string, std::string> env;
    if (options & 1) env["CRUDCAST_UPSTREAM"] = "http://127.0.0.1:3000";

    ParseResult parsed;
    try {
        parsed = parse(args, env);
    } catch (const ConfigError& e) {
        if (e.setting.empty() || !one_line(e.setting) || !one_line(e.problem))
            std::fprintf(stderr, "setting [%s] problem [%s]\n", e.setting.c_str(), e.problem.c_str());
        CRUDCAST_FUZZ_CHECK(!e.setting.empty() && one_line(e.setting) && one_line(e.problem));
        return 0;
    }
    if (parsed.action == Action::help || parsed.action == Action::version) return 0;  // nothing parsed
    const auto& config = parsed.config;
    CRUDCAST_FUZZ_CHECK(!describe(config).empty());
    CRUDCAST_FUZZ_CHECK(config.threads >= 1);
    const RouteTable table(config.routes);  // throws (an uncaught exception: a crash) for a bad rule
    const crudcast::gateway::EventMapper mapper(config);
    (void)mapper.precheck("POST", "/api/x", 201, "application/json", -1);
    return 0;
}
