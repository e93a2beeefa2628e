// security_settings.cpp: the "security" group of the settings table: who may subscribe (ws-auth,
// the JWT keys and claims, forward auth, the handshake rate) and what is never published. Key files
// are named here and read at start by gateway/auth, which reports a bad one against its setting.
#include <algorithm>
#include <array>
#include <string>
#include <string_view>
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
using C = Config;

constexpr std::array<std::string_view, 13> jwt_algorithms = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                                             "RS512", "PS256", "PS384", "PS512", "ES256",
                                                             "ES384", "ES512", "EdDSA"};

string show_string(const string& text) { return text.empty() ? "\"\"" : text; }

void apply_ws_auth(C& c, const string& text) {
    const auto mode = ascii_lower(text);
    if (mode == "none") c.ws_auth = WsAuth::none;
    else if (mode == "jwt") c.ws_auth = WsAuth::jwt;
    else if (mode == "forward") c.ws_auth = WsAuth::forward;
    else fail(quoted(text) + " is not one of none, jwt, forward");
}

void apply_jwt_algorithm(C& c, const string& text) {
    if (text.empty()) {
        c.jwt_algorithm.clear();
        return;
    }
    for (const auto alg : jwt_algorithms) {
        if (alg == text || (alg == "EdDSA" && ascii_lower(text) == "eddsa")) {
            c.jwt_algorithm = string(alg);
            return;
        }
    }
    fail(quoted(text) +
         " is not a supported algorithm (HS256/384/512, RS256/384/512, PS256/384/512, "
         "ES256/384/512, EdDSA)");
}

template <string C::*member>
void apply_file(C& c, const string& text) {
    // Paths with spaces are fine; control characters are not.
    if (std::ranges::any_of(text, [](unsigned char ch) { return ch < 0x20 || ch == 0x7f; }))
        fail("is not a file path (control characters)");
    c.*member = text;
}

// "/auth/ws" on the upstream, or "http://auth.internal:9000/check".
void apply_ws_auth_url(C& c, const string& text) {
    if (text.empty()) {
        c.ws_auth_url.clear();
        return;
    }
    if (text.starts_with('/')) {
        if (has_space_or_control(text) || text.find('#') != string::npos)
            fail(quoted(text) + " must be a path without spaces or fragment");
    } else {
        const auto url = url::parse_url(text);
        if (!url || url->scheme != "http" || url->host.empty() || url->has_userinfo || url->has_fragment)
            fail(quoted(text) +
                 " must be a path on the upstream (/auth/ws) or an http:// URL "
                 "(https is not supported for the auth endpoint)");
    }
    c.ws_auth_url = text;
}

template <std::vector<string> C::*member>
void apply_names(C& c, const string& text) {
    std::vector<string> names;
    if (!text.empty() && ascii_lower(text) != "none") {
        for (const auto& item : split_list(text)) {
            if (has_space_or_control(item) || item.find('/') != string::npos)
                fail(quoted(item) + " is not a name (no spaces or '/')");
            const auto name = ascii_lower(item);
            if (std::ranges::find(names, name) == names.end()) names.push_back(name);
        }
    }
    c.*member = names;
}

// Member names are matched exactly (JSON is case-sensitive), so they are kept as given.
void apply_redact_fields(C& c, const string& text) {
    std::vector<string> names;
    if (!text.empty() && ascii_lower(text) != "none") {
        for (const auto& item : split_list(text))
            if (std::ranges::find(names, item) == names.end()) names.push_back(item);
    }
    c.redact_fields = names;
}

string show_list(const std::vector<string>& items) { return items.empty() ? string("none") : join(items); }

std::vector<SettingSpec> auth_settings() {
    return {
        {.name = "ws-auth",
         .group = "security",
         .value_hint = "MODE",
         .description = "Who may subscribe: none (anyone), jwt (a signed token), forward (the API decides)",
         .apply = apply_ws_auth,
         .show = [](const C& c) { return string(to_string(c.ws_auth)); }},
        {.name = "jwt-secret-file",
         .group = "security",
         .value_hint = "FILE",
         .description = "HMAC key for ws-auth jwt: the file's bytes (one trailing newline stripped)",
         .apply = apply_file<&C::jwt_secret_file>,
         .show = [](const C& c) { return show_string(c.jwt_secret_file); }},
        {.name = "jwt-public-key-file",
         .group = "security",
         .value_hint = "FILE",
         .description = "PEM public key (RSA, EC or Ed25519) that signs subscriber tokens",
         .apply = apply_file<&C::jwt_public_key_file>,
         .show = [](const C& c) { return show_string(c.jwt_public_key_file); }},
        {.name = "jwt-jwks-file",
         .group = "security",
         .value_hint = "FILE",
         .description = "JWKS of the keys that sign subscriber tokens (by kid; reread when it changes)",
         .apply = apply_file<&C::jwt_jwks_file>,
         .show = [](const C& c) { return show_string(c.jwt_jwks_file); }},
        {.name = "jwt-algorithm",
         .group = "security",
         .value_hint = "ALG",
         .description = "The one algorithm tokens must use; default: HS256, RS256, ES256 or EdDSA by key",
         .default_text = "by key",
         .apply = apply_jwt_algorithm,
         .show = [](const C& c) { return c.jwt_algorithm.empty() ? string("by key") : c.jwt_algorithm; }},
        {.name = "jwt-leeway",
         .group = "security",
         .value_hint = "DURATION",
         .description = "Clock skew allowed when checking a token's exp and nbf",
         .apply = [](C& c, const string& t) { c.jwt_leeway = parse_duration(t); },
         .show = [](const C& c) { return format_duration(c.jwt_leeway); }},
        {.name = "jwt-issuer",
         .group = "security",
         .value_hint = "TEXT",
         .description = "Required iss claim; \"\" = not checked",
         .apply = [](C& c, const string& t) { c.jwt_issuer = t; },
         .show = [](const C& c) { return show_string(c.jwt_issuer); }},
        {.name = "jwt-audience",
         .group = "security",
         .value_hint = "TEXT",
         .description = "Required aud claim (one of the token's audiences); \"\" = not checked",
         .apply = [](C& c, const string& t) { c.jwt_audience = t; },
         .show = [](const C& c) { return show_string(c.jwt_audience); }},
        {.name = "jwt-topics-claim",
         .group = "security",
         .value_hint = "NAME",
         .description = "Claim listing the topics a token may subscribe to (\"*\" = all)",
         .apply =
             [](C& c, const string& t) {
                 if (t.empty()) fail("is empty");
                 c.jwt_topics_claim = t;
             },
         .show = [](const C& c) { return c.jwt_topics_claim; }},
        {.name = "jwt-require-topics",
         .group = "security",
         .value_hint = "",
         .description = "Refuse a token without the topics claim (otherwise it may subscribe to all)",
         .apply = [](C& c, const string& t) { c.jwt_require_topics = parse_bool(t); },
         .show = [](const C& c) { return string(c.jwt_require_topics ? "true" : "false"); }},
    };
}

std::vector<SettingSpec> forward_and_publish_settings() {
    return {
        {.name = "ws-auth-url",
         .group = "security",
         .value_hint = "URL",
         .description = "ws-auth forward: a path on the upstream (/auth/ws) or http://host:port/path to ask",
         .apply = apply_ws_auth_url,
         .show = [](const C& c) { return show_string(c.ws_auth_url); }},
        {.name = "ws-auth-timeout",
         .group = "security",
         .value_hint = "DURATION",
         .description = "Longest wait for the auth endpoint's answer (503 after it)",
         .apply =
             [](C& c, const string& t) {
                 c.ws_auth_timeout = parse_duration(t);
                 if (c.ws_auth_timeout.count() == 0) fail(quoted(t) + " must be greater than zero");
             },
         .show = [](const C& c) { return format_duration(c.ws_auth_timeout); }},
        {.name = "ws-auth-cache-ttl",
         .group = "security",
         .value_hint = "DURATION",
         .description = "How long an auth answer is reused for the same credentials and topics; 0 = off",
         .apply = [](C& c, const string& t) { c.ws_auth_cache_ttl = parse_duration(t); },
         .show = [](const C& c) { return format_duration(c.ws_auth_cache_ttl); }},
        {.name = "ws-handshake-rate",
         .group = "security",
         .value_hint = "N",
         .description = "WebSocket handshakes a second one client address may sustain (429 over it); 0 = off",
         .apply = [](C& c,
                     const string& t) { c.ws_handshake_rate = static_cast<std::uint32_t>(parse_count(t, 1'000'000)); },
         .show = [](const C& c) { return std::to_string(c.ws_handshake_rate); }},
        {.name = "ws-handshake-burst",
         .group = "security",
         .value_hint = "N",
         .description = "Handshakes one client address may make at once before ws-handshake-rate applies",
         .apply =
             [](C& c, const string& t) {
                 c.ws_handshake_burst = static_cast<std::uint32_t>(parse_count(t, 1'000'000));
                 if (c.ws_handshake_burst == 0) fail(quoted(t) + " must be at least 1");
             },
         .show = [](const C& c) { return std::to_string(c.ws_handshake_burst); }},
        {.name = "never-publish",
         .group = "security",
         .value_hint = "LIST",
         .description = "Path segments (any case) whose requests make no event unless a route rule names the path",
         .apply = apply_names<&C::never_publish>,
         .show = [](const C& c) { return show_list(c.never_publish); },
         .is_list = true},
        {.name = "redact-fields",
         .group = "security",
         .value_hint = "LIST",
         .description = "JSON members removed from every event payload at any depth (the response is unchanged)",
         .apply = apply_redact_fields,
         .show = [](const C& c) { return show_list(c.redact_fields); },
         .is_list = true},
        {.name = "admin-token-file",
         .group = "security",
         .value_hint = "FILE",
         .description = "Bearer token the admin listener asks for (all but /healthz, /readyz); \"\" = none",
         .apply = apply_file<&C::admin_token_file>,
         .show = [](const C& c) { return show_string(c.admin_token_file); }},
    };
}

}  // namespace

std::vector<SettingSpec> security_settings() {
    auto table = auth_settings();
    const auto more = forward_and_publish_settings();
    table.insert(table.end(), more.begin(), more.end());
    return table;
}

// The settings that only make sense together, checked once every layer is read.
void check_security(const Config& c) {
    const int keys = !c.jwt_secret_file.empty() + !c.jwt_public_key_file.empty() + !c.jwt_jwks_file.empty();
    if (c.ws_auth == WsAuth::jwt && keys != 1)
        throw ConfigError("ws-auth", keys == 0 ? "jwt needs one of jwt-secret-file, jwt-public-key-file, jwt-jwks-file"
                                               : "jwt takes only one of jwt-secret-file, jwt-public-key-file, "
                                                 "jwt-jwks-file");
    if (c.ws_auth == WsAuth::jwt && !c.jwt_algorithm.empty()) {
        // A JWKS may hold HMAC (oct) keys as well as public ones; the verifier checks they fit.
        const bool hmac = c.jwt_algorithm.starts_with("HS");
        if (hmac && !c.jwt_public_key_file.empty())
            throw ConfigError("jwt-algorithm", c.jwt_algorithm + " needs jwt-secret-file or jwt-jwks-file");
        if (!hmac && !c.jwt_secret_file.empty())
            throw ConfigError("jwt-algorithm", c.jwt_algorithm + " needs jwt-public-key-file or jwt-jwks-file");
    }
    if (c.ws_auth == WsAuth::forward && c.ws_auth_url.empty())
        throw ConfigError("ws-auth-url", "is required with ws-auth forward (e.g. /auth/ws on the upstream)");
}

}  // namespace crudcast::config
