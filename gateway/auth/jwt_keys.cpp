// jwt_keys.cpp: see jwt_keys.hpp.
#include "gateway/auth/jwt_keys.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "config/config.hpp"

namespace crudcast::gateway::auth {
namespace {

using Scheme = Algorithm::Scheme;

constexpr std::array<Algorithm, 13> algorithms = {{
    {"HS256", Scheme::hmac, "SHA256", 32},
    {"HS384", Scheme::hmac, "SHA384", 48},
    {"HS512", Scheme::hmac, "SHA512", 64},
    {"RS256", Scheme::rsa_pkcs1, "SHA256", 0},
    {"RS384", Scheme::rsa_pkcs1, "SHA384", 0},
    {"RS512", Scheme::rsa_pkcs1, "SHA512", 0},
    {"PS256", Scheme::rsa_pss, "SHA256", 0},
    {"PS384", Scheme::rsa_pss, "SHA384", 0},
    {"PS512", Scheme::rsa_pss, "SHA512", 0},
    {"ES256", Scheme::ecdsa, "SHA256", 64},
    {"ES384", Scheme::ecdsa, "SHA384", 96},
    {"ES512", Scheme::ecdsa, "SHA512", 132},
    {"EdDSA", Scheme::eddsa, nullptr, 0},
}};

// RFC 7518 §3.3: RSA keys of 2048 bits or more.
constexpr int min_rsa_bits = 2048;
constexpr std::size_t max_key_file = 1 << 20;

const unsigned char* bytes(std::string_view text) { return reinterpret_cast<const unsigned char*>(text.data()); }

// OpenSSL leaves a reason on the thread's error queue for every refused signature; a worker thread
// verifies many, so the queue is emptied each time.
struct ClearErrors {
    ~ClearErrors() { ERR_clear_error(); }
};

bool hmac_matches(const Algorithm& algorithm, const std::string& secret, std::string_view input,
                  std::string_view signature) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    std::size_t length = 0;
    if (!EVP_Q_mac(nullptr, "HMAC", nullptr, algorithm.digest, nullptr, secret.data(), secret.size(), bytes(input),
                   input.size(), mac.data(), mac.size(), &length))
        return false;
    return signature.size() == length && CRYPTO_memcmp(mac.data(), signature.data(), length) == 0;
}

// JWS carries an ECDSA signature as R||S, each the curve's size; OpenSSL verifies the DER form.
std::string ecdsa_der(std::string_view raw) {
    const auto half = static_cast<int>(raw.size() / 2);
    BIGNUM* r = BN_bin2bn(bytes(raw), half, nullptr);
    BIGNUM* s = BN_bin2bn(bytes(raw) + half, half, nullptr);
    ECDSA_SIG* sig = ECDSA_SIG_new();
    if (!r || !s || !sig || !ECDSA_SIG_set0(sig, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return {};
    }
    std::string der;
    const int length = i2d_ECDSA_SIG(sig, nullptr);
    if (length > 0) {
        der.resize(static_cast<std::size_t>(length));
        auto* out = reinterpret_cast<unsigned char*>(der.data());
        if (i2d_ECDSA_SIG(sig, &out) != length) der.clear();
    }
    ECDSA_SIG_free(sig);
    return der;
}

bool digest_verify(const Algorithm& algorithm, EVP_PKEY* pkey, std::string_view input, std::string_view signature) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_PKEY_CTX* pctx = nullptr;
    if (!ctx || EVP_DigestVerifyInit_ex(ctx.get(), &pctx, algorithm.digest, nullptr, nullptr, pkey, nullptr) != 1)
        return false;
    // RFC 7518 §3.5: PSS with MGF1 over the same hash and a salt as long as the hash.
    if (algorithm.scheme == Scheme::rsa_pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                                                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        return false;
    return EVP_DigestVerify(ctx.get(), bytes(signature), signature.size(), bytes(input), input.size()) == 1;
}

std::string group_name(EVP_PKEY* pkey) {
    std::array<char, 64> name{};
    std::size_t length = 0;
    if (EVP_PKEY_get_group_name(pkey, name.data(), name.size(), &length) != 1) return {};
    return std::string(name.data(), length);
}

bool holds_private_key(std::string_view pem) { return pem.find("PRIVATE KEY-----") != std::string_view::npos; }

}  // namespace

const Algorithm* find_algorithm(std::string_view name) {
    for (const auto& algorithm : algorithms)
        if (algorithm.name == name) return &algorithm;
    return nullptr;
}

std::string_view describe(KeyKind kind) {
    switch (kind) {
        case KeyKind::hmac: return "HMAC secret";
        case KeyKind::rsa: return "RSA key";
        case KeyKind::ec_p256: return "EC P-256 key";
        case KeyKind::ec_p384: return "EC P-384 key";
        case KeyKind::ec_p521: return "EC P-521 key";
        case KeyKind::ed25519: return "Ed25519 key";
        case KeyKind::ed448: return "Ed448 key";
    }
    return "key";
}

std::string_view default_algorithm(KeyKind kind) {
    switch (kind) {
        case KeyKind::hmac: return "HS256";
        case KeyKind::rsa: return "RS256";
        case KeyKind::ec_p256: return "ES256";
        case KeyKind::ec_p384: return "ES384";
        case KeyKind::ec_p521: return "ES512";
        case KeyKind::ed25519:
        case KeyKind::ed448: return "EdDSA";
    }
    return "";
}

std::string misfit(const Algorithm& algorithm, const JwtKey& key) {
    bool fits = false;
    switch (algorithm.scheme) {
        case Scheme::hmac: fits = key.kind == KeyKind::hmac; break;
        case Scheme::rsa_pkcs1:
        case Scheme::rsa_pss: fits = key.kind == KeyKind::rsa; break;
        case Scheme::ecdsa: fits = std::string_view(default_algorithm(key.kind)) == algorithm.name; break;
        case Scheme::eddsa: fits = key.kind == KeyKind::ed25519 || key.kind == KeyKind::ed448; break;
    }
    if (!fits) return std::string(algorithm.name) + " does not fit the " + std::string(describe(key.kind));
    if (key.kind == KeyKind::hmac && key.secret.size() < algorithm.size)
        return "the HMAC secret is " + std::to_string(key.secret.size()) + " bytes; " + std::string(algorithm.name) +
               " needs at least " + std::to_string(algorithm.size) + " (RFC 7518 section 3.2)";
    return {};
}

std::string adopt_public_key(std::shared_ptr<EVP_PKEY> pkey, JwtKey& key) {
    EVP_PKEY* raw = pkey.get();
    if (EVP_PKEY_is_a(raw, "RSA")) {
        if (EVP_PKEY_get_bits(raw) < min_rsa_bits)
            return "an RSA key of " + std::to_string(EVP_PKEY_get_bits(raw)) + " bits (at least 2048 are needed)";
        key.kind = KeyKind::rsa;
    } else if (EVP_PKEY_is_a(raw, "EC")) {
        const auto group = group_name(raw);
        if (group == "prime256v1" || group == "P-256") key.kind = KeyKind::ec_p256;
        else if (group == "secp384r1" || group == "P-384") key.kind = KeyKind::ec_p384;
        else if (group == "secp521r1" || group == "P-521") key.kind = KeyKind::ec_p521;
        else return "an EC key on a curve JWS does not use (" + (group.empty() ? "unnamed" : group) + ")";
    } else if (EVP_PKEY_is_a(raw, "ED25519")) {
        key.kind = KeyKind::ed25519;
    } else if (EVP_PKEY_is_a(raw, "ED448")) {
        key.kind = KeyKind::ed448;
    } else {
        return std::string("a ") + EVP_PKEY_get0_type_name(raw) + " key (RSA, EC P-256/384/521 or Ed25519 work)";
    }
    key.pkey = std::move(pkey);
    return {};
}

bool verify_signature(const Algorithm& algorithm, const JwtKey& key, std::string_view signing_input,
                      std::string_view signature) {
    const ClearErrors clear;
    switch (algorithm.scheme) {
        case Scheme::hmac: return hmac_matches(algorithm, key.secret, signing_input, signature);
        case Scheme::ecdsa: {
            if (signature.size() != algorithm.size) return false;
            const auto der = ecdsa_der(signature);
            return !der.empty() && digest_verify(algorithm, key.pkey.get(), signing_input, der);
        }
        case Scheme::rsa_pkcs1:
        case Scheme::rsa_pss:
        case Scheme::eddsa: return digest_verify(algorithm, key.pkey.get(), signing_input, signature);
    }
    return false;
}

std::string read_key_file(const std::string& setting, const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) throw config::ConfigError(setting, "cannot read " + path + ": " + std::strerror(errno));
    std::string text;
    std::array<char, 8192> chunk{};
    while (file.read(chunk.data(), chunk.size()) || file.gcount() > 0) {
        text.append(chunk.data(), static_cast<std::size_t>(file.gcount()));
        if (text.size() > max_key_file) throw config::ConfigError(setting, path + " is larger than 1 MiB");
    }
    if (file.bad()) throw config::ConfigError(setting, "cannot read " + path + ": " + std::strerror(errno));
    return text;
}

JwtKey read_secret_key(const std::string& path) {
    JwtKey key;
    key.kind = KeyKind::hmac;
    key.secret = read_key_file("jwt-secret-file", path);
    if (key.secret.ends_with("\r\n")) key.secret.resize(key.secret.size() - 2);
    else if (key.secret.ends_with('\n')) key.secret.pop_back();
    return key;
}

JwtKey read_public_key(const std::string& path) {
    const std::string setting = "jwt-public-key-file";
    const auto pem = read_key_file(setting, path);
    // Refused even beside a public key: crudcast only verifies, and a signing key has no business here.
    if (holds_private_key(pem))
        throw config::ConfigError(setting, path +
                                               " holds a private key; give the public key "
                                               "(openssl pkey -in KEY -pubout)");
    const ClearErrors clear;
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    std::shared_ptr<EVP_PKEY> pkey(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr,
                                   EVP_PKEY_free);
    if (!pkey) throw config::ConfigError(setting, path + " is not a PEM public key (-----BEGIN PUBLIC KEY-----)");
    JwtKey key;
    if (auto problem = adopt_public_key(std::move(pkey), key); !problem.empty())
        throw config::ConfigError(setting, path + " holds " + problem);
    return key;
}

}  // namespace crudcast::gateway::auth
