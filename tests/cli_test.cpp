// cli_test.cpp: runs the real crudcast binary and checks its command-line contract — --help,
// --version, --check-config, one-line errors with exit code 2, and exit code 1 on a busy port.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/config.hpp"

namespace {

using namespace std::chrono_literals;
using Env = std::map<std::string, std::string>;

struct Outcome {
    int exit_code = -1;  // 128 + signal when killed
    bool timed_out = false;
    std::string out, err;
};

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> result;
    std::size_t start = 0;
    while (start < text.size()) {
        const auto end = std::min(text.find('\n', start), text.size());
        result.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return result;
}

// Runs crudcast with `args` and only `env` (plus PATH and sanitizer options), so CRUDCAST_*
// variables of whoever runs the tests cannot leak in. Kills it after `timeout`.
Outcome run_crudcast(const std::vector<std::string>& args, const Env& env = {},
                     std::chrono::milliseconds timeout = 15s) {
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        ADD_FAILURE() << "pipe2: " << std::strerror(errno);
        return {};
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);

    std::vector<std::string> argv_text{CRUDCAST_BINARY};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<std::string> env_text{"PATH=/usr/bin:/bin"};
    for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"})
        if (const char* value = std::getenv(name)) env_text.push_back(std::string(name) + "=" + value);
    for (const auto& [name, value] : env) env_text.push_back(name + "=" + value);
    auto pointers = [](std::vector<std::string>& texts) {
        std::vector<char*> result;
        for (auto& text : texts) result.push_back(text.data());
        result.push_back(nullptr);
        return result;
    };
    auto argv = pointers(argv_text);
    auto envp = pointers(env_text);

    pid_t pid = -1;
    const int spawn_error = posix_spawn(&pid, CRUDCAST_BINARY, &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(out_pipe[1]);
    close(err_pipe[1]);
    Outcome outcome;
    if (spawn_error != 0) {
        ADD_FAILURE() << "cannot start " << CRUDCAST_BINARY << ": " << std::strerror(spawn_error);
        close(out_pipe[0]);
        close(err_pipe[0]);
        return outcome;
    }

    // Drain both pipes together: a child blocked on a full stderr pipe would never exit.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    pollfd fds[] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[] = {&outcome.out, &outcome.err};
    int open_pipes = 2;
    while (open_pipes > 0) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left <= 0ms) {
            outcome.timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        if (poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            char buffer[4096];
            const auto got = read(fds[i].fd, buffer, sizeof buffer);
            if (got > 0) {
                sinks[i]->append(buffer, static_cast<std::size_t>(got));
            } else if (got == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_pipes;
            }
        }
    }
    for (const auto& fd : fds)
        if (fd.fd >= 0) close(fd.fd);

    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return outcome;
}

const std::string upstream_flag = "--upstream=http://127.0.0.1:3000";

TEST(Cli, HelpListsEverySettingWithEnvVarAndDefault) {
    for (const auto* flag : {"--help", "-h"}) {
        const auto outcome = run_crudcast({flag});
        EXPECT_EQ(outcome.exit_code, 0) << flag;
        EXPECT_EQ(outcome.err, "");
        EXPECT_TRUE(outcome.out.starts_with("Usage: crudcast")) << outcome.out;
        for (const auto& spec : crudcast::config::settings()) {
            const std::string name = spec.name;
            EXPECT_NE(outcome.out.find("--" + name), std::string::npos) << name;
            EXPECT_NE(outcome.out.find(crudcast::config::env_var_name(name)), std::string::npos) << name;
            EXPECT_NE(outcome.out.find("default " + crudcast::config::default_text(spec)), std::string::npos) << name;
        }
    }
}

TEST(Cli, VersionPrintsTheVersion) {
    for (const auto* flag : {"--version", "-V"}) {
        const auto outcome = run_crudcast({flag});
        EXPECT_EQ(outcome.exit_code, 0) << flag;
        EXPECT_EQ(lines(outcome.out), std::vector<std::string>{"crudcast " CRUDCAST_VERSION}) << flag;
        EXPECT_EQ(outcome.err, "");
    }
}

TEST(Cli, CheckConfigPrintsEachSettingWithItsSource) {
    const auto outcome =
        run_crudcast({upstream_flag, "--check-config", "--idle-timeout", "5s"}, {{"CRUDCAST_LOG_LEVEL", "debug"}});
    EXPECT_EQ(outcome.exit_code, 0) << outcome.err;
    const auto printed = lines(outcome.out);
    EXPECT_EQ(printed.size(), crudcast::config::settings().size()) << outcome.out;
    EXPECT_NE(outcome.out.find("upstream = http://127.0.0.1:3000  (flag)"), std::string::npos) << outcome.out;
    EXPECT_NE(outcome.out.find("idle-timeout = 5s  (flag)"), std::string::npos) << outcome.out;
    EXPECT_NE(outcome.out.find("log-level = debug  (env)"), std::string::npos) << outcome.out;
    EXPECT_NE(outcome.out.find("listen = 0.0.0.0:8080  (default)"), std::string::npos) << outcome.out;
}

// The one setting that could carry a secret is --upstream: crudcast refuses credentials in it, and
// the refusal, from a flag, the environment or the file, prints the password as ***.
TEST(Cli, CheckConfigMasksAnUpstreamPassword) {
    const std::string url = "http://reader:s3cret@127.0.0.1:3000/api";
    std::string pattern = (std::filesystem::temp_directory_path() / "crudcast-cli-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    const std::filesystem::path dir = pattern;
    std::ofstream(dir / "crudcast.yaml") << "upstream: " << url << "\n";
    const std::pair<std::vector<std::string>, Env> ways[] = {
        {{"--check-config", "--upstream", url}, {}},
        {{"--check-config"}, {{"CRUDCAST_UPSTREAM", url}}},
        {{"--check-config", "--config", (dir / "crudcast.yaml").string()}, {}}};
    for (const auto& [args, env] : ways) {
        const auto outcome = run_crudcast(args, env);
        EXPECT_EQ(outcome.exit_code, 2) << outcome.err;
        EXPECT_EQ(outcome.out + outcome.err, outcome.err);
        EXPECT_NE(outcome.err.find("\"http://reader:***@127.0.0.1:3000/api\" must not contain user credentials"),
                  std::string::npos)
            << outcome.err;
        EXPECT_EQ(outcome.err.find("s3cret"), std::string::npos) << outcome.err;
    }
    std::filesystem::remove_all(dir);
}

struct InvalidCase {
    std::string name;
    std::vector<std::string> args;
    Env env;
    std::string yaml;      // when not empty, written to a file passed with --config
    std::string setting;   // expected right after "crudcast: invalid setting "
    std::string mentions;  // must appear in the line
};

class InvalidSetting : public ::testing::TestWithParam<InvalidCase> {
protected:
    void TearDown() override {
        if (!dir_.empty()) std::filesystem::remove_all(dir_);
    }
    std::string write_yaml(const std::string& yaml) {
        std::string pattern = (std::filesystem::temp_directory_path() / "crudcast-cli-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
        dir_ = pattern;
        const auto path = (dir_ / "crudcast.yaml").string();
        std::ofstream(path) << yaml;
        return path;
    }
    std::filesystem::path dir_;
};

TEST_P(InvalidSetting, PrintsOneLineNamingItAndExits2) {
    const auto& c = GetParam();
    auto args = c.args;
    if (!c.yaml.empty()) args.push_back("--config=" + write_yaml(c.yaml));
    const auto outcome = run_crudcast(args, c.env);
    EXPECT_FALSE(outcome.timed_out);
    EXPECT_EQ(outcome.exit_code, 2) << outcome.err;
    EXPECT_EQ(outcome.out, "");
    const auto printed = lines(outcome.err);
    ASSERT_EQ(printed.size(), 1u) << outcome.err;
    EXPECT_TRUE(printed[0].starts_with("crudcast: invalid setting " + c.setting + ": ")) << printed[0];
    EXPECT_NE(printed[0].find(c.mentions), std::string::npos) << printed[0];
}

const std::string up = upstream_flag;

INSTANTIATE_TEST_SUITE_P(
    Table, InvalidSetting,
    ::testing::Values(
        InvalidCase{"BadUpstreamUrl", {"--upstream", "ftp://x"}, {}, "", "upstream", "ftp://x"},
        InvalidCase{"HttpsUpstream", {"--upstream=https://x"}, {}, "", "upstream", "TLS"},
        InvalidCase{"MissingUpstream", {}, {}, "", "upstream", "required"},
        InvalidCase{"UnknownFlag", {up, "--frobnicate"}, {}, "", "frobnicate", "--frobnicate"},
        InvalidCase{"Positional", {up, "serve"}, {}, "", "arguments", "serve"},
        InvalidCase{"UnknownYamlKey", {up}, {}, "colour: blue\n", "config", "colour"},
        InvalidCase{"NegativeTimeout", {up, "--upstream-timeout", "-5s"}, {}, "", "upstream-timeout", "-5s"},
        InvalidCase{"NegativeTimeoutFromEnv",
                    {up},
                    {{"CRUDCAST_IDLE_TIMEOUT", "-1"}},
                    "",
                    "idle-timeout",
                    "CRUDCAST_IDLE_TIMEOUT"},
        InvalidCase{"MissingConfigFile",
                    {up, "--config", "/nonexistent/crudcast.yaml"},
                    {},
                    "",
                    "config",
                    "/nonexistent/crudcast.yaml"},
        InvalidCase{"ConfigFileIsDirectory", {up}, {{"CRUDCAST_CONFIG", "/"}}, "", "config", "directory"},
        InvalidCase{"UnparsableConfigFile", {up}, {}, "listen: [\n", "config", "YAML"},
        InvalidCase{"BadLogLevel", {up, "--log-level=loud"}, {}, "", "log-level", "loud"},
        InvalidCase{"BadSize", {up, "--max-body-bytes", "12q"}, {}, "", "max-body-bytes", "12q"},
        InvalidCase{"BadSizeInFile", {up}, {}, "max_header_bytes: huge\n", "max-header-bytes", "huge"},
        InvalidCase{"BadListen", {up, "--listen", "nowhere"}, {}, "", "listen", "nowhere"},
        InvalidCase{"NewlineInValueStaysOneLine", {"--upstream", "http://x/a\nb"}, {}, "", "upstream", "\\n"}),
    [](const auto& info) { return info.param.name; });

TEST(Cli, PortInUseExits1WithOneLine) {
    const int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(holder, 0) << std::strerror(errno);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    // Listening (not just bound) makes the port busy even for a socket with SO_REUSEADDR.
    ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&address), sizeof address), 0) << std::strerror(errno);
    ASSERT_EQ(listen(holder, 1), 0) << std::strerror(errno);
    ASSERT_EQ(getsockname(holder, reinterpret_cast<sockaddr*>(&address), &length), 0);
    const std::string busy = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));

    const auto outcome =
        run_crudcast({upstream_flag, "--listen", busy, "--admin-listen", "off", "--log-level", "error"}, {}, 10s);
    close(holder);
    ASSERT_FALSE(outcome.timed_out) << "crudcast kept running on a busy port";
    EXPECT_EQ(outcome.exit_code, 1) << outcome.err;
    const auto printed = lines(outcome.err);
    ASSERT_EQ(printed.size(), 1u) << outcome.err;
    EXPECT_TRUE(printed[0].starts_with("crudcast: cannot listen on " + busy + ": ")) << printed[0];
}

// --- deploy/crudcast.example.yaml ------------------------------------------------------------

const std::string example_config = CRUDCAST_SOURCE_DIR "/deploy/crudcast.example.yaml";

// "name = value  (source)" lines of --check-config, by name.
std::map<std::string, std::pair<std::string, std::string>> check_config_lines(const std::string& out) {
    std::map<std::string, std::pair<std::string, std::string>> result;
    for (const auto& line : lines(out)) {
        const auto equals = line.find(" = ");
        const auto open = line.rfind("  (");
        if (equals == std::string::npos || open == std::string::npos || !line.ends_with(")")) {
            ADD_FAILURE() << "unexpected --check-config line: " << line;
            continue;
        }
        result[line.substr(0, equals)] = {line.substr(equals + 3, open - equals - 3),
                                          line.substr(open + 3, line.size() - open - 4)};
    }
    return result;
}

// The example is the reference an operator copies: it must be valid, name every setting the binary
// knows (--check-config's names, not a list kept here) and give each its real default.
TEST(Cli, ExampleConfigIsAcceptedAndListsEverySettingWithItsDefault) {
    const auto from_file = run_crudcast({"--check-config", "--config", example_config});
    ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
    EXPECT_EQ(from_file.err, "");
    const auto defaults = run_crudcast({"--check-config", upstream_flag});
    ASSERT_EQ(defaults.exit_code, 0) << defaults.err;

    const auto file_lines = check_config_lines(from_file.out);
    const auto default_lines = check_config_lines(defaults.out);
    EXPECT_EQ(file_lines.size(), crudcast::config::settings().size()) << from_file.out;
    std::set<std::string> keys;
    for (const auto& entry : YAML::LoadFile(example_config)) keys.insert(entry.first.Scalar());
    for (const auto& [name, value_source] : default_lines) {
        if (name == "config") continue;  // a file cannot name another file
        EXPECT_TRUE(keys.erase(crudcast::config::yaml_key(name))) << "example lacks " << name;
        ASSERT_TRUE(file_lines.contains(name)) << name;
        EXPECT_EQ(file_lines.at(name).second, "file") << name;
        if (name != "upstream") {
            EXPECT_EQ(file_lines.at(name).first, value_source.first) << name << " is not the default";
        }
    }
    EXPECT_TRUE(keys.empty()) << "example has keys crudcast does not know: " << *keys.begin();
}

// The commented routes:/models: block at the end of the example works once uncommented.
TEST(Cli, ExampleConfigRouteRulesAreValidWhenUncommented) {
    std::ifstream in(example_config);
    std::string text, line;
    bool in_block = false;
    while (std::getline(in, line)) {
        in_block = in_block || line == "# routes:";
        text += (in_block && line.starts_with("# ") ? line.substr(2) : line) + "\n";
    }
    ASSERT_TRUE(in_block) << "no \"# routes:\" line in " << example_config;
    std::string pattern = (std::filesystem::temp_directory_path() / "crudcast-cli-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    const std::filesystem::path dir = pattern;
    std::ofstream(dir / "crudcast.yaml") << text;
    const auto outcome = run_crudcast({"--check-config", "--config", (dir / "crudcast.yaml").string()});
    std::filesystem::remove_all(dir);
    EXPECT_EQ(outcome.exit_code, 0) << outcome.err << "\n" << text;
    EXPECT_NE(outcome.out.find("routes = 3 rules  (file)"), std::string::npos) << outcome.out;
    EXPECT_NE(outcome.out.find("models = 1 override  (file)"), std::string::npos) << outcome.out;
}

}  // namespace
