// url.hpp: request targets, path segments and query parameters, through Boost.URL (RFC 3986), so
// crudcast has one reading of a URL instead of a hand-written parser per feature.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crudcast::url {

// The decoded path segments of a request target in origin form (`/a/b%20c?x` -> {"a", "b c"}) or
// absolute form (`http://h/a` -> {"a"}). Empty segments are kept (`/a//b` -> {"a", "", "b"}); a `+`
// in a path is a plus. nullopt when the target is not a valid URI reference (e.g. a bad % escape).
std::optional<std::vector<std::string>> path_segments(std::string_view target);

// The decoded values of every `key=value` query parameter named `key` in a request target, in order
// (`+` is a space, as in HTML forms). nullopt when the target is not a valid URI reference.
std::optional<std::vector<std::string>> query_values(std::string_view target, std::string_view key);

// `text` percent-decoded; nullopt when an escape is malformed (`%4`, `%zz`).
std::optional<std::string> percent_decode(std::string_view text);

// `text` percent-encoded for use as one query parameter value (RFC 3986 unreserved bytes stay).
std::string encode_query_value(std::string_view text);

}  // namespace crudcast::url
