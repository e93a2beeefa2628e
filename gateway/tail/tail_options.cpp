// tail_options.cpp: `crudcast tail`'s arguments and token file (see tail_options.hpp).
#include "gateway/tail/tail_options.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <boost/beast/core/string.hpp>

#include "common/url.hpp"
#include "gateway/tail/tail_resume.hpp"

namespace crudcast::gateway::tail {
namespace {

// A token larger than this is not a token: crudcast reads handshake heads of 8 KiB.
constexpr std::size_t max_token_bytes = 8192;

// The headers the WebSocket handshake itself writes: a second copy from --header would make the
// request ambiguous or break the upgrade.
// Last-Event-ID is tail's own position (--since; it would win over since= on every reconnect).
constexpr std::array<std::string_view, 10> handshake_headers = {
    "Host",           "Connection",        "Upgrade", "Sec-WebSocket-Key",        "Sec-WebSocket-Version",
    "Content-Length", "Transfer-Encoding", "Expect",  "Sec-WebSocket-Extensions", "Last-Event-ID"};

// RFC 9110 token characters, what a header name is made of.
bool is_tchar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view trim_whitespace(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Splits "--name VALUE" and "--name=VALUE"; false when `args[i]` is neither.
bool option_value(const std::vector<std::string>& args, std::size_t& i, std::string_view name, std::string& value,
                  std::string& problem) {
    const std::string& a = args[i];
    if (a == name) {
        if (i + 1 == args.size()) problem = std::string(name) + " needs a value";
        else value = args[++i];
        return true;
    }
    if (a.size() > name.size() && a.starts_with(name) && a[name.size()] == '=') {
        value = a.substr(name.size() + 1);
        return true;
    }
    return false;
}

std::string add_topics(const std::string& value, std::vector<std::string>& topics) {
    for (std::size_t start = 0; start <= value.size();) {
        const auto comma = std::min(value.find(',', start), value.size());
        std::string topic = value.substr(start, comma - start);
        if (topic.empty()) return "--topic needs model names, got \"" + value + "\"";
        topics.push_back(std::move(topic));
        start = comma + 1;
    }
    return {};
}

// `address` for an error line: without its query when that holds an access_token.
std::string shown(const std::string& address) {
    return address.find("access_token") == std::string::npos ? address : address.substr(0, address.find('?')) + "?...";
}

// The URL part of parse_args: host, port, target (with the topic query) and the URL for messages.
std::string apply_address(std::string address, const std::vector<std::string>& topics, Options& o) {
    if (address.empty()) address = "ws://127.0.0.1:8080/ws";
    if (!address.starts_with("ws://")) return "URL must start with ws:// (wss is not supported): " + shown(address);
    const auto parts = url::parse_url(address);
    if (!parts) return "bad URL " + shown(address) + " (expected ws://HOST[:PORT][/PATH])";
    if (parts->has_userinfo) return "bad host in URL " + shown(address) + " (user credentials are not supported)";
    if (parts->has_fragment) return "bad URL " + shown(address) + " (a #fragment has no meaning here)";
    const std::string port = parts->port.value_or("80");
    if (parts->host.empty() || port.empty() || port.size() > 5 || std::stoul(port) == 0 || std::stoul(port) > 65535)
        return "bad host or port in URL " + shown(address);
    o.host = parts->host;
    o.port = port;
    o.target = parts->target;
    if (o.target.empty() || o.target.front() == '?') o.target.insert(0, "/");
    // tail adds since= itself on every reconnect (after the last event printed): a second one in
    // the URL would make each reconnect ambiguous (crudcast answers 400).
    if (const auto since = url::query_values(o.target, "since"); since && !since->empty())
        return "put the position in --since SEQ, not in the URL (tail adds since= itself when it resumes)";
    if (!topics.empty()) {
        // Escaped to unreserved characters, so a model name can never change the meaning of the URL.
        std::string query = "topic=";
        for (std::size_t i = 0; i < topics.size(); ++i) query += (i ? "," : "") + url::encode_query_value(topics[i]);
        o.target += (o.target.find('?') == std::string::npos ? "?" : "&") + query;
    }
    o.url = "ws://" + parts->authority + redact_access_token(o.target);
    return {};
}

}  // namespace

std::string header_problem(std::string_view text, std::string& name, std::string& value) {
    // The argument is never quoted back: it may be "Authorization: Bearer <token>".
    const auto colon = text.find(':');
    const std::string_view raw_name = text.substr(0, colon);
    if (colon == std::string_view::npos || raw_name.empty() || !std::all_of(raw_name.begin(), raw_name.end(), is_tchar))
        return "--header needs \"NAME: VALUE\", NAME made of letters, digits and !#$%&'*+-.^_`|~";
    const std::string_view raw_value = trim_whitespace(text.substr(colon + 1));
    // CR or LF would end the header and start another (header injection); other controls are
    // refused by HTTP servers anyway. A tab inside the value is allowed, as HTTP allows it.
    const bool control = std::any_of(raw_value.begin(), raw_value.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && c != '\t') || u == 0x7f;
    });
    if (control) return "--header " + std::string(raw_name) + ": the value holds a line break or control character";
    // Also catches an unquoted `--header Authorization: Bearer ...`, whose words went elsewhere.
    if (raw_value.empty()) return "--header " + std::string(raw_name) + ": the value is empty (quote \"NAME: VALUE\")";
    for (const auto reserved : handshake_headers)
        if (boost::beast::iequals(raw_name, reserved))
            return "--header " + std::string(raw_name) + ": set by the WebSocket handshake itself";
    name = raw_name;
    value = raw_value;
    return {};
}

std::string read_token_file(const std::string& path, std::string& token) {
    const std::string what = "--token-file " + path;
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!file) return what + ": cannot read it (" + std::strerror(errno) + ")";
    std::string bytes;
    char chunk[4096];
    for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, file.get())) > 0;) {
        bytes.append(chunk, n);
        if (bytes.size() > max_token_bytes + 2) return what + ": larger than 8 KiB, not a token";
    }
    // A directory opens but does not read (EISDIR).
    if (std::ferror(file.get())) return what + ": cannot read it (" + std::strerror(errno) + ")";
    if (bytes.ends_with('\n')) bytes.pop_back();
    if (bytes.ends_with('\r')) bytes.pop_back();
    if (bytes.empty()) return what + ": the file is empty";
    if (bytes.size() > max_token_bytes) return what + ": larger than 8 KiB, not a token";
    const bool bad = std::any_of(bytes.begin(), bytes.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f;
    });
    if (bad) return what + ": the token holds whitespace or a control character (only one trailing newline is removed)";
    token = std::move(bytes);
    return {};
}

std::string redact_access_token(std::string_view target) { return url::redact_query_value(target, "access_token"); }

std::string parse_args(const std::vector<std::string>& args, Options& o) {
    std::string address, problem, value;
    std::vector<std::string> topics;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--json") {
            o.json = true;
        } else if (option_value(args, i, "--topic", value, problem)) {
            if (problem.empty()) problem = add_topics(value, topics);
        } else if (option_value(args, i, "--since", value, problem)) {
            // The value is not quoted back: a line break in it would make the one-line answer two.
            if (problem.empty() && !(o.since = parse_seq(value)))
                problem = "--since needs a seq: a non-negative integer such as 1795813926587001";
        } else if (option_value(args, i, "--token-file", value, problem)) {
            if (problem.empty() && value.empty()) problem = "--token-file needs a file name";
            o.token_file = value;
        } else if (option_value(args, i, "--header", value, problem)) {
            std::string name, header_value;
            if (problem.empty()) problem = header_problem(value, name, header_value);
            o.headers.emplace_back(std::move(name), std::move(header_value));
        } else if (a.starts_with("-")) {
            // Cut at '=': a mistyped --header=... or --token=... may carry a credential.
            problem = "unknown option " + a.substr(0, a.find('=')) + " (see crudcast tail --help)";
        } else if (address.empty()) {
            address = a;
        } else {
            // Not quoted back: a stray word may be a token from an unquoted --header value.
            problem = "unexpected second argument after the URL " + shown(address) +
                      " (one URL only; quote a --header value that has spaces)";
        }
        if (!problem.empty()) return problem;
    }
    if (!o.token_file.empty()) {
        for (const auto& [name, header_value] : o.headers)
            if (boost::beast::iequals(name, "Authorization"))
                return "--header Authorization and --token-file both set Authorization: give one";
        // Read once here so a wrong path fails at once with status 2, not as a retry loop.
        std::string token;
        if (auto token_problem = read_token_file(o.token_file, token); !token_problem.empty()) return token_problem;
    }
    return apply_address(std::move(address), topics, o);
}

}  // namespace crudcast::gateway::tail
