// jwt_sign.cpp: see jwt_sign.hpp.
#include "jwt_sign.hpp"

#include <array>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <rapidjson/document.h>

namespace crudcast::testkit {
namespace {

const unsigned char* bytes(std::string_view text) { return reinterpret_cast<const unsigned char*>(text.data()); }

void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("jwt_sign: ") + what + " failed");
}

std::string header_alg(std::string_view header_json) {
    rapidjson::Document doc;
    doc.Parse(header_json.data(), header_json.size());
    if (doc.HasParseError() || !doc.IsObject()) return {};
    const rapidjson::Value::ConstMemberIterator alg = doc.FindMember("alg");
    return alg != doc.MemberEnd() && alg->value.IsString() ? alg->value.GetString() : "";
}

// "SHA256" from "HS256", "RS384" -> "SHA384"; SHA-256 when the alg names no size.
std::string digest_of(std::string_view alg) {
    if (alg.size() == 5 && (alg.ends_with("384") || alg.ends_with("512"))) return "SHA" + std::string(alg.substr(2));
    return "SHA256";
}

std::string bignum_bytes(const BIGNUM* bn, int size) {
    std::string out(static_cast<std::size_t>(size > 0 ? size : BN_num_bytes(bn)), '\0');
    check(BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size())) > 0,
          "BN_bn2binpad");
    return out;
}

int ec_size(EVP_PKEY* key) { return (EVP_PKEY_get_bits(key) + 7) / 8; }

std::string ec_raw(const std::string& der, int size) {
    const auto* p = bytes(der);
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    check(sig != nullptr, "d2i_ECDSA_SIG");
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(sig, &r, &s);
    auto raw = bignum_bytes(r, size) + bignum_bytes(s, size);
    ECDSA_SIG_free(sig);
    return raw;
}

std::string sign_with_key(EVP_PKEY* key, const std::string& alg, std::string_view input,
                          int salt_length = RSA_PSS_SALTLEN_DIGEST) {
    const bool eddsa = EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448");
    const std::string digest = digest_of(alg);
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_PKEY_CTX* pctx = nullptr;
    check(
        EVP_DigestSignInit_ex(ctx.get(), &pctx, eddsa ? nullptr : digest.c_str(), nullptr, nullptr, key, nullptr) == 1,
        "EVP_DigestSignInit_ex");
    if (alg.starts_with("PS")) {
        check(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1, "PSS padding");
        check(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt_length) == 1, "PSS salt length");
    }
    std::size_t length = 0;
    check(EVP_DigestSign(ctx.get(), nullptr, &length, bytes(input), input.size()) == 1, "EVP_DigestSign size");
    std::string signature(length, '\0');
    check(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length, bytes(input),
                         input.size()) == 1,
          "EVP_DigestSign");
    signature.resize(length);
    if (EVP_PKEY_is_a(key, "EC")) return ec_raw(signature, ec_size(key));
    return signature;
}

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(length));
    BIO_free(bio);
    return out;
}

std::string bn_param(EVP_PKEY* key, const char* name, int size = 0) {
    BIGNUM* bn = nullptr;
    check(EVP_PKEY_get_bn_param(key, name, &bn) == 1, name);
    auto out = bignum_bytes(bn, size);
    BN_free(bn);
    return out;
}

std::string member(std::string_view name, std::string_view value) {
    return value.empty() ? "" : ",\"" + std::string(name) + "\":\"" + std::string(value) + "\"";
}

}  // namespace

KeyPair generate_key(std::string_view kind) {
    EVP_PKEY* key = nullptr;
    if (kind == "RSA") key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048));
    else if (kind == "RSA-1024") key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(1024));
    else if (kind.starts_with("P-")) key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", std::string(kind).c_str());
    else if (kind == "Ed25519") key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    else if (kind == "Ed448") key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED448");
    check(key != nullptr, "EVP_PKEY_Q_keygen");
    return KeyPair(key, EVP_PKEY_free);
}

std::string base64url(std::string_view in) {
    constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        const unsigned v = (bytes(in)[i] << 16) | (bytes(in)[i + 1] << 8) | bytes(in)[i + 2];
        for (int shift = 18; shift >= 0; shift -= 6) out += alphabet[(v >> shift) & 63];
    }
    if (in.size() - i == 1) {
        const unsigned v = bytes(in)[i] << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
    } else if (in.size() - i == 2) {
        const unsigned v = (bytes(in)[i] << 16) | (bytes(in)[i + 1] << 8);
        for (int shift = 18; shift >= 6; shift -= 6) out += alphabet[(v >> shift) & 63];
    }
    return out;
}

std::string sign_jwt(std::string_view header_json, std::string_view payload_json, EVP_PKEY* key_or_null,
                     std::string_view hmac_secret) {
    const std::string input = base64url(header_json) + "." + base64url(payload_json);
    const std::string alg = header_alg(header_json);
    if (alg == "none") return input + ".";
    if (key_or_null) return input + "." + base64url(sign_with_key(key_or_null, alg, input));
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    std::size_t length = 0;
    check(EVP_Q_mac(nullptr, "HMAC", nullptr, digest_of(alg).c_str(), nullptr, hmac_secret.data(), hmac_secret.size(),
                    bytes(input), input.size(), mac.data(), mac.size(), &length) != nullptr,
          "EVP_Q_mac");
    return input + "." + base64url(std::string_view(reinterpret_cast<const char*>(mac.data()), length));
}

std::string sign_jwt_pss_salt(std::string_view header_json, std::string_view payload_json, EVP_PKEY* key,
                              int salt_length) {
    const std::string input = base64url(header_json) + "." + base64url(payload_json);
    return input + "." + base64url(sign_with_key(key, header_alg(header_json), input, salt_length));
}

std::string public_pem(EVP_PKEY* key) {
    BIO* bio = BIO_new(BIO_s_mem());
    check(PEM_write_bio_PUBKEY(bio, key) == 1, "PEM_write_bio_PUBKEY");
    return bio_text(bio);
}

std::string private_pem(EVP_PKEY* key) {
    BIO* bio = BIO_new(BIO_s_mem());
    check(PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1, "PEM_write_bio_PrivateKey");
    return bio_text(bio);
}

std::string public_jwk(EVP_PKEY* key, std::string_view kid, std::string_view alg) {
    std::string body;
    if (EVP_PKEY_is_a(key, "RSA")) {
        body = "\"kty\":\"RSA\",\"n\":\"" + base64url(bn_param(key, OSSL_PKEY_PARAM_RSA_N)) + "\",\"e\":\"" +
               base64url(bn_param(key, OSSL_PKEY_PARAM_RSA_E)) + "\"";
    } else if (EVP_PKEY_is_a(key, "EC")) {
        const int size = ec_size(key);
        const std::string crv = size == 32 ? "P-256" : size == 48 ? "P-384" : "P-521";
        body = "\"kty\":\"EC\",\"crv\":\"" + crv + "\",\"x\":\"" +
               base64url(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, size)) + "\",\"y\":\"" +
               base64url(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, size)) + "\"";
    } else {
        std::array<unsigned char, 64> raw{};
        std::size_t length = raw.size();
        check(EVP_PKEY_get_raw_public_key(key, raw.data(), &length) == 1, "EVP_PKEY_get_raw_public_key");
        const std::string crv = EVP_PKEY_is_a(key, "ED448") ? "Ed448" : "Ed25519";
        body = "\"kty\":\"OKP\",\"crv\":\"" + crv + "\",\"x\":\"" +
               base64url(std::string_view(reinterpret_cast<const char*>(raw.data()), length)) + "\"";
    }
    return "{" + body + member("kid", kid) + member("alg", alg) + "}";
}

std::string oct_jwk(std::string_view secret, std::string_view kid, std::string_view alg) {
    return "{\"kty\":\"oct\",\"k\":\"" + base64url(secret) + "\"" + member("kid", kid) + member("alg", alg) + "}";
}

std::string jwks(const std::vector<std::string>& jwk_objects) {
    std::string out = "{\"keys\":[";
    for (std::size_t i = 0; i < jwk_objects.size(); ++i) out += (i ? "," : "") + jwk_objects[i];
    return out + "]}";
}

}  // namespace crudcast::testkit
