// jwt_keys.hpp: the keys that may sign a subscriber's token, what kind each is, which JWS algorithm
// fits which kind, and the one signature check per algorithm (OpenSSL 3; crudcast does no
// cryptography of its own). The PEM and secret files are read here; the JWKS in jwks.hpp.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <openssl/types.h>

namespace crudcast::gateway::auth {

enum class KeyKind { hmac, rsa, ec_p256, ec_p384, ec_p521, ed25519, ed448 };

// One JWS algorithm (RFC 7518, and RFC 8037 for EdDSA).
struct Algorithm {
    enum class Scheme { hmac, rsa_pkcs1, rsa_pss, ecdsa, eddsa };
    std::string_view name;  // "HS256"
    Scheme scheme;
    const char* digest;  // OpenSSL's name ("SHA256"); nullptr for EdDSA, which hashes by itself
    std::size_t size;    // HMAC: the shortest secret allowed; ECDSA: the length of R||S; else 0
};

// The algorithm called `name`, or nullptr when crudcast does not know it ("none" included).
const Algorithm* find_algorithm(std::string_view name);

struct JwtKey {
    std::string kid;  // "" when the key has none (PEM and secret files; a JWKS key without kid)
    KeyKind kind = KeyKind::hmac;
    std::shared_ptr<EVP_PKEY> pkey;  // every kind but hmac
    std::string secret;              // hmac
};

// "RSA", "EC P-256", "Ed25519", "HMAC secret": for messages.
std::string_view describe(KeyKind kind);
// The algorithm a key of this kind signs with when jwt-algorithm is not set.
std::string_view default_algorithm(KeyKind kind);
// "" when `key` can verify `algorithm`, else why not ("RS256 does not fit the EC P-256 key").
std::string misfit(const Algorithm& algorithm, const JwtKey& key);

// A public key as a JwtKey, or "" and the reason crudcast cannot use it (its type, its curve, an
// RSA modulus under 2048 bits).
std::string adopt_public_key(std::shared_ptr<EVP_PKEY> pkey, JwtKey& key);

// True when `signature` (raw bytes: JWS's R||S for ECDSA) signs `signing_input` with `key`.
// Thread-safe: the keys are only read.
bool verify_signature(const Algorithm& algorithm, const JwtKey& key, std::string_view signing_input,
                      std::string_view signature);

// A key file's bytes; throws config::ConfigError(setting, "cannot read PATH: reason") or when the
// file is over 1 MiB (no key file is that big; a mistyped path to a log file could be).
std::string read_key_file(const std::string& setting, const std::string& path);
// jwt-secret-file: the bytes, one trailing "\n" or "\r\n" stripped.
JwtKey read_secret_key(const std::string& path);
// jwt-public-key-file: a PEM public key (SubjectPublicKeyInfo). Throws ConfigError naming the file's
// problem: unreadable, a private key, not PEM, a kind of key crudcast cannot use.
JwtKey read_public_key(const std::string& path);

}  // namespace crudcast::gateway::auth
