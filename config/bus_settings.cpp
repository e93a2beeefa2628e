// bus_settings.cpp: the "bus" group of the settings table: the embedded bus or a broker several
// instances share (NATS JetStream, Redis Streams), and how to reach it. Credential files are named
// here and read at start by the gateway, which reports a bad one against its setting.
#include <algorithm>
#include <string>
#include <vector>

#include "common/text.hpp"
#include "config/config.hpp"
#include "config/layers.hpp"
#include "config/values.hpp"

namespace crudcast::config {
namespace {

using std::string;
using namespace values;  // NOLINT(google-build-using-namespace): the table reads as a table
using C = Config;

string show_string(const string& text) { return text.empty() ? "\"\"" : text; }

bool is_broker_url(const string& url) {
    return url.starts_with("nats://") || url.starts_with("tls://") || url.starts_with("redis://");
}

void apply_bus(C& c, const string& text) {
    if (ascii_lower(text) == "memory") {
        c.bus = "memory";
        return;
    }
    if (!is_broker_url(text))
        fail(quoted(mask_url_password(text)) +
             " is not memory, nats://host:port, tls://host:port or redis://host:port");
    if (has_space_or_control(text)) fail("is not a URL (spaces or control characters)");
    const auto authority_start = text.find("://") + 3;
    const auto authority = text.substr(authority_start, text.find('/', authority_start) - authority_start);
    const auto host_port = authority.substr(authority.rfind('@') == string::npos ? 0 : authority.rfind('@') + 1);
    const auto colon = host_port.rfind(':');
    if (host_port.empty() || colon == string::npos || colon + 1 == host_port.size() ||
        !std::all_of(host_port.begin() + static_cast<std::ptrdiff_t>(colon) + 1, host_port.end(),
                     [](char ch) { return ch >= '0' && ch <= '9'; }))
        fail(quoted(mask_url_password(text)) + " needs host:port (e.g. nats://127.0.0.1:4222)");
    c.bus = text;
}

void apply_prefix(C& c, const string& text) {
    const bool ok = !text.empty() && text.size() <= 64 && std::all_of(text.begin(), text.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
               ch == '-';
    });
    if (!ok) fail(quoted(text) + " must be 1-64 letters, digits, '_' or '-' (it names a stream and its subjects)");
    c.bus_prefix = text;
}

template <string C::*member>
void apply_file(C& c, const string& text) {
    if (std::ranges::any_of(text, [](unsigned char ch) { return ch < 0x20 || ch == 0x7f; }))
        fail("is not a file path (control characters)");
    c.*member = text;
}

template <string C::*member>
SettingSpec file_setting(const char* name, const char* description) {
    return {.name = name,
            .group = "bus",
            .value_hint = "FILE",
            .description = description,
            .apply = apply_file<member>,
            .show = [](const C& c) { return show_string(c.*member); }};
}

}  // namespace

std::vector<SettingSpec> bus_settings() {
    return {
        {.name = "bus",
         .group = "bus",
         .value_hint = "memory|URL",
         .description = "memory (one process), or the broker several instances share: nats://host:port "
                        "(JetStream), tls://host:port (NATS over TLS), redis://host:port (Streams)",
         .apply = apply_bus,
         .show = [](const C& c) { return mask_url_password(c.bus); }},
        {.name = "bus-prefix",
         .group = "bus",
         .value_hint = "NAME",
         .description = "Names this deployment's stream, subjects and keys, so deployments can share a broker",
         .apply = apply_prefix,
         .show = [](const C& c) { return c.bus_prefix; }},
        {.name = "bus-publish-timeout",
         .group = "bus",
         .value_hint = "DURATION",
         .description = "How long a write's response waits for its event to reach this instance's subscribers "
                        "(then it leaves and the event counts as late)",
         .apply =
             [](C& c, const string& t) {
                 const auto d = parse_duration(t);
                 if (d.count() == 0) fail(quoted(t) + " must be greater than zero");
                 c.bus_publish_timeout = d;
             },
         .show = [](const C& c) { return format_duration(c.bus_publish_timeout); }},
        file_setting<&C::bus_password_file>("bus-password-file",
                                            "The broker password: the file's bytes (overrides one in the URL)"),
        file_setting<&C::bus_token_file>("bus-token-file", "NATS token: the file's bytes"),
        file_setting<&C::bus_credentials_file>("bus-credentials-file", "NATS credentials file (user JWT + nkey)"),
        file_setting<&C::bus_tls_ca_file>("bus-tls-ca-file", "CA certificates the NATS server is checked against"),
        file_setting<&C::bus_tls_cert_file>("bus-tls-cert-file", "Client certificate for NATS (with bus-tls-key-file)"),
        file_setting<&C::bus_tls_key_file>("bus-tls-key-file", "Client key for NATS (with bus-tls-cert-file)"),
    };
}

void check_bus(const Config& c) {
    const bool memory = c.bus == "memory";
    const bool redis = c.bus.starts_with("redis://");
    const std::vector<std::pair<const char*, const string*>> broker_only = {
        {"bus-password-file", &c.bus_password_file},       {"bus-token-file", &c.bus_token_file},
        {"bus-credentials-file", &c.bus_credentials_file}, {"bus-tls-ca-file", &c.bus_tls_ca_file},
        {"bus-tls-cert-file", &c.bus_tls_cert_file},       {"bus-tls-key-file", &c.bus_tls_key_file}};
    for (const auto& [name, value] : broker_only) {
        if (value->empty()) continue;
        if (memory) throw ConfigError(name, "needs a broker: set --bus nats://... or redis://...");
        const string setting = name;
        if (redis && setting != "bus-password-file")
            throw ConfigError(name, setting.starts_with("bus-tls")
                                        ? "Redis is reached without TLS (hiredis 0.14 has none): use a NATS bus, or "
                                          "a TLS tunnel on loopback"
                                        : "is for NATS; Redis takes bus-password-file (or redis://user:pass@...)");
    }
    if (c.bus_tls_cert_file.empty() != c.bus_tls_key_file.empty())
        throw ConfigError(c.bus_tls_cert_file.empty() ? "bus-tls-cert-file" : "bus-tls-key-file",
                          "bus-tls-cert-file and bus-tls-key-file go together");
    if (!c.bus_token_file.empty() && !c.bus_credentials_file.empty())
        throw ConfigError("bus-token-file", "takes no bus-credentials-file beside it (one NATS authentication)");
}

}  // namespace crudcast::config
