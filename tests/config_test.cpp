// config_test.cpp: unit tests of config::parse() — value syntax, flag > env > file > default
// precedence, every error path — and of help_text()/describe() staying in step with the table.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "config/config.hpp"
#include "config/route_rules.hpp"

namespace {

using namespace crudcast::config;
using namespace std::chrono_literals;
using Args = std::vector<std::string>;
using Env = std::map<std::string, std::string>;

const std::string upstream_flag = "--upstream=http://127.0.0.1:3000";

// A YAML file in a fresh temp directory, removed with the fixture.
class ConfigFiles : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (std::filesystem::temp_directory_path() / "crudcast-config-XXXXXX").string();
        ASSERT_NE(mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::string write(const std::string& yaml, const std::string& name = "crudcast.yaml") {
        const auto path = (dir_ / name).string();
        std::ofstream(path) << yaml;
        return path;
    }

    std::filesystem::path dir_;
};

std::string shown(const Config& config, const std::string& name) {
    const auto* spec = find_setting(name);
    EXPECT_NE(spec, nullptr) << name;
    return spec == nullptr ? "" : spec->show(config);
}

// --- precedence ------------------------------------------------------------------------------

struct PrecedenceCase {
    std::string setting;
    std::string file_value, env_value, flag_value;  // each layer gets a different valid value
    std::string file_shown, env_shown, flag_shown, default_shown;
};

class Precedence : public ConfigFiles, public ::testing::WithParamInterface<PrecedenceCase> {};

TEST_P(Precedence, FlagBeatsEnvBeatsFileBeatsDefault) {
    const auto& c = GetParam();
    const auto file = write("upstream: http://127.0.0.1:3000\n" + yaml_key(c.setting) + ": \"" + c.file_value + "\"\n");
    const Env env_with_value{{env_var_name(c.setting), c.env_value}};
    const std::string flag = "--" + c.setting + "=" + c.flag_value;

    struct Layers {
        bool file, env, flag;
        std::string expected;
        Source source;
    };
    for (const auto& layers :
         {Layers{false, false, false, c.default_shown, Source::default_value},
          Layers{true, false, false, c.file_shown, Source::file}, Layers{true, true, false, c.env_shown, Source::env},
          Layers{false, true, false, c.env_shown, Source::env}, Layers{true, true, true, c.flag_shown, Source::flag},
          Layers{false, false, true, c.flag_shown, Source::flag}}) {
        Args args{upstream_flag};
        if (layers.file) args.push_back("--config=" + file);
        if (layers.flag) args.push_back(flag);
        const auto result = parse(args, layers.env ? env_with_value : Env{});
        SCOPED_TRACE("file=" + std::to_string(layers.file) + " env=" + std::to_string(layers.env) +
                     " flag=" + std::to_string(layers.flag));
        EXPECT_EQ(shown(result.config, c.setting), layers.expected);
        EXPECT_EQ(result.config.sources.at(c.setting), layers.source);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Settings, Precedence,
    ::testing::Values(PrecedenceCase{"listen", "127.0.0.1:1", "127.0.0.1:2", "[::1]:3", "127.0.0.1:1", "127.0.0.1:2",
                                     "[::1]:3", "0.0.0.0:8080"},
                      PrecedenceCase{"upstream-timeout", "1s", "2m", "1500ms", "1s", "2m", "1500ms", "1m"},
                      PrecedenceCase{"log-level", "warn", "DEBUG", "trace", "warn", "debug", "trace", "info"},
                      PrecedenceCase{"max-body-bytes", "0", "64K", "1g", "0", "64k", "1g", "1g"},
                      PrecedenceCase{"preserve-host", "no", "off", "true", "false", "false", "true", "true"},
                      PrecedenceCase{"path-prefixes", "a", "b, c", "/d/", "a", "b,c", "d", "api"},
                      PrecedenceCase{"admin-listen", "off", "127.0.0.1:9", "OFF", "off", "127.0.0.1:9", "off",
                                     "127.0.0.1:9901"},
                      PrecedenceCase{"threads", "3", "4", "5", "3", "4", "5",
                                     std::to_string(std::max(1u, std::thread::hardware_concurrency()))}),
    [](const auto& info) {
        std::string name = info.param.setting;
        std::erase(name, '-');
        return name;
    });

TEST_F(ConfigFiles, ConfigFileCanComeFromTheEnvironment) {
    const auto file = write("upstream: http://up:81\nidle_timeout: 7s\n");
    const auto result = parse({}, {{"CRUDCAST_CONFIG", file}});
    EXPECT_EQ(result.config.upstream.host_header, "up:81");
    EXPECT_EQ(result.config.idle_timeout, 7s);
    EXPECT_EQ(result.config.config_file, file);
    EXPECT_EQ(result.config.sources.at("config"), Source::env);
    EXPECT_EQ(result.config.sources.at("upstream"), Source::file);
}

TEST_F(ConfigFiles, ConfigFlagBeatsConfigEnv) {
    const auto from_flag = write("upstream: http://flag\n", "flag.yaml");
    const auto from_env = write("upstream: http://env\n", "env.yaml");
    const auto result = parse({"--config", from_flag}, {{"CRUDCAST_CONFIG", from_env}});
    EXPECT_EQ(result.config.upstream.host, "flag");
}

// --- accepted values -------------------------------------------------------------------------

TEST(Parse, DefaultsNeedOnlyAnUpstream) {
    const auto result = parse({upstream_flag}, {});
    const Config defaults;
    const auto& config = result.config;
    EXPECT_EQ(result.action, Action::run);
    EXPECT_EQ(config.listen.host, defaults.listen.host);
    EXPECT_EQ(config.listen.port, defaults.listen.port);
    EXPECT_EQ(config.upstream_timeout, defaults.upstream_timeout);
    EXPECT_EQ(config.publish_methods, defaults.publish_methods);
    EXPECT_GE(config.threads, 1u);
    for (const auto& spec : settings()) {
        EXPECT_EQ(config.sources.at(spec.name),
                  std::string(spec.name) == "upstream" ? Source::flag : Source::default_value)
            << spec.name;
    }
}

struct UpstreamCase {
    std::string url, host;
    std::uint16_t port;
    std::string base_path, host_header;
};

void PrintTo(const UpstreamCase& c, std::ostream* out) { *out << c.url; }

class Upstreams : public ::testing::TestWithParam<UpstreamCase> {};

TEST_P(Upstreams, AreSplitIntoParts) {
    const auto& c = GetParam();
    const auto upstream = parse({"--upstream", c.url}, {}).config.upstream;
    EXPECT_EQ(upstream.text, c.url);
    EXPECT_EQ(upstream.host, c.host);
    EXPECT_EQ(upstream.port, c.port);
    EXPECT_EQ(upstream.base_path, c.base_path);
    EXPECT_EQ(upstream.host_header, c.host_header);
}

INSTANTIATE_TEST_SUITE_P(Urls, Upstreams,
                         ::testing::Values(UpstreamCase{"http://127.0.0.1:3000", "127.0.0.1", 3000, "",
                                                        "127.0.0.1:3000"},
                                           UpstreamCase{"http://app", "app", 80, "", "app"},
                                           UpstreamCase{"http://app:80/", "app", 80, "", "app"},
                                           UpstreamCase{"HTTP://app/base/", "app", 80, "/base", "app"},
                                           UpstreamCase{"http://app:8080/a/b//", "app", 8080, "/a/b", "app:8080"},
                                           UpstreamCase{"http://[::1]:3000/x", "::1", 3000, "/x", "[::1]:3000"},
                                           UpstreamCase{"http://[::1]", "::1", 80, "", "[::1]"}));

struct ValueCase {
    Args args;
    std::string setting, expected_shown;
};

void PrintTo(const ValueCase& c, std::ostream* out) {
    for (const auto& arg : c.args) *out << arg << ' ';
}

class Values : public ::testing::TestWithParam<ValueCase> {};

TEST_P(Values, AreParsedAndShown) {
    auto args = GetParam().args;
    args.push_back(upstream_flag);
    EXPECT_EQ(shown(parse(args, {}).config, GetParam().setting), GetParam().expected_shown);
}

INSTANTIATE_TEST_SUITE_P(
    Flags, Values,
    ::testing::Values(
        ValueCase{{"--listen", "[::]:0"}, "listen", "[::]:0"}, ValueCase{{"--listen=:9000"}, "listen", "0.0.0.0:9000"},
        ValueCase{{"--listen", "localhost:65535"}, "listen", "localhost:65535"},
        ValueCase{{"--ws-path", "/events"}, "ws-path", "/events"},
        ValueCase{{"--connect-timeout", "90"}, "connect-timeout", "90s"},
        ValueCase{{"--drain-timeout", "2h"}, "drain-timeout", "2h"},
        ValueCase{{"--client-header-timeout", "250ms"}, "client-header-timeout", "250ms"},
        ValueCase{{"--idle-timeout", "120s"}, "idle-timeout", "2m"},
        ValueCase{{"--max-header-bytes", "1000"}, "max-header-bytes", "1000"},
        ValueCase{{"--max-body-bytes", "16M"}, "max-body-bytes", "16m"},
        ValueCase{{"--max-connections", "2k"}, "max-connections", "2048"},
        ValueCase{{"--upstream-max-idle", "0"}, "upstream-max-idle", "0"},
        ValueCase{{"--preserve-host"}, "preserve-host", "true"},
        ValueCase{{"--no-preserve-host"}, "preserve-host", "false"},
        ValueCase{{"--preserve-host=0"}, "preserve-host", "false"},
        ValueCase{{"--preserve-host=Yes"}, "preserve-host", "true"},
        ValueCase{{"--no-preserve-host", "--preserve-host"}, "preserve-host", "true"},
        ValueCase{{"--log-format", "JSON"}, "log-format", "json"},
        ValueCase{{"--path-prefixes", "api, /v2/items/ ,api"}, "path-prefixes", "api,v2/items"},
        ValueCase{{"--path-prefixes", "/"}, "path-prefixes", "\"\""},
        ValueCase{{"--publish-methods", "post,Patch, PURGE,post"}, "publish-methods", "POST,PATCH,PURGE"},
        ValueCase{{"--id-field", "uuid"}, "id-field", "uuid"},
        ValueCase{{"--payload-pointer", "/data/a~1b~0"}, "payload-pointer", "/data/a~1b~0"},
        ValueCase{{"--payload-pointer="}, "payload-pointer", "\"\""},
        ValueCase{{"--ws-ping-interval=5s"}, "ws-ping-interval", "5s"},
        ValueCase{{"--ws-max-queue-messages", "1"}, "ws-max-queue-messages", "1"},
        ValueCase{{"--ws-max-queue-bytes", "1m"}, "ws-max-queue-bytes", "1m"},
        ValueCase{{"--ws-write-timeout", "300ms"}, "ws-write-timeout", "300ms"},
        ValueCase{{"--ws-close-timeout", "2m"}, "ws-close-timeout", "2m"},
        ValueCase{{"--ws-max-topics", "8"}, "ws-max-topics", "8"},
        ValueCase{{"--ws-max-subscribers", "1k"}, "ws-max-subscribers", "1024"},
        ValueCase{{"--ws-allowed-origins", "https://App.example.com/, http://localhost:5173,https://app.example.com"},
                  "ws-allowed-origins",
                  "https://app.example.com,http://localhost:5173"},
        ValueCase{{"--ws-allowed-origins="}, "ws-allowed-origins", "\"\""},
        ValueCase{{"--max-event-bytes", "100"}, "max-event-bytes", "100"},
        ValueCase{{"--admin-listen", "0.0.0.0:0"}, "admin-listen", "0.0.0.0:0"},
        ValueCase{{"--upstream-health-path", "/healthz"}, "upstream-health-path", "/healthz"},
        ValueCase{{"--admin-allowed-hosts", "Admin.Example, crudcast-admin.internal,admin.example"},
                  "admin-allowed-hosts",
                  "admin.example,crudcast-admin.internal"},
        ValueCase{{"--admin-allowed-hosts="}, "admin-allowed-hosts", "\"\""},
        ValueCase{{"--threads", "1", "--threads", "7"}, "threads", "7"},
        ValueCase{{"--ws-auth", "JWT", "--jwt-secret-file", "/run/s"}, "ws-auth", "jwt"},
        ValueCase{{"--jwt-algorithm", "eddsa"}, "jwt-algorithm", "EdDSA"},
        ValueCase{{"--jwt-algorithm="}, "jwt-algorithm", "by key"},
        ValueCase{{"--jwt-leeway", "0"}, "jwt-leeway", "0s"},
        ValueCase{
            {"--ws-auth-url", "http://auth.internal:9000/check"}, "ws-auth-url", "http://auth.internal:9000/check"},
        ValueCase{{"--ws-handshake-rate", "0"}, "ws-handshake-rate", "0"},
        ValueCase{{"--never-publish", "Login, SESSION,login"}, "never-publish", "login,session"},
        ValueCase{{"--never-publish="}, "never-publish", "none"},
        ValueCase{{"--redact-fields", "Password,ssn"}, "redact-fields", "Password,ssn"},
        ValueCase{{"--redact-fields", "none"}, "redact-fields", "none"}));

TEST(Parse, ListenAndAdminFieldsAreSet) {
    const auto config = parse({upstream_flag, "--listen", "[::1]:8081", "--admin-listen", "off"}, {}).config;
    EXPECT_EQ(config.listen.host, "::1");
    EXPECT_EQ(config.listen.port, 8081);
    EXPECT_FALSE(config.admin_listen.has_value());
}

TEST(Parse, ThreadsZeroMeansOnePerCore) {
    const auto config = parse({upstream_flag, "--threads", "0"}, {}).config;
    EXPECT_EQ(config.threads, std::max(1u, std::thread::hardware_concurrency()));
}

TEST(Parse, ActionsFromSpecialFlags) {
    EXPECT_EQ(parse({"--help"}, {}).action, Action::help);
    EXPECT_EQ(parse({"-h"}, {}).action, Action::help);
    EXPECT_EQ(parse({"--version"}, {}).action, Action::version);
    EXPECT_EQ(parse({"-V"}, {}).action, Action::version);
    // Help must stay reachable even when the rest of the line is wrong.
    EXPECT_EQ(parse({"--bogus", "--help"}, {{"CRUDCAST_LISTEN", "nonsense"}}).action, Action::help);
    EXPECT_EQ(parse({upstream_flag, "--check-config"}, {}).action, Action::check_config);
    EXPECT_THROW(parse({"--check-config"}, {}), ConfigError);  // still needs a valid config
}

TEST(Parse, IgnoresUnrelatedEnvironment) {
    EXPECT_NO_THROW(parse({upstream_flag}, {{"PATH", "/bin"}, {"CRUDCAST_SOMETHING_ELSE", "x"}}));
}

TEST_F(ConfigFiles, YamlFileFormsAreAccepted) {
    const auto file = write(R"(# comment
upstream: http://app:3000/base/
preserve_host: false
path_prefixes: [api, /v2]
publish_methods:
  - put
  - delete
upstream_health_path:
max_body_bytes: 0
threads: 2
routes:
  - path: /api/items
models: {octopi: octopus}
)");
    const auto config = parse({"--config", file}, {}).config;
    EXPECT_EQ(config.upstream.base_path, "/base");
    EXPECT_FALSE(config.preserve_host);
    EXPECT_EQ(config.path_prefixes, (std::vector<std::string>{"api", "v2"}));
    EXPECT_EQ(config.publish_methods, (std::vector<std::string>{"PUT", "DELETE"}));
    EXPECT_EQ(config.upstream_health_path, "");
    EXPECT_EQ(config.max_body_bytes, 0u);
    EXPECT_EQ(config.threads, 2u);
    EXPECT_EQ(config.sources.at("max-body-bytes"), Source::file);
    EXPECT_EQ(config.routes.size(), 1u);
    EXPECT_EQ(config.models.size(), 1u);
}

TEST_F(ConfigFiles, EmptyFileSetsNothing) {
    const auto file = write("");
    EXPECT_EQ(parse({upstream_flag, "--config", file}, {}).config.sources.at("listen"), Source::default_value);
}

// --- errors ----------------------------------------------------------------------------------

struct ErrorCase {
    std::string name;
    Args args;
    Env env;
    std::string yaml;  // when not empty, written to a file and passed with --config
    std::string setting;
    std::string problem_contains;
};

class Errors : public ConfigFiles, public ::testing::WithParamInterface<ErrorCase> {};

TEST_P(Errors, NameTheSettingOnOneLine) {
    const auto& c = GetParam();
    auto args = c.args;
    if (!c.yaml.empty()) args.push_back("--config=" + write(c.yaml));
    try {
        parse(args, c.env);
        FAIL() << "no ConfigError";
    } catch (const ConfigError& e) {
        EXPECT_EQ(e.setting, c.setting);
        EXPECT_NE(e.problem.find(c.problem_contains), std::string::npos) << e.problem;
        EXPECT_EQ(std::string(e.what()), e.setting + ": " + e.problem);
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        EXPECT_EQ(e.setting.find_first_of("\r\n"), std::string::npos) << e.setting;
    }
}

const std::string up = upstream_flag;

INSTANTIATE_TEST_SUITE_P(
    Table, Errors,
    ::testing::Values(
        ErrorCase{"MissingUpstream", {}, {}, "", "upstream", "is required"},
        ErrorCase{"WsAuthUnknown", {up, "--ws-auth", "basic"}, {}, "", "ws-auth", "not one of none, jwt, forward"},
        ErrorCase{"JwtWithoutKey", {up, "--ws-auth", "jwt"}, {}, "", "ws-auth", "needs one of jwt-secret-file"},
        ErrorCase{"JwtTwoKeys",
                  {up, "--ws-auth", "jwt", "--jwt-secret-file", "/a", "--jwt-jwks-file", "/b"},
                  {},
                  "",
                  "ws-auth",
                  "takes only one of"},
        ErrorCase{"JwtHmacWithPublicKey",
                  {up, "--ws-auth", "jwt", "--jwt-public-key-file", "/k.pem", "--jwt-algorithm", "HS256"},
                  {},
                  "",
                  "jwt-algorithm",
                  "HS256 needs jwt-secret-file or jwt-jwks-file"},
        ErrorCase{"JwtAlgNone", {up, "--jwt-algorithm", "none"}, {}, "", "jwt-algorithm", "not a supported algorithm"},
        ErrorCase{"ForwardWithoutUrl", {up, "--ws-auth", "forward"}, {}, "", "ws-auth-url", "is required"},
        ErrorCase{
            "ForwardHttps", {up, "--ws-auth-url", "https://auth/x"}, {}, "", "ws-auth-url", "https is not supported"},
        ErrorCase{"HandshakeBurstZero", {up, "--ws-handshake-burst", "0"}, {}, "", "ws-handshake-burst", "at least 1"},
        ErrorCase{"FtpUpstream", {"--upstream", "ftp://x"}, {}, "", "upstream", "\"ftp://x\" is not an http:// URL"},
        ErrorCase{
            "HttpsUpstream", {"--upstream", "https://x"}, {}, "", "upstream", "TLS to the upstream is not supported"},
        ErrorCase{"NoScheme", {"--upstream", "localhost:3000"}, {}, "", "upstream", "is not an http:// URL"},
        ErrorCase{"EmptyUpstream", {}, {{"CRUDCAST_UPSTREAM", ""}}, "", "upstream", "is empty"},
        ErrorCase{"UpstreamQuery", {"--upstream", "http://x/?a=1"}, {}, "", "upstream", "query or fragment"},
        ErrorCase{"UpstreamFragment", {"--upstream", "http://x/#top"}, {}, "", "upstream", "query or fragment"},
        ErrorCase{"UpstreamPortZero", {"--upstream", "http://x:0"}, {}, "", "upstream", "invalid port"},
        ErrorCase{"UpstreamPortBig", {"--upstream", "http://x:65536"}, {}, "", "upstream", "invalid port"},
        ErrorCase{"UpstreamPortEmpty", {"--upstream", "http://x:/a"}, {}, "", "upstream", "invalid port"},
        ErrorCase{"UpstreamNoHost", {"--upstream", "http:///a"}, {}, "", "upstream", "no valid host"},
        ErrorCase{"UpstreamCredentials", {"--upstream", "http://u:p@x"}, {}, "", "upstream", "credentials"},
        ErrorCase{"UpstreamNewline", {"--upstream", "http://x/a\nb"}, {}, "", "upstream", "\\n"},
        // Boost.URL refuses these; the message still names the part to fix.
        ErrorCase{"UpstreamUnclosedBracket", {"--upstream", "http://[::1"}, {}, "", "upstream", "has no closing ']'"},
        ErrorCase{
            "UpstreamBadIpv6", {"--upstream", "http://[zz]:80"}, {}, "", "upstream", "has an invalid IPv6 address"},
        ErrorCase{
            "UpstreamIpvFuture", {"--upstream", "http://[v1.x]"}, {}, "", "upstream", "has an invalid IPv6 address"},
        ErrorCase{
            "UpstreamJunkAfterBracket", {"--upstream", "http://[::1]x"}, {}, "", "upstream", "has junk after ']'"},
        ErrorCase{"UpstreamBadHost", {"--upstream", "http://a|b:80/x"}, {}, "", "upstream", "has no valid host"},
        ErrorCase{"UpstreamHostAndPortBad", {"--upstream", "http://a!b:x/"}, {}, "", "upstream", "has no valid host"},
        ErrorCase{"UpstreamEscapedHost", {"--upstream", "http://%61pp/x"}, {}, "", "upstream", "has no valid host"},
        ErrorCase{"UpstreamPortWord", {"--upstream", "http://x:abc/a"}, {}, "", "upstream", "invalid port \"abc\""},
        ErrorCase{"UpstreamBadEscape", {"--upstream", "http://x/a%zz"}, {}, "", "upstream", "has an invalid path"},
        ErrorCase{"UpstreamBadPathByte", {"--upstream", "http://x/{a}"}, {}, "", "upstream", "has an invalid path"},
        ErrorCase{"UpstreamUserOnly", {"--upstream", "http://u@x"}, {}, "", "upstream", "credentials"},
        ErrorCase{"ErrorSaysWhereFromEnv",
                  {},
                  {{"CRUDCAST_UPSTREAM", "ftp://x"}},
                  "",
                  "upstream",
                  "set by CRUDCAST_UPSTREAM"},
        ErrorCase{"ErrorSaysWhereFromFlag", {"--upstream", "ftp://x"}, {}, "", "upstream", "set by --upstream"},
        ErrorCase{"OriginWithoutScheme",
                  {up, "--ws-allowed-origins", "app.example.com"},
                  {},
                  "",
                  "ws-allowed-origins",
                  "is not an origin"},
        ErrorCase{"OriginWithPath",
                  {up, "--ws-allowed-origins", "https://app.example.com/page"},
                  {},
                  "",
                  "ws-allowed-origins",
                  "is not an origin"},
        ErrorCase{"OriginWithCredentials",
                  {up, "--ws-allowed-origins", "https://user@app.example.com"},
                  {},
                  "",
                  "ws-allowed-origins",
                  "is not an origin"},
        ErrorCase{"OriginWithQuery",
                  {up, "--ws-allowed-origins", "https://app.example.com?x=1"},
                  {},
                  "",
                  "ws-allowed-origins",
                  "is not an origin"},
        ErrorCase{"OriginWithFragment",
                  {up, "--ws-allowed-origins", "https://app.example.com#top"},
                  {},
                  "",
                  "ws-allowed-origins",
                  "is not an origin"},
        ErrorCase{"OriginOtherScheme",
                  {up, "--ws-allowed-origins", "ftp://app.example.com"},
                  {},
                  "",
                  "ws-allowed-origins",
                  "is not an origin"},
        ErrorCase{"OriginEmptyPort",
                  {up, "--ws-allowed-origins", "https://app.example.com:"},
                  {},
                  "",
                  "ws-allowed-origins",
                  "is not an origin"},
        ErrorCase{"OriginNoHost",
                  {up, "--ws-allowed-origins", "https://:443"},
                  {},
                  "",
                  "ws-allowed-origins",
                  "is not an origin"},
        ErrorCase{"OriginBadEscape",
                  {up, "--ws-allowed-origins", "https://app%zz.example.com"},
                  {},
                  "",
                  "ws-allowed-origins",
                  "is not an origin"},
        ErrorCase{"OriginEmptyEntry",
                  {up, "--ws-allowed-origins", "https://a.example,,https://b.example"},
                  {},
                  "",
                  "ws-allowed-origins",
                  "empty entry"},
        ErrorCase{"AdminHostWithPort",
                  {up, "--admin-allowed-hosts", "admin.example:9901"},
                  {},
                  "",
                  "admin-allowed-hosts",
                  "is not a host name"},
        ErrorCase{"AdminHostWithScheme",
                  {up, "--admin-allowed-hosts", "http://admin.example"},
                  {},
                  "",
                  "admin-allowed-hosts",
                  "is not a host name"},
        ErrorCase{"AdminHostWithPath",
                  {up, "--admin-allowed-hosts", "admin.example/x"},
                  {},
                  "",
                  "admin-allowed-hosts",
                  "is not a host name"},
        ErrorCase{"AdminHostWithCredentials",
                  {up, "--admin-allowed-hosts", "u@admin.example"},
                  {},
                  "",
                  "admin-allowed-hosts",
                  "is not a host name"},
        ErrorCase{"AdminHostIpv6",
                  {up, "--admin-allowed-hosts", "[::1]"},
                  {},
                  "",
                  "admin-allowed-hosts",
                  "is not a host name"},
        ErrorCase{"AdminHostBadByte",
                  {up, "--admin-allowed-hosts", "admin!example"},
                  {},
                  "",
                  "admin-allowed-hosts",
                  "is not a host name"},
        ErrorCase{"AdminHostEscape",
                  {up, "--admin-allowed-hosts", "adm%69n"},
                  {},
                  "",
                  "admin-allowed-hosts",
                  "is not a host name"},
        ErrorCase{"AdminHostEmptyEntry",
                  {up, "--admin-allowed-hosts", "a.example,,b.example"},
                  {},
                  "",
                  "admin-allowed-hosts",
                  "empty entry"},
        ErrorCase{"ListenNoPort", {up, "--listen", "localhost"}, {}, "", "listen", "has no port"},
        ErrorCase{"ListenBadPort", {up, "--listen", "localhost:http"}, {}, "", "listen", "invalid port"},
        ErrorCase{"ListenBareIpv6", {up, "--listen", "::1:80"}, {}, "", "listen", "needs brackets"},
        ErrorCase{"ListenUnclosedBracket", {up, "--listen", "[::1:80"}, {}, "", "listen", "closing ']'"},
        ErrorCase{"ListenBadHost", {up, "--listen", "a b:80"}, {}, "", "listen", "invalid host"},
        ErrorCase{"AdminBad", {up, "--admin-listen", "nope"}, {}, "", "admin-listen", "has no port"},
        ErrorCase{"AdminSameAsListen",
                  {up, "--listen", "127.0.0.1:9000", "--admin-listen", "127.0.0.1:9000"},
                  {},
                  "",
                  "admin-listen",
                  "same address as listen"},
        ErrorCase{"WsPathRelative", {up, "--ws-path", "ws"}, {}, "", "ws-path", "must start with '/'"},
        ErrorCase{"ThreadsWord", {up, "--threads", "many"}, {}, "", "threads", "not a whole number"},
        ErrorCase{"ThreadsNegative", {up, "--threads", "-1"}, {}, "", "threads", "negative"},
        ErrorCase{"ThreadsHuge", {up, "--threads", "100000"}, {}, "", "threads", "too large"},
        ErrorCase{"NegativeTimeout", {up, "--idle-timeout", "-5s"}, {}, "", "idle-timeout", "negative"},
        ErrorCase{"ZeroTimeout", {up, "--connect-timeout", "0"}, {}, "", "connect-timeout", "greater than zero"},
        ErrorCase{"ZeroDrain", {up}, {{"CRUDCAST_DRAIN_TIMEOUT", "0ms"}}, "", "drain-timeout", "greater than zero"},
        ErrorCase{"GarbageTimeout", {up, "--upstream-timeout", "soon"}, {}, "", "upstream-timeout", "not a duration"},
        ErrorCase{"UnknownUnit",
                  {up, "--upstream-keepalive-timeout", "5d"},
                  {},
                  "",
                  "upstream-keepalive-timeout",
                  "not a duration"},
        ErrorCase{
            "HugeTimeout", {up, "--client-header-timeout", "99999999h"}, {}, "", "client-header-timeout", "too long"},
        ErrorCase{"ZeroPing", {up, "--ws-ping-interval", "0s"}, {}, "", "ws-ping-interval", "greater than zero"},
        ErrorCase{"BadSize", {up, "--max-body-bytes", "lots"}, {}, "", "max-body-bytes", "not a size"},
        ErrorCase{"SizeUnit", {up, "--max-header-bytes", "1kb"}, {}, "", "max-header-bytes", "not a size"},
        ErrorCase{"NegativeSize", {up, "--max-event-bytes", "-1"}, {}, "", "max-event-bytes", "negative"},
        ErrorCase{"SizeOverflow", {up, "--max-body-bytes", "99999999999g"}, {}, "", "max-body-bytes", "too large"},
        ErrorCase{"ZeroHeaderBytes", {up, "--max-header-bytes", "0"}, {}, "", "max-header-bytes", "at least 1"},
        ErrorCase{"ZeroConnections", {up, "--max-connections", "0"}, {}, "", "max-connections", "at least 1"},
        ErrorCase{
            "ZeroQueueMessages", {up, "--ws-max-queue-messages", "0"}, {}, "", "ws-max-queue-messages", "at least 1"},
        ErrorCase{"ZeroQueueBytes", {up, "--ws-max-queue-bytes", "0"}, {}, "", "ws-max-queue-bytes", "at least 1"},
        ErrorCase{"ZeroWriteTimeout", {up, "--ws-write-timeout", "0"}, {}, "", "ws-write-timeout", "greater than zero"},
        ErrorCase{"ZeroCloseTimeout", {up, "--ws-close-timeout", "0"}, {}, "", "ws-close-timeout", "greater than zero"},
        ErrorCase{"ZeroTopics", {up, "--ws-max-topics", "0"}, {}, "", "ws-max-topics", "at least 1"},
        ErrorCase{"ZeroSubscribers", {up, "--ws-max-subscribers", "0"}, {}, "", "ws-max-subscribers", "at least 1"},
        ErrorCase{"BadLogLevel", {up, "--log-level", "verbose"}, {}, "", "log-level", "not a log level"},
        ErrorCase{"BadLogFormat", {up, "--log-format", "xml"}, {}, "", "log-format", "not a log format"},
        ErrorCase{"BadBool", {up, "--preserve-host=maybe"}, {}, "", "preserve-host", "not a boolean"},
        ErrorCase{"BadBoolEnv", {up}, {{"CRUDCAST_PRESERVE_HOST", "2"}}, "", "preserve-host", "not a boolean"},
        ErrorCase{"NegatedWithValue", {up, "--no-preserve-host=true"}, {}, "", "preserve-host", "takes no value"},
        ErrorCase{
            "BoolSeparateValue", {up, "--preserve-host", "false"}, {}, "", "preserve-host", "--preserve-host=false"},
        ErrorCase{"EmptyPrefix", {up, "--path-prefixes", "api,,v2"}, {}, "", "path-prefixes", "empty entry"},
        ErrorCase{"EmptyIdField", {up, "--id-field="}, {}, "", "id-field", "is empty"},
        ErrorCase{"PointerNoSlash", {up, "--payload-pointer", "data"}, {}, "", "payload-pointer", "not a JSON Pointer"},
        ErrorCase{"PointerBadEscape", {up, "--payload-pointer", "/a~2"}, {}, "", "payload-pointer", "~0 and ~1"},
        ErrorCase{
            "MethodNotToken", {up, "--publish-methods", "POST,GE T"}, {}, "", "publish-methods", "not an HTTP method"},
        ErrorCase{"HealthPathRelative",
                  {up, "--upstream-health-path", "health"},
                  {},
                  "",
                  "upstream-health-path",
                  "must start with '/'"},
        ErrorCase{"UnknownFlag", {up, "--bogus", "1"}, {}, "", "bogus", "unknown flag --bogus"},
        ErrorCase{"UnderscoreFlag", {up, "--idle_timeout=5s"}, {}, "", "idle_timeout", "did you mean --idle-timeout"},
        ErrorCase{"UnknownShortFlag", {up, "-x"}, {}, "", "x", "unknown flag -x"},
        // Found by tests/fuzz/fuzz_config: the flag's name is the setting main() prints, on one line.
        ErrorCase{"UnknownFlagWithNewline", {up, "-- \n- b"}, {}, "", "  - b", "unknown flag --  - b"},
        ErrorCase{"Positional", {up, "serve"}, {}, "", "arguments", "unexpected argument \"serve\""},
        ErrorCase{"MissingValueAtEnd", {up, "--listen"}, {}, "", "listen", "needs a value"},
        ErrorCase{"MissingValueBeforeFlag", {"--upstream", "--listen", ":80"}, {}, "", "upstream", "needs a value"},
        ErrorCase{"CheckConfigWithValue", {up, "--check-config=yes"}, {}, "", "check-config", "takes no value"},
        ErrorCase{"MissingFile", {up, "--config", "/nonexistent/crudcast.yaml"}, {}, "", "config", "cannot read"},
        ErrorCase{"DirectoryAsFile", {up, "--config", "/"}, {}, "", "config", "is a directory"},
        ErrorCase{"UnknownKey", {up}, {}, "colour: blue\n", "config", "unknown key \"colour\""},
        ErrorCase{"DashedKey", {up}, {}, "idle-timeout: 5s\n", "config", "did you mean idle_timeout"},
        ErrorCase{"ConfigKeyInFile", {up}, {}, "config: other.yaml\n", "config", "cannot name another config file"},
        ErrorCase{"DuplicateKey", {up}, {}, "threads: 1\nthreads: 2\n", "config", "appears twice"},
        ErrorCase{"BadYaml", {up}, {}, "listen: [unclosed\n", "config", "is not valid YAML: line"},
        ErrorCase{"TopLevelList", {up}, {}, "- a\n- b\n", "config", "mapping of setting: value"},
        ErrorCase{"MapForScalar", {up}, {}, "listen: {host: x}\n", "listen", "not a mapping"},
        ErrorCase{"ListForScalar", {up}, {}, "threads: [1, 2]\n", "threads", "not a list"},
        ErrorCase{"EmptyListItemInFile", {up}, {}, "path_prefixes: [api, \"\"]\n", "path-prefixes", "empty entry"},
        ErrorCase{"NestedListItem", {up}, {}, "path_prefixes: [[a]]\n", "path-prefixes", "plain values"},
        ErrorCase{"FileValueInvalid", {up}, {}, "idle_timeout: -1\n", "idle-timeout", "set by idle_timeout in"}),
    [](const auto& info) { return info.param.name; });

// --- value syntax ----------------------------------------------------------------------------

TEST(ValueSyntax, Durations) {
    const std::pair<std::string, std::chrono::milliseconds> cases[] = {
        {"1500ms", 1500ms}, {"5s", 5s}, {"2m", 2min}, {"1h", 1h}, {"30", 30s}, {"0", 0ms}, {"8760h", 8760h}};
    for (const auto& [text, expected] : cases) EXPECT_EQ(parse_duration(text), expected) << text;
    for (const auto* text : {"", "s", "-1s", "1.5s", "5 s", "5S", "1d", "ms5", "8761h", "9999999999999s"})
        EXPECT_THROW(parse_duration(text), std::invalid_argument) << text;
}

TEST(ValueSyntax, Sizes) {
    const std::pair<std::string, std::uint64_t> cases[] = {{"1024", 1024},     {"64k", 64 * 1024}, {"64K", 64 * 1024},
                                                           {"16m", 16u << 20}, {"1G", 1ull << 30}, {"0", 0}};
    for (const auto& [text, expected] : cases) EXPECT_EQ(parse_size(text), expected) << text;
    for (const auto* text : {"", "k", "-1", "1.5k", "1 k", "1kb", "1t", "17179869184g", "99999999999999999999"})
        EXPECT_THROW(parse_size(text), std::invalid_argument) << text;
}

TEST(ValueSyntax, Formatting) {
    EXPECT_EQ(format_duration(1500ms), "1500ms");
    EXPECT_EQ(format_duration(90s), "90s");
    EXPECT_EQ(format_duration(0ms), "0s");
    EXPECT_EQ(format_duration(3h), "3h");
    EXPECT_EQ(format_size(0), "0");
    EXPECT_EQ(format_size(1536), "1536");
    EXPECT_EQ(format_size(3ull << 30), "3g");
    EXPECT_EQ(quoted("a\"b\\c\nd\x7f"), "\"a\\\"b\\\\c\\nd\\u007f\"");
}

TEST(ValueSyntax, Names) {
    EXPECT_EQ(env_var_name("upstream-keepalive-timeout"), "CRUDCAST_UPSTREAM_KEEPALIVE_TIMEOUT");
    EXPECT_EQ(yaml_key("upstream-keepalive-timeout"), "upstream_keepalive_timeout");
    EXPECT_STREQ(to_string(LogLevel::warn), "warn");
    EXPECT_STREQ(to_string(Source::default_value), "default");
}

// --- secrets -------------------------------------------------------------------------------

TEST(Secrets, UrlPasswordIsMasked) {
    const std::pair<std::string, std::string> cases[] = {
        {"http://user:s3cret@db:3000/base", "http://user:***@db:3000/base"},
        {"http://user:@db", "http://user:***@db"},
        {"http://user:pa/ss@word@db", "http://user:***@db"},  // raw '/' and '@' in the password
        {"ftp://u:p@x", "ftp://u:***@x"},
        {"http://user@db", "http://user@db"},                 // a user name alone is not a secret
        {"nats://s3cret@nats:4222", "nats://***@nats:4222"},  // ... but it is NATS's token
        {"tls://s3/cret@nats:4222", "tls://***@nats:4222"},
        {"nats://user:s3cret@nats:4222", "nats://user:***@nats:4222"},
        {"http://db:3000/base", "http://db:3000/base"},
        {"db:3000", "db:3000"},
        {"", ""}};
    for (const auto& [url, masked] : cases) EXPECT_EQ(mask_url_password(url), masked) << url;
}

// Credentials in --upstream are refused; whichever check fails, the message must not echo the password.
TEST(Secrets, UpstreamErrorsNeverEchoThePassword) {
    for (const std::string url :
         {"http://user:s3cret@db:3000", "https://user:s3cret@db", "ftp://user:s3cret@db", "http://user:s3cret@db/?q=1",
          "http://user:s3cret@db/a b", "http://user:s3cret/x@db", "http://user:s3cret@[::1"}) {
        for (const auto& env : {Env{{"CRUDCAST_UPSTREAM", url}}, Env{}}) {
            const Args args = env.empty() ? Args{"--upstream", url} : Args{};
            try {
                parse(args, env);
                ADD_FAILURE() << "accepted " << url;
            } catch (const ConfigError& e) {
                EXPECT_EQ(e.setting, "upstream");
                EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
                EXPECT_NE(std::string(e.what()).find("user:***@"), std::string::npos) << e.what();
            }
        }
    }
}

// --- help and describe -----------------------------------------------------------------------

TEST(Help, ListsEverySettingWithEnvAndDefault) {
    const auto help = help_text();
    EXPECT_TRUE(help.starts_with("Usage: crudcast"));
    for (const auto& spec : settings()) {
        const auto flag_at =
            help.find("  --" + std::string(spec.name) + (std::string(spec.value_hint).empty() ? "[" : " "));
        ASSERT_NE(flag_at, std::string::npos) << spec.name;
        const auto details = help.substr(flag_at, help.find("\n  --", flag_at + 1) - flag_at);
        EXPECT_NE(details.find("env " + env_var_name(spec.name)), std::string::npos) << details;
        EXPECT_NE(details.find("default " + default_text(spec)), std::string::npos) << details;
        EXPECT_NE(details.find(spec.description), std::string::npos) << details;
    }
    for (const auto* word : {"--help", "--version", "--check-config", "--no-preserve-host",
                             "Proxy:", "Timeouts:", "Limits:", "Logging:", "Events:", "Admin:"})
        EXPECT_NE(help.find(word), std::string::npos) << word;
}

TEST(Describe, OneLinePerSettingWithSource) {
    const auto config = parse({upstream_flag, "--idle-timeout=5s"}, {{"CRUDCAST_LOG_LEVEL", "debug"}}).config;
    const auto text = describe(config);
    EXPECT_NE(text.find("idle-timeout = 5s  (flag)\n"), std::string::npos) << text;
    EXPECT_NE(text.find("log-level = debug  (env)\n"), std::string::npos) << text;
    EXPECT_NE(text.find("upstream = http://127.0.0.1:3000  (flag)\n"), std::string::npos) << text;
    EXPECT_NE(text.find("ws-path = /ws  (default)\n"), std::string::npos) << text;
    EXPECT_EQ(static_cast<std::size_t>(std::ranges::count(text, '\n')), settings().size());
}

TEST(Environment, ReadsOnlyCrudcastVariables) {
    ::setenv("CRUDCAST_TEST_ONLY_VARIABLE", "a=b", 1);
    const auto env = environment();
    ::unsetenv("CRUDCAST_TEST_ONLY_VARIABLE");
    EXPECT_EQ(env.at("CRUDCAST_TEST_ONLY_VARIABLE"), "a=b");
    for (const auto& [name, value] : env) EXPECT_TRUE(name.starts_with("CRUDCAST_")) << name;
}

// --- routes: and models: (file only) ---------------------------------------------------------

TEST_F(ConfigFiles, RoutesAndModelsAreRead) {
    const auto file = write(R"(upstream: http://app
routes:
  - path: /auth/login
    publish: false
  - path: /api/v2/people/{pid}
    model: person
    id: "{pid}"
    payload_pointer: /value
    methods: [post, Put]
  - path: /api/widgets/**
    id: sku
    methods: "PATCH, delete"
    payload_pointer: ""
    publish: yes
models:
  Octopi: octopus
  staff: staff-member
)");
    const auto config = parse({"--config", file}, {}).config;
    ASSERT_EQ(config.routes.size(), 3u);
    EXPECT_EQ(config.routes[0].path, "/auth/login");
    EXPECT_FALSE(config.routes[0].publish);
    EXPECT_FALSE(config.routes[0].model.has_value());
    EXPECT_FALSE(config.routes[0].methods.has_value());
    EXPECT_EQ(config.routes[1].model, "person");
    EXPECT_EQ(config.routes[1].id, "{pid}");
    EXPECT_EQ(config.routes[1].payload_pointer, "/value");
    EXPECT_EQ(config.routes[1].methods, (std::vector<std::string>{"POST", "PUT"}));
    EXPECT_TRUE(config.routes[1].publish);
    EXPECT_EQ(config.routes[2].id, "sku");
    EXPECT_EQ(config.routes[2].payload_pointer, "");
    EXPECT_EQ(config.routes[2].methods, (std::vector<std::string>{"PATCH", "DELETE"}));
    EXPECT_TRUE(config.routes[2].publish);
    EXPECT_EQ(config.models,
              (std::vector<std::pair<std::string, std::string>>{{"octopi", "octopus"}, {"staff", "staff-member"}}));
    EXPECT_EQ(config.sources.at("routes"), Source::file);
    EXPECT_EQ(config.sources.at("models"), Source::file);
    const auto text = describe(config);
    EXPECT_NE(text.find("routes = 3 rules  (file)\n"), std::string::npos) << text;
    EXPECT_NE(text.find("models = 2 overrides  (file)\n"), std::string::npos) << text;
}

TEST_F(ConfigFiles, EmptyRoutesAndModelsAreNone) {
    const auto config = parse({upstream_flag, "--config", write("routes:\nmodels:\n")}, {}).config;
    EXPECT_TRUE(config.routes.empty());
    EXPECT_TRUE(config.models.empty());
    EXPECT_NE(describe(config).find("routes = 0 rules  (file)\n"), std::string::npos);
}

TEST(Describe, NoRouteLinesWithoutAFile) {
    const auto config = parse({upstream_flag}, {}).config;
    EXPECT_FALSE(config.sources.contains("routes"));
    EXPECT_EQ(describe(config).find("routes ="), std::string::npos);
    EXPECT_EQ(describe(config).find("models ="), std::string::npos);
}

std::string routes_yaml(const std::string& rules) { return "routes:\n" + rules; }

INSTANTIATE_TEST_SUITE_P(
    Routes, Errors,
    ::testing::Values(
        ErrorCase{"UnknownRuleKey",
                  {up},
                  {},
                  routes_yaml("  - path: /a\n  - path: /api/v2/people/{id}\n    modle: person\n"),
                  "routes",
                  "rule 2 (/api/v2/people/{id}): unknown key \"modle\""},
        ErrorCase{"RuleErrorNamesTheFile",
                  {up},
                  {},
                  routes_yaml("  - path: /a\n    modle: x\n"),
                  "routes",
                  "; set by routes in /"},
        ErrorCase{"MissingPath", {up}, {}, routes_yaml("  - model: person\n"), "routes", "rule 1: has no path"},
        ErrorCase{"EmptyPath", {up}, {}, routes_yaml("  - path:\n"), "routes", "must start with '/'"},
        ErrorCase{"RelativePath",
                  {up},
                  {},
                  routes_yaml("  - path: api/x\n"),
                  "routes",
                  "rule 1 (api/x): path \"api/x\" must start with '/'"},
        ErrorCase{
            "PathWithQuery", {up}, {}, routes_yaml("  - path: /a?b=1\n"), "routes", "no spaces, query or fragment"},
        ErrorCase{"PathListValue", {up}, {}, routes_yaml("  - path: [/a]\n"), "routes", "path must be a single value"},
        ErrorCase{"RestNotLast", {up}, {}, routes_yaml("  - path: /a/**/b\n"), "routes", "'**' may only be the last"},
        ErrorCase{"BadParameter", {up}, {}, routes_yaml("  - path: /a/{1x}\n"), "routes", "must be a literal, {name}"},
        ErrorCase{
            "PartialParameter", {up}, {}, routes_yaml("  - path: /a/b{x}\n"), "routes", "must be a literal, {name}"},
        ErrorCase{"DuplicateParameter", {up}, {}, routes_yaml("  - path: /a/{x}/{x}\n"), "routes", "appears twice"},
        ErrorCase{"ModelAll",
                  {up},
                  {},
                  routes_yaml("  - path: /a\n    model: all\n"),
                  "routes",
                  "rule 1 (/a): \"all\" is reserved"},
        ErrorCase{"ModelUpperCase",
                  {up},
                  {},
                  routes_yaml("  - path: /a\n    model: Person\n"),
                  "routes",
                  "\"Person\" is not a lower-case model name"},
        ErrorCase{"ModelWithComma",
                  {up},
                  {},
                  routes_yaml("  - path: /a\n    model: a,b\n"),
                  "routes",
                  "not a lower-case model name"},
        ErrorCase{
            "ModelEmpty", {up}, {}, routes_yaml("  - path: /a\n    model:\n"), "routes", "\"\" is not a lower-case"},
        ErrorCase{"IdNotAParameter",
                  {up},
                  {},
                  routes_yaml("  - path: /a/{x}\n    id: \"{y}\"\n"),
                  "routes",
                  "id \"{y}\" is not a {parameter} of the path"},
        ErrorCase{"IdUnclosed",
                  {up},
                  {},
                  routes_yaml("  - path: /a/{x}\n    id: \"{x\"\n"),
                  "routes",
                  "is not a {parameter}"},
        ErrorCase{"IdEmpty", {up}, {}, routes_yaml("  - path: /a\n    id: \"\"\n"), "routes", "id is empty"},
        ErrorCase{"PointerRelative",
                  {up},
                  {},
                  routes_yaml("  - path: /a\n    payload_pointer: value\n"),
                  "routes",
                  "rule 1 (/a): \"value\" is not a JSON Pointer"},
        ErrorCase{"PointerBadEscape",
                  {up},
                  {},
                  routes_yaml("  - path: /a\n    payload_pointer: /a~2\n"),
                  "routes",
                  "~0 and ~1"},
        ErrorCase{"MethodNotToken",
                  {up},
                  {},
                  routes_yaml("  - path: /a\n    methods: [POST, \"GE T\"]\n"),
                  "routes",
                  "\"GE T\" is not an HTTP method name"},
        ErrorCase{
            "MethodsEmptyList", {up}, {}, routes_yaml("  - path: /a\n    methods: []\n"), "routes", "methods is empty"},
        ErrorCase{"MethodsEmptyEntry",
                  {up},
                  {},
                  routes_yaml("  - path: /a\n    methods: \"POST,,PUT\"\n"),
                  "routes",
                  "empty entry"},
        ErrorCase{"MethodsMap",
                  {up},
                  {},
                  routes_yaml("  - path: /a\n    methods: {a: b}\n"),
                  "routes",
                  "methods must be a single value, not a mapping"},
        ErrorCase{"PublishNotBool",
                  {up},
                  {},
                  routes_yaml("  - path: /a\n    publish: maybe\n"),
                  "routes",
                  "\"maybe\" is not a boolean"},
        ErrorCase{"DuplicateRuleKey",
                  {up},
                  {},
                  routes_yaml("  - path: /a\n    model: x\n    model: y\n"),
                  "routes",
                  "key \"model\" appears twice"},
        ErrorCase{"RuleNotAMap", {up}, {}, routes_yaml("  - /a\n"), "routes", "rule 1: must be a mapping with a path"},
        ErrorCase{"RoutesNotAList", {up}, {}, "routes: {path: /a}\n", "routes", "must be a list of rules"},
        ErrorCase{"ThirdRuleIsNamed",
                  {up},
                  {},
                  routes_yaml("  - path: /a\n  - path: /b\n  - path: /c\n    x: 1\n"),
                  "routes",
                  "rule 3 (/c): unknown key \"x\""},
        ErrorCase{"ModelsNotAMap", {up}, {}, "models: [people]\n", "models", "must be a mapping of plural: singular"},
        ErrorCase{"ModelsSingularUpper",
                  {up},
                  {},
                  "models: {people: Person}\n",
                  "models",
                  "\"people\": \"Person\" is not a lower-case model name"},
        ErrorCase{"ModelsSingularAll", {up}, {}, "models: {everything: all}\n", "models", "\"all\" is reserved"},
        ErrorCase{"ModelsSingularList",
                  {up},
                  {},
                  "models: {people: [person]}\n",
                  "models",
                  "the singular must be a single value"},
        ErrorCase{"ModelsDuplicate",
                  {up},
                  {},
                  "models: {People: person, people: human}\n",
                  "models",
                  "\"people\": appears twice"},
        ErrorCase{"ModelsKeyNotWord", {up}, {}, "models: {[a]: b}\n", "models", "a key is not a plural word"}),
    [](const auto& info) { return info.param.name; });

// --- route rules: request paths and compiled templates ------------------------------------------

TEST(RouteRules, RequestPathsAreReadLeniently) {
    // The upstream has answered these targets already: what a strict URL parser refuses is kept as
    // the client sent it, so the path still names its collection.
    const std::pair<std::string, std::vector<std::string>> cases[] = {
        {"/api/v1/a%2Fb//x/?q=1", {"api", "v1", "a/b", "x"}},
        {"//api///authors//42//", {"api", "authors", "42"}},
        {"/./a", {".", "a"}},
        {"/api/authors/%zz", {"api", "authors", "%zz"}},
        {"/api/authors/%4", {"api", "authors", "%4"}},
        {"/api/caf\xC3\xA9s/a b", {"api", "caf\xC3\xA9s", "a b"}},
        {"/api/{x}/a|b", {"api", "{x}", "a|b"}},
        {"/api/authors?filter[name]=x&y=%zz", {"api", "authors"}},
        {"/api/authors#a#b", {"api", "authors"}},
        {"http://example.com:8080/api/authors/42", {"api", "authors", "42"}},
        {"http://[::1]/a", {"a"}},
        {"*", {"*"}},
        {"", {}},
    };
    for (const auto& [target, segments] : cases) EXPECT_EQ(path_segments(target), segments) << target;
}

RouteRule route(std::string path, std::optional<std::string> model = {}, std::optional<std::string> id = {},
                std::optional<std::string> pointer = {}) {
    RouteRule rule;
    rule.path = std::move(path);
    rule.model = std::move(model);
    rule.id = std::move(id);
    rule.payload_pointer = std::move(pointer);
    return rule;
}

TEST(RouteRules, TemplateLiteralsAreDecodedLikeRequestPaths) {
    const auto rule = compile_rule(route("/x/caf%C3%A9/%zz/{id}", {}, "{id}"), 1);
    EXPECT_TRUE(rule.matches(path_segments("/x/caf%c3%a9/%zz/7")));
    EXPECT_TRUE(rule.matches(path_segments("/x/caf\xC3\xA9/%zz/7")));
    EXPECT_FALSE(rule.matches(path_segments("/x/caf/%zz/7")));
    EXPECT_EQ(rule.id_segment, 3u);
}

TEST(RouteRules, TableNamesTheBadRule) {
    try {
        RouteTable table({route("/a"), route("/a/**/b")});
        FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_STREQ(e.what(), "rule 2 (/a/**/b): '**' may only be the last segment of the path");
    }
    // The same checks as the file's, for a Config built in code.
    for (const auto& rule : {route("/a b"), route("/a", "Person"), route("/a", {}, {}, "#/x"), route("/a", {}, "")})
        EXPECT_THROW(RouteTable({rule}), std::invalid_argument) << rule.path;
}

}  // namespace
