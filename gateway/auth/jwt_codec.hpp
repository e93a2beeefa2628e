// jwt_codec.hpp: the two text layers of a JWT and a JWKS below the cryptography: strict base64url
// and JSON objects without duplicate member names. Both refuse anything a second reader could read
// differently, because a token two parsers disagree about is an attack surface.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

namespace crudcast::gateway::auth {

// RFC 7515's base64url: the URL alphabet only, no padding, no whitespace, and the unused low bits of
// the last character zero (so one byte string has exactly one text). nullopt when `text` is not that.
std::optional<std::string> base64url_decode(std::string_view text);

// Parses `text` as one JSON object (valid UTF-8, nothing after it) into `document`. Returns "" or
// the problem ("not JSON", "not a JSON object", "a duplicate member name \"x\"").
std::string parse_json_object(std::string_view text, rapidjson::Document& document);

}  // namespace crudcast::gateway::auth
