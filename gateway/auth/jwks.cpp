// jwks.cpp: see jwks.hpp. The public keys are built from their parameters with EVP_PKEY_fromdata.
#include "gateway/auth/jwks.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <set>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "gateway/auth/jwt_codec.hpp"

namespace crudcast::gateway::auth {
namespace {

using Value = rapidjson::Value;
using ParamBuilder = std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)>;
using Params = std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)>;
using Bignum = std::unique_ptr<BIGNUM, decltype(&BN_free)>;

// A key of the file that passed its own checks, before the algorithm is known.
struct Candidate {
    JwtKey key;
    std::string alg;        // its `alg` member, "" when absent
    std::size_t index = 0;  // its place in the file, for messages
};

// Why a key was left out; thrown inside this file only and caught per key.
struct Skip {
    std::string reason;
};

std::optional<std::string> string_member(const Value& object, const char* name) {
    const auto found = object.FindMember(name);
    if (found == object.MemberEnd()) return std::nullopt;
    if (!found->value.IsString()) throw Skip{std::string(name) + " is not a string"};
    return std::string(found->value.GetString(), found->value.GetStringLength());
}

std::string decoded_member(const Value& object, const char* name) {
    const auto text = string_member(object, name);
    if (!text) throw Skip{std::string("it has no ") + name};
    auto bytes = base64url_decode(*text);
    if (!bytes || bytes->empty()) throw Skip{std::string(name) + " is not base64url"};
    return *bytes;
}

std::shared_ptr<EVP_PKEY> from_params(const char* type, const ParamBuilder& builder) {
    const Params params(OSSL_PARAM_BLD_to_param(builder.get()), OSSL_PARAM_free);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr),
                                                                    EVP_PKEY_CTX_free);
    EVP_PKEY* pkey = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
        throw Skip{std::string("its ") + type + " parameters do not make a public key"};
    std::shared_ptr<EVP_PKEY> key(pkey, EVP_PKEY_free);
    // A point off the curve (or a malformed modulus) must not get as far as a signature check.
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> check(
        EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr), EVP_PKEY_CTX_free);
    if (!check || EVP_PKEY_public_check(check.get()) != 1)
        throw Skip{std::string("its ") + type + " public key does not pass OpenSSL's check"};
    return key;
}

const unsigned char* bytes(const std::string& text) { return reinterpret_cast<const unsigned char*>(text.data()); }

std::shared_ptr<EVP_PKEY> rsa_key(const Value& jwk) {
    const auto n = decoded_member(jwk, "n");
    const auto e = decoded_member(jwk, "e");
    const Bignum bn_n(BN_bin2bn(bytes(n), static_cast<int>(n.size()), nullptr), BN_free);
    const Bignum bn_e(BN_bin2bn(bytes(e), static_cast<int>(e.size()), nullptr), BN_free);
    const ParamBuilder builder(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
    if (!bn_n || !bn_e || !builder || !OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
        !OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()))
        throw Skip{"its RSA parameters do not make a public key"};
    return from_params("RSA", builder);
}

std::shared_ptr<EVP_PKEY> ec_key(const Value& jwk) {
    const auto crv = string_member(jwk, "crv").value_or("");
    const std::size_t size = crv == "P-256" ? 32 : crv == "P-384" ? 48 : crv == "P-521" ? 66 : 0;
    if (size == 0) throw Skip{"crv is not P-256, P-384 or P-521"};
    const auto x = decoded_member(jwk, "x");
    const auto y = decoded_member(jwk, "y");
    // RFC 7518 §6.2.1.2: x and y are exactly the curve's size.
    if (x.size() != size || y.size() != size) throw Skip{"x or y is not the length " + crv + " needs"};
    const std::string point = '\x04' + x + y;  // an uncompressed point
    const ParamBuilder builder(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
    if (!builder || !OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, crv.c_str(), 0) ||
        !OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()))
        throw Skip{"its EC parameters do not make a public key"};
    return from_params("EC", builder);
}

std::shared_ptr<EVP_PKEY> okp_key(const Value& jwk) {
    const auto crv = string_member(jwk, "crv").value_or("");
    const int type = crv == "Ed25519" ? EVP_PKEY_ED25519 : crv == "Ed448" ? EVP_PKEY_ED448 : 0;
    if (type == 0) throw Skip{"crv is not Ed25519 or Ed448"};
    const auto x = decoded_member(jwk, "x");
    if (x.size() != (type == EVP_PKEY_ED25519 ? 32u : 57u)) throw Skip{"x is not the length " + crv + " needs"};
    std::shared_ptr<EVP_PKEY> key(EVP_PKEY_new_raw_public_key(type, nullptr, bytes(x), x.size()), EVP_PKEY_free);
    if (!key) throw Skip{"its x does not make an " + crv + " key"};
    return key;
}

Candidate read_key(const Value& jwk) {
    if (!jwk.IsObject()) throw Skip{"it is not a JSON object"};
    if (const auto use = string_member(jwk, "use"); use && *use != "sig") throw Skip{"its use is not sig"};
    if (const auto ops = jwk.FindMember("key_ops"); ops != jwk.MemberEnd()) {
        const auto& list = ops->value;
        if (!list.IsArray() || std::ranges::none_of(list.GetArray(), [](const Value& op) {
                return op.IsString() && std::string_view(op.GetString(), op.GetStringLength()) == "verify";
            }))
            throw Skip{"its key_ops do not include verify"};
    }
    Candidate out;
    out.key.kid = string_member(jwk, "kid").value_or("");
    out.alg = string_member(jwk, "alg").value_or("");
    const auto kty = string_member(jwk, "kty").value_or("");
    if (kty == "oct") {
        out.key.kind = KeyKind::hmac;
        out.key.secret = decoded_member(jwk, "k");
        return out;
    }
    std::shared_ptr<EVP_PKEY> pkey;
    if (kty == "RSA") pkey = rsa_key(jwk);
    else if (kty == "EC") pkey = ec_key(jwk);
    else if (kty == "OKP") pkey = okp_key(jwk);
    else throw Skip{"its kty is not RSA, EC, OKP or oct"};
    if (auto problem = adopt_public_key(std::move(pkey), out.key); !problem.empty()) throw Skip{"it is " + problem};
    return out;
}

// The one algorithm every candidate wants, or "" and `problem` set.
std::string agreed_algorithm(const std::vector<Candidate>& candidates, std::string& problem) {
    std::set<std::string> wanted;
    for (const auto& c : candidates) wanted.insert(c.alg.empty() ? std::string(default_algorithm(c.key.kind)) : c.alg);
    if (wanted.size() == 1) return *wanted.begin();
    problem = "its keys are for different algorithms (";
    for (const auto& name : wanted) problem += (name == *wanted.begin() ? "" : ", ") + name;
    problem += "); set jwt-algorithm";
    return {};
}

}  // namespace

std::string read_jwks(std::string_view text, std::string& algorithm, std::vector<JwtKey>& keys) {
    rapidjson::Document document;
    if (auto problem = parse_json_object(text, document); !problem.empty()) return "it is " + problem;
    const rapidjson::Value::ConstMemberIterator list = document.FindMember("keys");
    if (list == document.MemberEnd() || !list->value.IsArray()) return "it has no \"keys\" array";
    std::vector<Candidate> candidates;
    std::string first_skip;
    const auto skipped = [&](std::size_t index, const std::string& reason) {
        if (first_skip.empty()) first_skip = "key " + std::to_string(index) + " was left out: " + reason;
    };
    for (std::size_t i = 0; i < list->value.Size(); ++i) {
        try {
            candidates.push_back(read_key(list->value[static_cast<rapidjson::SizeType>(i)]));
            candidates.back().index = i;
        } catch (const Skip& skip) {
            skipped(i, skip.reason);
        }
    }
    ERR_clear_error();
    if (candidates.empty()) return "it holds no usable key" + (first_skip.empty() ? "" : "; " + first_skip);
    std::string problem;
    const std::string chosen = algorithm.empty() ? agreed_algorithm(candidates, problem) : algorithm;
    if (chosen.empty()) return problem;
    const Algorithm* spec = find_algorithm(chosen);
    if (!spec) return "a key names alg \"" + chosen + "\", which crudcast does not know; set jwt-algorithm";
    std::vector<JwtKey> usable;
    for (auto& c : candidates) {
        if (!c.alg.empty() && c.alg != chosen) skipped(c.index, "its alg is " + c.alg);
        else if (auto misfit_reason = misfit(*spec, c.key); !misfit_reason.empty()) skipped(c.index, misfit_reason);
        else usable.push_back(std::move(c.key));
    }
    if (usable.empty()) return "no key in it fits " + chosen + (first_skip.empty() ? "" : "; " + first_skip);
    algorithm = chosen;
    keys = std::move(usable);
    return {};
}

}  // namespace crudcast::gateway::auth
