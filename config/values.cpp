// values.cpp: how the settings table reads and shows its values: counts, booleans, lists,
// listen addresses and the upstream URL (through Boost.URL), each refusal one message naming the part to fix.
#include "config/values.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "common/text.hpp"
#include "common/url.hpp"

namespace crudcast::config::values {

using std::string;

[[noreturn]] void fail(const string& problem) { throw std::invalid_argument(problem); }

namespace {

bool is_digits(std::string_view text) {
    return !text.empty() && std::ranges::all_of(text, [](unsigned char c) { return std::isdigit(c); });
}

}  // namespace

bool has_space_or_control(std::string_view text) {
    return std::ranges::any_of(text, [](unsigned char c) { return c <= ' ' || c == 0x7f; });
}

// Plain non-negative integer, no unit ("4", not "4k").
std::uint64_t parse_count(const string& text, std::uint64_t max) {
    if (!text.empty() && text[0] == '-') fail(quoted(text) + " is negative");
    if (!is_digits(text)) fail(quoted(text) + " is not a whole number");
    if (text.size() > 19 || std::stoull(text) > max)
        fail(quoted(text) + " is too large (at most " + std::to_string(max) + ")");
    return std::stoull(text);
}

namespace {

// `shown` is the whole value as the message may quote it (already quoted and masked). With
// `hide_port_text`, the bad port is not quoted: it may be the start of a password.
std::uint16_t parse_port(const string& shown, const string& port_text, bool allow_zero, bool hide_port_text = false) {
    if (!is_digits(port_text) || port_text.size() > 5 || std::stoul(port_text) > 65535 ||
        (!allow_zero && std::stoul(port_text) == 0))
        fail(shown + " has an invalid port" + (hide_port_text ? "" : " " + quoted(port_text)) + " (expected " +
             (allow_zero ? "0" : "1") + "..65535)");
    return static_cast<std::uint16_t>(std::stoul(port_text));
}

bool is_ipv6_literal(std::string_view host) {
    return host.find(':') != std::string_view::npos &&
           std::ranges::all_of(host, [](unsigned char c) { return std::isxdigit(c) || c == ':' || c == '.'; });
}

string show_host(const string& host) { return host.find(':') != string::npos ? "[" + host + "]" : host; }

}  // namespace

bool is_host_name(std::string_view host) {
    return !host.empty() && std::ranges::all_of(host, [](unsigned char c) {
        return std::isalnum(c) || c == '.' || c == '-' || c == '_';
    });
}

// "host:port", "[v6]:port" or ":port" (all interfaces).
Endpoint parse_endpoint(const string& text) {
    const string expected = " (expected HOST:PORT, e.g. 0.0.0.0:8080 or [::1]:8080)";
    Endpoint endpoint;
    string port_text;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == string::npos) fail(quoted(text) + " has no closing ']'" + expected);
        endpoint.host = text.substr(1, close - 1);
        if (!is_ipv6_literal(endpoint.host)) fail(quoted(text) + " has an invalid IPv6 address" + expected);
        if (close + 1 >= text.size() || text[close + 1] != ':') fail(quoted(text) + " has no port" + expected);
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == string::npos) fail(quoted(text) + " has no port" + expected);
        endpoint.host = text.substr(0, colon);
        if (endpoint.host.find(':') != string::npos)
            fail(quoted(text) + ": an IPv6 address needs brackets, e.g. [::1]:8080");
        if (endpoint.host.empty()) endpoint.host = "0.0.0.0";
        if (!is_host_name(endpoint.host)) fail(quoted(text) + " has an invalid host" + expected);
        port_text = text.substr(colon + 1);
    }
    endpoint.port = parse_port(quoted(text), port_text, true);
    return endpoint;
}

string show_endpoint(const Endpoint& endpoint) {
    return show_host(endpoint.host) + ":" + std::to_string(endpoint.port);
}

namespace {

// Why Boost.URL refused `rest` (the URL after "http://"), in the words of the part to fix.
[[noreturn]] void refuse_upstream(const string& rest, const string& shown, bool hide_port_text) {
    const string expected = " (expected http://host[:port][/base])";
    const string authority = rest.substr(0, rest.find('/'));
    if (authority.find('@') != string::npos) fail(shown + " must not contain user credentials" + expected);
    if (url::parse_authority(authority))
        fail(shown + " has an invalid path (percent-encode other characters, and '%' as %25)" + expected);
    string port_text;
    if (authority.starts_with('[')) {
        const auto close = authority.find(']');
        if (close == string::npos) fail(shown + " has no closing ']'" + expected);
        if (!url::parse_authority(authority.substr(0, close + 1)))
            fail(shown + " has an invalid IPv6 address" + expected);
        if (authority[close + 1] != ':') fail(shown + " has junk after ']'" + expected);
        port_text = authority.substr(close + 2);
    } else {
        const auto colon = authority.find(':');
        const string host = authority.substr(0, colon);
        if (colon == string::npos || !url::parse_authority(host) || !is_host_name(host))
            fail(shown + " has no valid host" + expected);
        port_text = authority.substr(colon + 1);
    }
    parse_port(shown, port_text, false, hide_port_text);
    fail(shown + " is not a valid URL" + expected);  // not reached: a valid host and port parse
}

}  // namespace

// Boost.URL reads the URL (common/url.hpp); the checks around it choose the message.
UpstreamUrl parse_upstream(const string& text) {
    const string expected = " (expected http://host[:port][/base])";
    if (text.empty()) fail("is empty" + expected);
    // Every message below quotes the URL; a password in it must not reach stderr or a journal.
    const string shown = quoted(mask_url_password(text));
    const bool masked = shown != quoted(text);
    const auto scheme_end = text.find("://");
    const string scheme = scheme_end == string::npos ? "" : ascii_lower(text.substr(0, scheme_end));
    if (scheme == "https") fail(shown + ": TLS to the upstream is not supported yet; use an http:// URL");
    if (scheme != "http") fail(shown + " is not an http:// URL" + expected);
    if (text.find_first_of("?#") != string::npos) fail(shown + " must not have a query or fragment" + expected);
    if (has_space_or_control(text)) fail(shown + " contains spaces or control characters");

    const auto parts = url::parse_url(text);
    if (!parts) refuse_upstream(text.substr(scheme_end + 3), shown, masked);
    if (parts->has_userinfo) fail(shown + " must not contain user credentials" + expected);
    // A registered name is kept to the characters a resolver takes (Boost.URL would also take
    // %-escapes and sub-delims there).
    if (!parts->ipv6 && !is_host_name(parts->host)) fail(shown + " has no valid host" + expected);
    UpstreamUrl url;
    url.text = text;
    url.host = parts->host;
    if (parts->port) url.port = parse_port(shown, *parts->port, false, masked);
    url.base_path = parts->path;
    // "/base/" and "/base" must mean the same prefix, and "/" means none.
    while (url.base_path.ends_with('/')) url.base_path.pop_back();
    url.host_header = show_host(url.host);
    if (url.port != 80) url.host_header += ":" + std::to_string(url.port);
    return url;
}

bool parse_bool(const string& text) {
    const string word = ascii_lower(text);
    if (word == "true" || word == "on" || word == "1" || word == "yes") return true;
    if (word == "false" || word == "off" || word == "0" || word == "no") return false;
    fail(quoted(text) + " is not a boolean (expected true/false, on/off, 1/0 or yes/no)");
}

std::vector<string> split_list(const string& text) {
    std::vector<string> items;
    std::size_t start = 0;
    while (true) {
        const auto comma = std::min(text.find(',', start), text.size());
        string item = text.substr(start, comma - start);
        const auto first = item.find_first_not_of(" \t");
        item = first == string::npos ? "" : item.substr(first, item.find_last_not_of(" \t") - first + 1);
        if (item.empty()) fail(quoted(text) + " has an empty entry (expected a comma-separated list)");
        items.push_back(item);
        if (comma == text.size()) return items;
        start = comma + 1;
    }
}

string join(const std::vector<string>& items) { return crudcast::join(items); }
}  // namespace crudcast::config::values
