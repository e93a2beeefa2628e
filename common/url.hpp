// url.hpp: request targets, path segments, query parameters and absolute URLs, through Boost.URL
// (RFC 3986), so crudcast has one reading of a URL instead of a hand-written parser per feature.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crudcast::url {

// The decoded path segments of a request target in origin form (`/a/b%20c?x` -> {"a", "b c"}) or
// absolute form (`http://h/a` -> {"a"}); `*` and `h:443` are bare paths. Empty segments are kept
// (`/a//b` -> {"a", "", "b"}), and so are `.` and `..` (nothing is normalized); `/` alone has none. A
// target that starts with '/' is a path even when it starts with `//`. A `+` in a path is a plus.
// nullopt when Boost.URL refuses the target (e.g. a bad % escape, a raw space): see escape_invalid
// for readers that must not refuse.
std::optional<std::vector<std::string>> path_segments(std::string_view target);

// The decoded values of every `key=value` query parameter named `key` in a request target, in order
// (`+` is a space, as in HTML forms). nullopt when the target is not a valid URI reference.
std::optional<std::vector<std::string>> query_values(std::string_view target, std::string_view key);

// `target` with the value of every query parameter named `key` (as written: matched byte for byte)
// replaced by "REDACTED", for logs: `/ws?topic=a&access_token=eyJ..` -> `/ws?topic=a&access_token=REDACTED`.
// Works on the raw text, so it also redacts in a target Boost.URL would refuse.
std::string redact_query_value(std::string_view target, std::string_view key);

// `text` percent-decoded; nullopt when an escape is malformed (`%4`, `%zz`).
std::optional<std::string> percent_decode(std::string_view text);

// `text` percent-encoded for use as one query parameter value (RFC 3986 unreserved bytes stay).
std::string encode_query_value(std::string_view text);

// `target` made a valid URI reference without changing what it decodes to: a '%' that starts no
// valid escape becomes %25, and every byte RFC 3986 allows nowhere (controls, space, `"<>\^`{|}`,
// bytes >= 0x80), `[` and `]` outside an absolute URL's host, and a second '#' are percent-encoded.
// For readers that must take whatever an HTTP server accepted (Beast takes any visible byte) and see
// exactly the bytes the client sent: `path_segments(escape_invalid("/a/%zz"))` is {"a", "%zz"}.
std::string escape_invalid(std::string_view target);

// An absolute URL or an authority as Boost.URL splits it; nothing is decoded.
struct UrlParts {
    std::string scheme;         // as written ("HTTP" stays upper case); "" for a bare authority
    bool has_userinfo = false;  // "user@host" or "user:password@host"
    std::string host;           // "app", "10.0.0.1", or an IPv6 address without its brackets
    bool ipv6 = false;
    std::optional<std::string> port;  // as written (digits), "" after a bare ':'; nullopt when absent
    std::string authority;            // as written: "[::1]:8080"
    std::string path;                 // "" or "/a/b%20c", still encoded
    std::string target;               // path and query, what a request line carries ("" when neither)
    bool has_query = false;
    bool has_fragment = false;
};

// "scheme://authority[/path][?query][#fragment]". nullopt when Boost.URL refuses it, when it has no
// authority ("mailto:x"), or when its host is an IPvFuture literal ([v1.x]), which nothing can reach.
std::optional<UrlParts> parse_url(std::string_view text);

// "[userinfo@]host[:port]" alone, so that a caller parse_url refused can tell which part is wrong.
std::optional<UrlParts> parse_authority(std::string_view text);

}  // namespace crudcast::url
