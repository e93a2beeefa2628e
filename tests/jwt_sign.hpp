// jwt_sign.hpp: the signing side of JWT, for tests only: make keys, export them as PEM and JWK, and
// sign a header and payload the way an identity provider would. OpenSSL 3, like the verifier, but
// written from the RFCs (7515, 7517, 7518, 8037) on the other side of the check.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/types.h>

namespace crudcast::testkit {

using KeyPair = std::shared_ptr<EVP_PKEY>;

// A fresh key pair: "RSA" (2048 bits), "RSA-1024", "P-256", "P-384", "P-521", "Ed25519", "Ed448".
KeyPair generate_key(std::string_view kind);

std::string base64url(std::string_view bytes);

// header.payload.signature, each part base64url. The algorithm is the header's `alg` (HS*, RS*, PS*,
// ES*, EdDSA); with key_or_null null the token is signed with HMAC over `hmac_secret` (SHA-256 unless
// the alg names HS384 or HS512); an alg of "none" gets an empty signature. The JSON texts are used
// byte for byte, so a test can sign a header or payload that is not JSON at all.
std::string sign_jwt(std::string_view header_json, std::string_view payload_json, EVP_PKEY* key_or_null,
                     std::string_view hmac_secret);

// sign_jwt for a PS* header with another PSS salt length than RFC 7518's (the hash's length), to show
// that the verifier holds to it.
std::string sign_jwt_pss_salt(std::string_view header_json, std::string_view payload_json, EVP_PKEY* key,
                              int salt_length);

std::string public_pem(EVP_PKEY* key);   // -----BEGIN PUBLIC KEY-----
std::string private_pem(EVP_PKEY* key);  // -----BEGIN PRIVATE KEY----- (PKCS#8, unencrypted)

// One JWK object for the public half of `key`; `kid` and `alg` are left out when empty.
std::string public_jwk(EVP_PKEY* key, std::string_view kid, std::string_view alg = "");
// An oct JWK (an HMAC secret).
std::string oct_jwk(std::string_view secret, std::string_view kid, std::string_view alg = "");
// {"keys":[...]} of the given JWK objects.
std::string jwks(const std::vector<std::string>& jwk_objects);

}  // namespace crudcast::testkit
