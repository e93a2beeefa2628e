// config.hpp: crudcast's one immutable Config, and how it is built from flags, env vars
// (CRUDCAST_<NAME>), an optional YAML file (--config FILE) and defaults. No sockets, no threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cidr.hpp"
#include "common/log.hpp"

namespace crudcast::config {

using LogLevel = log::LogLevel;
using LogFormat = log::LogFormat;
// Where the effective value of a setting came from, for --check-config.
enum class Source { default_value, file, env, flag };
enum class WsAuth { none, jwt, forward };

struct Endpoint {
    std::string host;  // "0.0.0.0", "127.0.0.1", "::", a name
    std::uint16_t port = 0;
};

struct UpstreamUrl {
    std::string text;  // as given, e.g. "http://127.0.0.1:3000/base"
    std::string host;  // "127.0.0.1"
    std::uint16_t port = 80;
    std::string base_path;    // "" or "/base" (never a trailing slash)
    std::string host_header;  // "127.0.0.1:3000" (port omitted when 80)
};

// One route rule from the YAML file's `routes:` list; the first rule whose path matches wins.
struct RouteRule {
    std::string path;                  // template: segments literal, `{name}` (a parameter) or `*` (any one segment)
    std::optional<std::string> model;  // the event's model (topic); never "all"
    std::optional<std::string> id;     // "{name}": that path parameter; otherwise a payload field
    std::optional<std::string> payload_pointer;       // RFC 6901, overrides --payload-pointer
    std::optional<std::vector<std::string>> methods;  // overrides --publish-methods
    bool publish = true;                              // false: never an event for this path
};

struct Config {
    Endpoint listen{"0.0.0.0", 8080};
    UpstreamUrl upstream;  // required
    std::string ws_path = "/ws";
    unsigned threads = 0;  // 0 on input means "number of cores"; always >= 1 after parse

    std::chrono::milliseconds connect_timeout{5'000};
    std::chrono::milliseconds upstream_timeout{60'000};
    std::chrono::milliseconds client_header_timeout{10'000};
    std::chrono::milliseconds client_body_timeout{10'000};  // longest stall between reads of a request body
    std::chrono::milliseconds idle_timeout{60'000};
    std::chrono::milliseconds drain_timeout{10'000};
    std::chrono::milliseconds upstream_keepalive_timeout{30'000};

    std::size_t max_header_bytes = 16 * 1024;
    std::uint64_t max_body_bytes = 1024ull * 1024 * 1024;  // 0 = unlimited
    std::size_t client_body_buffer_bytes = 64 * 1024;      // bodies up to this are read whole first; 0 = off
    std::size_t max_connections = 10'000;
    std::size_t upstream_max_idle = 64;  // idle upstream connections kept per thread

    LogLevel log_level = LogLevel::info;
    LogFormat log_format = LogFormat::text;
    bool preserve_host = true;
    // Peers whose X-Forwarded-For / -Proto / -Host (and Forwarded) crudcast passes on; from any other
    // peer they are replaced with crudcast's own. Empty (the default): no peer is trusted.
    std::vector<net::Cidr> trusted_proxies;

    // Events (issue: events over WebSocket).
    std::vector<std::string> path_prefixes{"api"};
    std::string id_field = "id";
    std::string payload_pointer;  // "" = whole body
    std::vector<std::string> publish_methods{"POST", "PUT", "PATCH", "DELETE"};
    std::size_t max_event_bytes = 1024 * 1024;
    std::chrono::milliseconds ws_ping_interval{20'000};
    std::size_t ws_max_queue_messages = 4096;
    std::size_t ws_max_queue_bytes = 16 * 1024 * 1024;
    // A subscriber whose socket has taken none of a pending write for this long is dropped.
    std::chrono::milliseconds ws_write_timeout{30'000};
    // After crudcast sends a close frame (1013, 1001, a protocol error...): how long the client has
    // to take the frames before it and answer, before the connection ends regardless.
    std::chrono::milliseconds ws_close_timeout{5'000};
    std::size_t ws_max_topics = 64;            // distinct topics one subscriber may name
    std::size_t ws_max_subscribers = 100'000;  // WebSocket subscribers at once (not max_connections)
    // The events kept for subscribers that resume with ?since= (issue 12): whichever bound is reached
    // first drops the oldest. 0 events: no history (a resume then always reports a gap).
    std::size_t history_size = 10'000;
    std::size_t history_bytes = 32 * 1024 * 1024;
    // The bus: "memory" (one process), or a broker shared by several instances:
    // nats://[user[:password]@]host:port, tls://host:port (NATS over TLS), redis://[[user]:password@]host:port[/db].
    std::string bus = "memory";
    std::string bus_prefix = "crudcast";                 // names the deployment's stream, subjects and keys
    std::chrono::milliseconds bus_publish_timeout{250};  // a write's response waits this long for its event
    std::string bus_password_file;                       // the broker password (overrides the URL's)
    std::string bus_token_file;                          // NATS token
    std::string bus_credentials_file;                    // NATS .creds (user JWT + nkey seed)
    std::string bus_tls_ca_file;                         // NATS only
    std::string bus_tls_cert_file;
    std::string bus_tls_key_file;
    // Browser origins ("https://app.example.com", lower case, no trailing slash) allowed to open the
    // events WebSocket; empty: any. Clients that send no Origin (not browsers) are always allowed.
    std::vector<std::string> ws_allowed_origins;
    std::vector<RouteRule> routes;                            // YAML `routes:`
    std::vector<std::pair<std::string, std::string>> models;  // YAML `models:` plural -> singular

    // Admin listener (issue: observability). Empty host = off.
    std::optional<Endpoint> admin_listen = Endpoint{"127.0.0.1", 9901};
    std::string upstream_health_path;  // "" = TCP connect only
    // Host names (lower case, no port) the admin listener answers besides IP literals and localhost;
    // other Host values get 421, so a page on a DNS-rebinding name cannot read /api or /metrics.
    std::vector<std::string> admin_allowed_hosts;

    // Who may subscribe (issue 11: subscriber authentication). See gateway/auth/.
    WsAuth ws_auth = WsAuth::none;
    std::string jwt_secret_file;                   // HMAC key: the file's bytes, one trailing newline stripped
    std::string jwt_public_key_file;               // PEM public key (RSA, EC or Ed25519)
    std::string jwt_jwks_file;                     // a JWKS; keys picked by `kid`, reloaded when the file changes
    std::string jwt_algorithm;                     // "" = from the key: HS256, RS256, ES256 (P-256), EdDSA
    std::chrono::milliseconds jwt_leeway{30'000};  // allowed clock skew for exp and nbf
    std::string jwt_issuer;                        // "" = not checked
    std::string jwt_audience;                      // "" = not checked
    std::string jwt_topics_claim = "topics";
    bool jwt_require_topics = false;  // a token without the topics claim is refused
    std::string ws_auth_url;          // forward: "/path" on the upstream, or http://host:port/path
    std::chrono::milliseconds ws_auth_timeout{3'000};
    std::chrono::milliseconds ws_auth_cache_ttl{0};  // 0 = every handshake asks
    // Handshakes per client address: a token bucket refilled at `rate` a second holding `burst`.
    std::uint32_t ws_handshake_rate = 100;  // 0 = no limit
    std::uint32_t ws_handshake_burst = 1000;

    // What is never published (issue 11: safe publishing defaults).
    std::vector<std::string> never_publish{"login",  "logout", "signin", "signout",  "signup",    "token",
                                           "tokens", "oauth",  "auth",   "password", "passwords", "credentials"};
    std::vector<std::string> redact_fields{"password",      "password_hash", "token",  "access_token",
                                           "refresh_token", "secret",        "api_key"};
    std::string admin_token_file;  // "" = the admin listener asks for no token

    std::string config_file;  // "" when none

    // Setting name (flag name without "--") -> where its value came from.
    std::map<std::string, Source> sources;
};

// One bad setting: `setting` is its flag name without dashes ("upstream"), `problem` says what is wrong.
struct ConfigError : std::runtime_error {
    ConfigError(std::string setting, std::string problem);
    std::string setting;
    std::string problem;
};

enum class Action { run, help, version, check_config };

struct ParseResult {
    Action action = Action::run;
    Config config;
};

// Builds the Config. `env` holds the process environment (only CRUDCAST_* keys matter).
// Throws ConfigError for any invalid setting, unknown flag, unknown file key or unreadable file.
ParseResult parse(const std::vector<std::string>& args, const std::map<std::string, std::string>& env);

// Reads the real environment into the map parse() takes.
std::map<std::string, std::string> environment();

// The text of `crudcast --help`: every setting with its env var and default.
std::string help_text();

// The effective configuration, one setting per line with its source, secrets masked.
std::string describe(const Config& config);

// "1500ms", "5s", "2m", "1h", or a bare number of seconds.
std::chrono::milliseconds parse_duration(const std::string& text);  // throws std::invalid_argument
// "1024", "64k", "16m", "1g" (binary units).
std::uint64_t parse_size(const std::string& text);  // throws std::invalid_argument

const char* to_string(LogLevel level);
const char* to_string(LogFormat format);
const char* to_string(Source source);
const char* to_string(WsAuth mode);

// One row of the settings table (settings.cpp). parse(), help_text() and describe() are all driven
// by it, and tests iterate it, so a new setting cannot be forgotten in --help or --check-config.
struct SettingSpec {
    const char* name;                    // flag name without "--", also the key of Config::sources
    const char* group;                   // help section: proxy, timeouts, limits, logging, events, admin
    const char* value_hint;              // "DURATION", "HOST:PORT", ...; "" for a boolean flag
    const char* description;             // one line for --help
    const char* default_text = nullptr;  // for --help; nullptr = show(Config{})
    // Parses and validates `text` into `config`; throws std::invalid_argument whose what() is
    // the problem (one line, without the setting's name).
    void (*apply)(Config& config, const std::string& text);
    std::string (*show)(const Config& config);  // effective value, for describe()
    bool is_list = false;                       // the YAML file may also give a sequence
};

const std::vector<SettingSpec>& settings();
const SettingSpec* find_setting(const std::string& name);  // nullptr when unknown
std::string env_var_name(const std::string& name);         // "upstream-timeout" -> "CRUDCAST_UPSTREAM_TIMEOUT"
std::string yaml_key(const std::string& name);             // "upstream-timeout" -> "upstream_timeout"
std::string default_text(const SettingSpec& spec);         // what --help shows as the default

// "http://user:secret@host" -> "http://user:***@host"; anything without a password is returned as is,
// but for nats:// and tls:// (a NATS bus) a user name alone is a token: "nats://***@host".
// crudcast refuses credentials in --upstream, and its error message must not echo them.
std::string mask_url_password(const std::string& url);

// `value` in double quotes with quotes, backslashes and control characters escaped, so that a
// ConfigError quoting user input stays on one line (a JSON string: common/json_text.hpp).
std::string quoted(const std::string& value);

// Human forms used by describe() and --help: 1500ms, 5s, 2m, 1h; 16k, 1g, 1000.
std::string format_duration(std::chrono::milliseconds duration);
std::string format_size(std::uint64_t bytes);

}  // namespace crudcast::config
