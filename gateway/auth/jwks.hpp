// jwks.hpp: a JWKS file (RFC 7517) turned into the keys that may sign tokens with one algorithm.
// RSA (n, e), EC (crv, x, y), OKP (Ed25519 and Ed448 x) and oct (k, for HMAC) keys are understood;
// a key meant for another algorithm (`alg`) or another use (`use` other than "sig") is left out.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gateway/auth/jwt_keys.hpp"

namespace crudcast::gateway::auth {

// Reads the JWKS `text` into `keys`: those that can verify `algorithm`. When `algorithm` is "" the
// keys choose it (each key's `alg`, else the default for its kind; they must agree) and it is set.
// Returns "" or the problem with the whole file: not a JSON object, no `keys` array, keys that want
// different algorithms, no usable key (with the first reason a key was left out). Never key bytes.
std::string read_jwks(std::string_view text, std::string& algorithm, std::vector<JwtKey>& keys);

}  // namespace crudcast::gateway::auth
