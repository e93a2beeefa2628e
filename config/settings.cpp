// settings.cpp: the table of crudcast's settings — names, help text, and how each value is parsed,
// validated and shown. config.cpp layers flags, env and file on top of this table.
#include <algorithm>
#include <cctype>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/text.hpp"
#include "common/url.hpp"
#include "config/config.hpp"
#include "config/layers.hpp"
#include "config/values.hpp"

namespace crudcast::config {
namespace {

using std::string;

using namespace values;  // NOLINT(google-build-using-namespace): the table reads as a table

// URL paths the proxy matches on: "" is allowed only where it means "none".
void check_path(const string& text, bool allow_empty) {
    if (text.empty() && allow_empty) return;
    if (!text.starts_with('/')) fail(quoted(text) + " must start with '/'");
    if (has_space_or_control(text) || text.find_first_of("?#") != string::npos)
        fail(quoted(text) + " must be a plain path (no spaces, query or fragment)");
}

string show_string(const string& text) { return text.empty() ? "\"\"" : text; }

template <auto member>
void apply_timeout(Config& config, const string& text) {
    const auto duration = parse_duration(text);
    if (duration.count() == 0) fail(quoted(text) + " must be greater than zero");
    config.*member = duration;
}

template <auto member>
string show_duration(const Config& config) {
    return format_duration(config.*member);
}

template <auto member, std::uint64_t min_value>
void apply_size(Config& config, const string& text) {
    using Target = std::remove_reference_t<decltype(config.*member)>;
    const auto size = parse_size(text);
    if (size < min_value) fail(quoted(text) + " must be at least " + std::to_string(min_value));
    if (size > std::numeric_limits<Target>::max()) fail(quoted(text) + " is too large");
    config.*member = static_cast<Target>(size);
}

template <auto member>
string show_size(const Config& config) {
    return format_size(config.*member);
}

template <auto member>
string show_count(const Config& config) {
    return std::to_string(config.*member);
}

// Methods are compared with request methods byte for byte, so they must be HTTP tokens.
void apply_publish_methods(Config& config, const string& text) {
    constexpr std::string_view token_punctuation = "!#$%&'*+-.^_`|~";
    std::vector<string> methods;
    for (const auto& item : split_list(text)) {
        const bool is_token = std::ranges::all_of(item, [&](unsigned char c) {
            return std::isalnum(c) || token_punctuation.find(static_cast<char>(c)) != std::string_view::npos;
        });
        if (!is_token) fail(quoted(item) + " is not an HTTP method name");
        if (std::ranges::find(methods, ascii_upper(item)) == methods.end()) methods.push_back(ascii_upper(item));
    }
    config.publish_methods = methods;
}

// "https://app.example.com, http://localhost:5173": scheme, host and optional port, nothing else.
// "10.0.0.0/8, fd00::/8, 127.0.0.1"; "" or "none": no trusted proxy.
void apply_trusted_proxies(Config& config, const string& text) {
    std::vector<net::Cidr> ranges;
    if (!text.empty() && ascii_lower(text) != "none") {
        for (const auto& item : split_list(text)) ranges.push_back(net::parse_cidr(item));
    }
    config.trusted_proxies = std::move(ranges);
}

string show_trusted_proxies(const Config& config) {
    std::vector<string> items;
    for (const auto& range : config.trusted_proxies) items.push_back(range.text);
    return items.empty() ? string("none") : join(items);
}

void apply_ws_allowed_origins(Config& config, const string& text) {
    std::vector<string> origins;
    for (auto item : text.empty() ? std::vector<string>{} : split_list(text)) {
        item = ascii_lower(item);
        if (item.ends_with('/')) item.pop_back();
        const auto url = url::parse_url(item);
        if (!url || (url->scheme != "http" && url->scheme != "https") || url->has_userinfo || url->host.empty() ||
            (url->port && url->port->empty()) || !url->target.empty() || url->has_fragment) {
            fail(quoted(item) + " is not an origin (expected scheme://host[:port], e.g. https://app.example.com)");
        }
        if (std::ranges::find(origins, item) == origins.end()) origins.push_back(item);
    }
    config.ws_allowed_origins = origins;
}

// "crudcast-admin.internal, Admin.Example": names only (no port, scheme or path), kept lower case.
void apply_admin_allowed_hosts(Config& config, const string& text) {
    std::vector<string> names;
    for (const auto& item : text.empty() ? std::vector<string>{} : split_list(text)) {
        const string name = ascii_lower(item);
        const auto parts = url::parse_authority(name);
        if (!parts || parts->has_userinfo || parts->port || parts->ipv6 || parts->host != name || !is_host_name(name))
            fail(quoted(item) + " is not a host name (expected a name without port, e.g. crudcast-admin.internal)");
        if (std::ranges::find(names, name) == names.end()) names.push_back(name);
    }
    config.admin_allowed_hosts = names;
}

// "/api" and "api/" both mean the first path segment "api"; "/" alone means every path.
void apply_path_prefixes(Config& config, const string& text) {
    std::vector<string> prefixes;
    for (auto item : split_list(text)) {
        if (has_space_or_control(item) || item.find_first_of("?#") != string::npos)
            fail(quoted(item) + " must be a plain path (no spaces, query or fragment)");
        while (item.starts_with('/')) item.erase(0, 1);
        while (item.ends_with('/')) item.pop_back();
        if (std::ranges::find(prefixes, item) == prefixes.end()) prefixes.push_back(item);
    }
    config.path_prefixes = prefixes;
}

// A JSON Pointer (RFC 6901): "" or "/a/b", where '~' only starts the escapes ~0 and ~1.
void apply_payload_pointer(Config& config, const string& text) {
    if (!text.empty() && !text.starts_with('/'))
        fail(quoted(text) + " is not a JSON Pointer (expected \"\" or a path like /data)");
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '~' && (i + 1 == text.size() || (text[i + 1] != '0' && text[i + 1] != '1')))
            fail(quoted(text) + " has a '~' not followed by 0 or 1 (JSON Pointer escapes are ~0 and ~1)");
    }
    config.payload_pointer = text;
}

void apply_log_level(Config& config, const string& text) {
    const string word = ascii_lower(text);
    for (auto level : {LogLevel::error, LogLevel::warn, LogLevel::info, LogLevel::debug, LogLevel::trace}) {
        if (word == to_string(level)) {
            config.log_level = level;
            return;
        }
    }
    fail(quoted(text) + " is not a log level (expected error, warn, info, debug or trace)");
}

void apply_log_format(Config& config, const string& text) {
    const string word = ascii_lower(text);
    if (word == "text") config.log_format = LogFormat::text;
    else if (word == "json") config.log_format = LogFormat::json;
    else fail(quoted(text) + " is not a log format (expected text or json)");
}

void apply_admin_listen(Config& config, const string& text) {
    if (ascii_lower(text) == "off") config.admin_listen.reset();
    else config.admin_listen = parse_endpoint(text);
}

using C = Config;

// The listener, the upstream and the proxy path.
std::vector<SettingSpec> proxy_settings() {
    return {
        {.name = "config",
         .group = "proxy",
         .value_hint = "FILE",
         .description = "YAML file of settings; keys are setting names with '_' for '-'",
         .apply = [](C& c, const string& t) { c.config_file = t; },
         .show = [](const C& c) { return c.config_file.empty() ? string("none") : c.config_file; }},
        {.name = "listen",
         .group = "proxy",
         .value_hint = "HOST:PORT",
         .description = "Address for client connections; [::1]:8080 for IPv6, port 0 picks a free port",
         .apply = [](C& c, const string& t) { c.listen = parse_endpoint(t); },
         .show = [](const C& c) { return show_endpoint(c.listen); }},
        {.name = "upstream",
         .group = "proxy",
         .value_hint = "URL",
         .description = "The application behind crudcast: http://host[:port][/base]",
         .default_text = "none, required",
         .apply = [](C& c, const string& t) { c.upstream = parse_upstream(t); },
         // The normalized form, so --check-config shows what the proxy will really use.
         .show =
             [](const C& c) {
                 return c.upstream.host.empty() ? string("none")
                                                : "http://" + c.upstream.host_header + c.upstream.base_path;
             }},
        {.name = "ws-path",
         .group = "proxy",
         .value_hint = "PATH",
         .description = "Path where clients open the events WebSocket",
         .apply =
             [](C& c, const string& t) {
                 check_path(t, false);
                 c.ws_path = t;
             },
         .show = [](const C& c) { return c.ws_path; }},
        {.name = "threads",
         .group = "proxy",
         .value_hint = "N",
         .description = "Worker threads; 0 = one per CPU core",
         .default_text = "0 (one per core)",
         .apply = [](C& c, const string& t) { c.threads = static_cast<unsigned>(parse_count(t, 1024)); },
         .show = [](const C& c) { return std::to_string(c.threads); }},
        {.name = "preserve-host",
         .group = "proxy",
         .value_hint = "",
         .description = "Forward the client's Host header rather than the upstream's host:port",
         .apply = [](C& c, const string& t) { c.preserve_host = parse_bool(t); },
         .show = [](const C& c) { return string(c.preserve_host ? "true" : "false"); }},
        {.name = "trusted-proxies",
         .group = "proxy",
         .value_hint = "LIST",
         .description = "Peers (IPs, CIDRs, comma-separated) whose X-Forwarded-* headers are kept; none: no peer",
         .apply = apply_trusted_proxies,
         .show = show_trusted_proxies,
         .is_list = true},
    };
}

std::vector<SettingSpec> timeout_settings() {
    return {
        {.name = "connect-timeout",
         .group = "timeouts",
         .value_hint = "DURATION",
         .description = "Limit on opening a TCP connection to the upstream",
         .apply = apply_timeout<&C::connect_timeout>,
         .show = show_duration<&C::connect_timeout>},
        {.name = "upstream-timeout",
         .group = "timeouts",
         .value_hint = "DURATION",
         .description = "Limit on the upstream's answer to one request",
         .apply = apply_timeout<&C::upstream_timeout>,
         .show = show_duration<&C::upstream_timeout>},
        {.name = "client-header-timeout",
         .group = "timeouts",
         .value_hint = "DURATION",
         .description = "Limit on a client sending a complete request header",
         .apply = apply_timeout<&C::client_header_timeout>,
         .show = show_duration<&C::client_header_timeout>},
        {.name = "client-body-timeout",
         .group = "timeouts",
         .value_hint = "DURATION",
         .description = "Limit on a stall between reads of a request body (then 408)",
         .apply = apply_timeout<&C::client_body_timeout>,
         .show = show_duration<&C::client_body_timeout>},
        {.name = "idle-timeout",
         .group = "timeouts",
         .value_hint = "DURATION",
         .description = "Close client connections idle for this long",
         .apply = apply_timeout<&C::idle_timeout>,
         .show = show_duration<&C::idle_timeout>},
        {.name = "drain-timeout",
         .group = "timeouts",
         .value_hint = "DURATION",
         .description = "On shutdown, how long in-flight requests may still run",
         .apply = apply_timeout<&C::drain_timeout>,
         .show = show_duration<&C::drain_timeout>},
        {.name = "upstream-keepalive-timeout",
         .group = "timeouts",
         .value_hint = "DURATION",
         .description = "Close pooled upstream connections idle for this long",
         .apply = apply_timeout<&C::upstream_keepalive_timeout>,
         .show = show_duration<&C::upstream_keepalive_timeout>},
    };
}

std::vector<SettingSpec> limit_settings() {
    return {
        {.name = "max-header-bytes",
         .group = "limits",
         .value_hint = "SIZE",
         .description = "Largest request header accepted from a client",
         .apply = apply_size<&C::max_header_bytes, 1>,
         .show = show_size<&C::max_header_bytes>},
        {.name = "max-body-bytes",
         .group = "limits",
         .value_hint = "SIZE",
         .description = "Largest request body accepted from a client; 0 = unlimited",
         .apply = apply_size<&C::max_body_bytes, 0>,
         .show = show_size<&C::max_body_bytes>},
        {.name = "client-body-buffer-bytes",
         .group = "limits",
         .value_hint = "SIZE",
         .description = "Request bodies up to this size are read whole before an upstream connection is taken; 0 = off",
         .apply = apply_size<&C::client_body_buffer_bytes, 0>,
         .show = show_size<&C::client_body_buffer_bytes>},
        {.name = "max-connections",
         .group = "limits",
         .value_hint = "N",
         .description = "Most HTTP client connections open at once (503 over it); not WebSocket subscribers",
         .apply = apply_size<&C::max_connections, 1>,
         .show = show_count<&C::max_connections>},
        {.name = "ws-max-subscribers",
         .group = "limits",
         .value_hint = "N",
         .description = "Most WebSocket subscribers at once (503 over it); apart from max-connections",
         .apply = apply_size<&C::ws_max_subscribers, 1>,
         .show = show_count<&C::ws_max_subscribers>},
        {.name = "upstream-max-idle",
         .group = "limits",
         .value_hint = "N",
         .description = "Idle upstream connections kept per worker thread; 0 = no reuse",
         .apply = apply_size<&C::upstream_max_idle, 0>,
         .show = show_count<&C::upstream_max_idle>},
    };
}

std::vector<SettingSpec> logging_settings() {
    return {
        {.name = "log-level",
         .group = "logging",
         .value_hint = "LEVEL",
         .description = "error, warn, info, debug or trace",
         .apply = apply_log_level,
         .show = [](const C& c) { return string(to_string(c.log_level)); }},
        {.name = "log-format",
         .group = "logging",
         .value_hint = "FORMAT",
         .description = "text or json (one object per line)",
         .apply = apply_log_format,
         .show = [](const C& c) { return string(to_string(c.log_format)); }},
    };
}

// What becomes an event.
std::vector<SettingSpec> event_settings() {
    return {
        {.name = "path-prefixes",
         .group = "events",
         .value_hint = "LIST",
         .description = "Leading path segments skipped when inferring the model (comma-separated)",
         .apply = apply_path_prefixes,
         .show = [](const C& c) { return show_string(join(c.path_prefixes)); },
         .is_list = true},
        {.name = "id-field",
         .group = "events",
         .value_hint = "NAME",
         .description = "JSON field that holds a resource's id",
         .apply =
             [](C& c, const string& t) {
                 if (t.empty()) fail("is empty");
                 c.id_field = t;
             },
         .show = [](const C& c) { return c.id_field; }},
        {.name = "payload-pointer",
         .group = "events",
         .value_hint = "POINTER",
         .description = "JSON Pointer to the part of the response body sent as the payload; \"\" = all",
         .apply = apply_payload_pointer,
         .show = [](const C& c) { return show_string(c.payload_pointer); }},
        {.name = "publish-methods",
         .group = "events",
         .value_hint = "LIST",
         .description = "Comma-separated methods whose successful responses are published",
         .apply = apply_publish_methods,
         .show = [](const C& c) { return join(c.publish_methods); },
         .is_list = true},
        {.name = "max-event-bytes",
         .group = "events",
         .value_hint = "SIZE",
         .description = "Largest event payload that is published",
         .apply = apply_size<&C::max_event_bytes, 1>,
         .show = show_size<&C::max_event_bytes>},
    };
}

// The WebSocket that carries the events: pings, a subscriber's backlog and timeouts, topics, origins.
std::vector<SettingSpec> websocket_settings() {
    return {
        {.name = "ws-ping-interval",
         .group = "events",
         .value_hint = "DURATION",
         .description = "How often WebSocket clients are pinged",
         .apply = apply_timeout<&C::ws_ping_interval>,
         .show = show_duration<&C::ws_ping_interval>},
        {.name = "ws-max-queue-messages",
         .group = "events",
         .value_hint = "N",
         .description = "Most events queued for one WebSocket client",
         .apply = apply_size<&C::ws_max_queue_messages, 1>,
         .show = show_count<&C::ws_max_queue_messages>},
        {.name = "ws-max-queue-bytes",
         .group = "events",
         .value_hint = "SIZE",
         .description = "Most bytes queued for one WebSocket client",
         .apply = apply_size<&C::ws_max_queue_bytes, 1>,
         .show = show_size<&C::ws_max_queue_bytes>},
        {.name = "ws-write-timeout",
         .group = "events",
         .value_hint = "DURATION",
         .description = "Drop a WebSocket client whose socket takes nothing of a pending write for this long",
         .apply = apply_timeout<&C::ws_write_timeout>,
         .show = show_duration<&C::ws_write_timeout>},
        {.name = "ws-close-timeout",
         .group = "events",
         .value_hint = "DURATION",
         .description = "How long a WebSocket client has to take crudcast's close frame and answer it",
         .apply = apply_timeout<&C::ws_close_timeout>,
         .show = show_duration<&C::ws_close_timeout>},
        {.name = "ws-max-topics",
         .group = "events",
         .value_hint = "N",
         .description = "Most distinct topics one WebSocket client may subscribe to (400 over it)",
         .apply = apply_size<&C::ws_max_topics, 1>,
         .show = show_count<&C::ws_max_topics>},
        {.name = "ws-allowed-origins",
         .group = "events",
         .value_hint = "LIST",
         .description = "Browser origins allowed to subscribe (scheme://host[:port], comma-separated); empty: any",
         .apply = apply_ws_allowed_origins,
         .show = [](const C& c) { return show_string(join(c.ws_allowed_origins)); },
         .is_list = true},
    };
}

std::vector<SettingSpec> admin_settings() {
    return {
        {.name = "admin-listen",
         .group = "admin",
         .value_hint = "HOST:PORT|off",
         .description = "Address of the admin listener (health, metrics, live page); off disables it",
         .apply = apply_admin_listen,
         .show = [](const C& c) { return c.admin_listen ? show_endpoint(*c.admin_listen) : string("off"); }},
        {.name = "upstream-health-path",
         .group = "admin",
         .value_hint = "PATH",
         .description = "Upstream path probed by health checks; \"\" = TCP connect only",
         .apply =
             [](C& c, const string& t) {
                 check_path(t, true);
                 c.upstream_health_path = t;
             },
         .show = [](const C& c) { return show_string(c.upstream_health_path); }},
        {.name = "admin-allowed-hosts",
         .group = "admin",
         .value_hint = "LIST",
         .description = "Host names the admin listener answers besides IP addresses and localhost "
                        "(comma-separated); others get 421",
         .apply = apply_admin_allowed_hosts,
         .show = [](const C& c) { return show_string(join(c.admin_allowed_hosts)); },
         .is_list = true},
    };
}

// Resuming subscribers (?since=, Last-Event-ID): the events kept for them.
std::vector<SettingSpec> history_settings() {
    using C = Config;
    return {
        {.name = "history-size",
         .group = "events",
         .value_hint = "N",
         .description = "Events kept for subscribers that resume with ?since= or Last-Event-ID; 0 = none",
         .apply = apply_size<&C::history_size, 0>,
         .show = show_count<&C::history_size>},
        {.name = "history-bytes",
         .group = "events",
         .value_hint = "SIZE",
         .description = "Most bytes of events kept for resuming subscribers (the oldest go first)",
         .apply = apply_size<&C::history_bytes, 0>,
         .show = show_size<&C::history_bytes>},
    };
}

// One table, in the order --check-config lists it; --help shows it group by group.
std::vector<SettingSpec> make_settings() {
    std::vector<SettingSpec> table;
    for (const auto& group :
         {proxy_settings(), timeout_settings(), limit_settings(), logging_settings(), event_settings(),
          websocket_settings(), history_settings(), bus_settings(), security_settings(), admin_settings()})
        table.insert(table.end(), group.begin(), group.end());
    return table;
}

}  // namespace

std::string mask_url_password(const std::string& url) {
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos) return url;
    const auto userinfo_start = scheme_end + 3;
    // The last '@' ends the userinfo even when the password holds a raw '/', '?', '#' or '@';
    // an '@' in a path is masked too, which errs on the side of hiding.
    const auto at = url.rfind('@');
    if (at == std::string::npos || at < userinfo_start) return url;
    const auto colon = url.find(':', userinfo_start);
    if (colon == std::string::npos || colon > at) {
        // NATS reads a user name alone (nats://secret@host) as a token: that is the secret.
        const auto scheme = url.substr(0, scheme_end);
        if (scheme == "nats" || scheme == "tls") return url.substr(0, userinfo_start) + "***" + url.substr(at);
        return url;
    }
    return url.substr(0, colon + 1) + "***" + url.substr(at);
}

const std::vector<SettingSpec>& settings() {
    static const std::vector<SettingSpec> table = make_settings();
    return table;
}

const SettingSpec* find_setting(const std::string& name) {
    for (const auto& spec : settings())
        if (name == spec.name) return &spec;
    return nullptr;
}

std::string default_text(const SettingSpec& spec) {
    return spec.default_text != nullptr ? spec.default_text : spec.show(Config{});
}

}  // namespace crudcast::config
