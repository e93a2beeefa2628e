// jwt_test.cpp: ws-auth jwt's verifier on its own: tokens signed by tests/jwt_sign.cpp with every
// algorithm family, each way a token is refused (with its reason label), the JWKS file rotating under
// it, and the start-up errors that name the setting at fault.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include "config/config.hpp"
#include "gateway/auth/jwt_verifier.hpp"
#include "jwt_sign.hpp"

namespace crudcast {
namespace {

using namespace std::chrono_literals;
using gateway::auth::JwtVerdict;
using gateway::auth::JwtVerifier;
using testkit::base64url;
using testkit::generate_key;
using testkit::KeyPair;
using testkit::sign_jwt;

const auto now = std::chrono::system_clock::time_point(1'800'000'000s);
constexpr long long t = 1'800'000'000;  // `now` in seconds, for payloads
const std::string secret32 = "0123456789abcdef0123456789abcdef";
const std::string secret64 = secret32 + secret32;

// Keys are slow to make (RSA above all): each kind once for the whole file.
const KeyPair& key(const std::string& kind) {
    static std::map<std::string, KeyPair> keys;
    auto& slot = keys[kind];
    if (!slot) slot = generate_key(kind);
    return slot;
}

std::string header(std::string_view alg, std::string_view extra = "") {
    return "{\"alg\":\"" + std::string(alg) + "\",\"typ\":\"JWT\"" + std::string(extra) + "}";
}
std::string claims(std::string_view extra = "") {
    return "{\"sub\":\"alice\",\"exp\":" + std::to_string(t + 600) + std::string(extra) + "}";
}

class JwtTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (std::filesystem::temp_directory_path() / "crudcast-jwt-XXXXXX").string();
        ASSERT_NE(mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
        config_.ws_auth = config::WsAuth::jwt;
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::string write(const std::string& name, const std::string& text) {
        const auto path = (dir_ / name).string();
        std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
        return path;
    }
    config::Config& with_secret(const std::string& secret, std::string alg = "") {
        config_.jwt_secret_file = write("secret", secret);
        config_.jwt_algorithm = std::move(alg);
        return config_;
    }
    config::Config& with_pem(EVP_PKEY* pkey, std::string alg = "") {
        config_.jwt_public_key_file = write("key.pem", testkit::public_pem(pkey));
        config_.jwt_algorithm = std::move(alg);
        return config_;
    }
    config::Config& with_jwks(const std::vector<std::string>& jwks, std::string alg = "") {
        config_.jwt_jwks_file = write("keys.json", testkit::jwks(jwks));
        config_.jwt_algorithm = std::move(alg);
        return config_;
    }
    // The setting a ConfigError names, or "" when the verifier starts.
    std::string config_error(const config::Config& c, std::string* problem = nullptr) {
        try {
            JwtVerifier verifier(c);
        } catch (const config::ConfigError& e) {
            if (problem) *problem = e.problem;
            return e.setting;
        }
        return "";
    }

    std::filesystem::path dir_;
    config::Config config_;
};

// --- allowed ---------------------------------------------------------------------------------------

struct FamilyRow {
    std::string alg;
    std::string key_kind;  // "" = HMAC
    std::string configured_alg;
};

TEST_F(JwtTest, AcceptsATokenOfEachAlgorithmFamilyFromAKeyFileAndFromAJwks) {
    const std::vector<FamilyRow> rows = {
        {"HS256", "", ""},         {"HS384", "", "HS384"},    {"HS512", "", "HS512"},    {"RS256", "RSA", ""},
        {"RS512", "RSA", "RS512"}, {"PS256", "RSA", "PS256"}, {"PS384", "RSA", "PS384"}, {"ES256", "P-256", ""},
        {"ES384", "P-384", ""},    {"ES512", "P-521", ""},    {"EdDSA", "Ed25519", ""},  {"EdDSA", "Ed448", ""},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.alg + " " + row.key_kind);
        EVP_PKEY* pkey = row.key_kind.empty() ? nullptr : key(row.key_kind).get();
        const auto token = sign_jwt(header(row.alg, ",\"kid\":\"k1\""), claims(), pkey, secret64);
        config_ = {};
        const JwtVerifier from_file(pkey ? with_pem(pkey, row.configured_alg)
                                         : with_secret(secret64 + "\n", row.configured_alg));
        EXPECT_EQ(from_file.algorithm(), row.alg);
        const auto verdict = from_file.verify(token, now);
        EXPECT_TRUE(verdict.ok) << verdict.reason << ": " << verdict.detail;
        EXPECT_EQ(verdict.subject, "alice");
        EXPECT_FALSE(verdict.topics.has_value());
        ASSERT_TRUE(verdict.expires.has_value());
        EXPECT_EQ(*verdict.expires, now + 600s + 30s);  // exp plus the default leeway

        config_ = {};
        const auto jwk = pkey ? testkit::public_jwk(pkey, "k1") : testkit::oct_jwk(secret64, "k1");
        const JwtVerifier from_jwks(with_jwks({jwk}, row.configured_alg));
        EXPECT_EQ(from_jwks.algorithm(), row.alg);
        const auto jwks_verdict = from_jwks.verify(token, now);
        EXPECT_TRUE(jwks_verdict.ok) << jwks_verdict.reason << ": " << jwks_verdict.detail;
    }
}

TEST_F(JwtTest, ATokenWithoutExpNeverExpiresAndSubIsCutTo128Bytes) {
    const JwtVerifier verifier(with_secret(secret32));
    const std::string long_sub(200, 's');
    const auto verdict = verifier.verify(sign_jwt(header("HS256"), "{\"sub\":\"" + long_sub + "\"}", nullptr, secret32),
                                         now + 3650 * 24h);
    ASSERT_TRUE(verdict.ok) << verdict.detail;
    EXPECT_FALSE(verdict.expires.has_value());
    EXPECT_EQ(verdict.subject, std::string(128, 's'));
}

// --- refused ---------------------------------------------------------------------------------------

struct DenyRow {
    std::string name;
    std::string token;
    std::string reason;
};

void expect_denied(const JwtVerifier& verifier, const std::vector<DenyRow>& rows) {
    for (const auto& row : rows) {
        const auto verdict = verifier.verify(row.token, now);
        EXPECT_FALSE(verdict.ok) << row.name;
        EXPECT_EQ(verdict.reason, row.reason) << row.name << ": " << verdict.detail;
        EXPECT_FALSE(verdict.detail.empty()) << row.name;
        if (row.token.size() > 8) {
            EXPECT_EQ(verdict.detail.find(row.token), std::string::npos) << row.name;
        }
    }
}

TEST_F(JwtTest, RefusesMalformedTokensBeforeAnySignatureWork) {
    const JwtVerifier verifier(with_secret(secret32));
    const auto good = sign_jwt(header("HS256"), claims(), nullptr, secret32);
    const auto payload = good.substr(good.find('.') + 1);
    const auto signed_text = [&](std::string_view h, std::string_view p) { return sign_jwt(h, p, nullptr, secret32); };
    // 16 bytes end in 2 characters with 4 unused bits; a lenient decoder would read the same header
    // from "...IB" as from "...IA", and the row would then fail on the signature instead.
    std::string padding_bits_set = base64url("{\"alg\":\"HS256\"} ");
    ASSERT_EQ(padding_bits_set.back(), 'A');
    padding_bits_set.back() = 'B';
    expect_denied(
        verifier,
        {
            {"empty", "", "malformed"},
            {"one part", "abc", "malformed"},
            {"two parts", good.substr(0, good.rfind('.')), "malformed"},
            {"four parts", good + ".x", "malformed"},
            {"padded header", base64url(header("HS256")) + "=." + payload, "malformed"},
            {"standard alphabet", "ab+/." + payload, "malformed"},
            {"impossible length", "abcde." + payload, "malformed"},
            {"non-zero padding bits", padding_bits_set + "." + payload, "malformed"},
            {"header not JSON", signed_text("not json", claims()), "malformed"},
            {"header not an object", signed_text("[\"HS256\"]", claims()), "malformed"},
            {"header without alg", signed_text("{\"typ\":\"JWT\"}", claims()), "malformed"},
            {"header alg twice", signed_text("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", claims()), "malformed"},
            {"kid not a string", signed_text(header("HS256", ",\"kid\":7"), claims()), "malformed"},
            {"crit", signed_text(header("HS256", ",\"crit\":[\"exp\"]"), claims()), "malformed"},
            {"payload not JSON", signed_text(header("HS256"), "{\"sub\":"), "malformed"},
            {"payload an array", signed_text(header("HS256"), "[1]"), "malformed"},
            {"payload claim twice", signed_text(header("HS256"), "{\"exp\":1,\"exp\":9999999999}"), "malformed"},
            {"nested member twice", signed_text(header("HS256"), "{\"x\":[{\"a\":1,\"a\":2}]}"), "malformed"},
            {"exp not a number", signed_text(header("HS256"), "{\"exp\":\"tomorrow\"}"), "malformed"},
            {"over 8 KiB", signed_text(header("HS256"), claims(",\"pad\":\"" + std::string(6200, 'x') + "\"")),
             "malformed"},
        });
    // Just under the limit is fine: the limit is on the token, not on what it says.
    const auto big = signed_text(header("HS256"), claims(",\"pad\":\"" + std::string(5900, 'x') + "\""));
    ASSERT_LE(big.size(), JwtVerifier::max_token_size);
    EXPECT_TRUE(verifier.verify(big, now).ok);
}

TEST_F(JwtTest, RefusesForgedAndAlteredSignatures) {
    const JwtVerifier verifier(with_secret(secret32));
    const auto good = sign_jwt(header("HS256"), claims(), nullptr, secret32);
    const auto other = sign_jwt(header("HS256"), claims(",\"topics\":\"*\""), nullptr, secret32);
    const auto dot = good.find('.');
    const auto tampered =
        good.substr(0, dot + 1) + other.substr(dot + 1, other.rfind('.') - dot - 1) + good.substr(good.rfind('.'));
    expect_denied(verifier, {
                                {"another secret", sign_jwt(header("HS256"), claims(), nullptr, std::string(32, 'z')),
                                 "bad_signature"},
                                {"tampered payload", tampered, "bad_signature"},
                                {"signature cut by 3 characters", good.substr(0, good.size() - 3), "bad_signature"},
                                {"no signature", good.substr(0, good.rfind('.') + 1), "bad_signature"},
                            });
    EXPECT_TRUE(verifier.verify(good, now).ok);
    EXPECT_TRUE(verifier.verify(other, now).ok);
}

TEST_F(JwtTest, HoldsPssToASaltAsLongAsTheHash) {
    const auto& rsa = key("RSA");
    const JwtVerifier verifier(with_pem(rsa.get(), "PS256"));
    EXPECT_TRUE(verifier.verify(testkit::sign_jwt_pss_salt(header("PS256"), claims(), rsa.get(), 32), now).ok);
    expect_denied(
        verifier,
        {
            {"no salt", testkit::sign_jwt_pss_salt(header("PS256"), claims(), rsa.get(), 0), "bad_signature"},
            {"salt of 20", testkit::sign_jwt_pss_salt(header("PS256"), claims(), rsa.get(), 20), "bad_signature"},
        });
}

TEST_F(JwtTest, RefusesEveryAlgorithmButTheFixedOneBeforeLookingAtTheKey) {
    const auto& rsa = key("RSA");
    const std::string pem = testkit::public_pem(rsa.get());
    const JwtVerifier verifier(with_pem(rsa.get()));
    ASSERT_EQ(verifier.algorithm(), "RS256");
    expect_denied(
        verifier,
        {
            {"alg none", sign_jwt(header("none"), claims(), nullptr, ""), "algorithm"},
            {"alg None", sign_jwt(header("None"), claims(), nullptr, ""), "algorithm"},
            {"HMAC with the public key's PEM", sign_jwt(header("HS256"), claims(), nullptr, pem), "algorithm"},
            {"HMAC with the PEM, newline cut",
             sign_jwt(header("HS256"), claims(), nullptr, pem.substr(0, pem.size() - 1)), "algorithm"},
            {"another RSA algorithm", sign_jwt(header("PS256"), claims(), rsa.get(), ""), "algorithm"},
            {"RS512 for RS256", sign_jwt(header("RS512"), claims(), rsa.get(), ""), "algorithm"},
            {"an EC key's algorithm", sign_jwt(header("ES256"), claims(), key("P-256").get(), ""), "algorithm"},
        });
    EXPECT_TRUE(verifier.verify(sign_jwt(header("RS256"), claims(), rsa.get(), ""), now).ok);
    // The detail names the fixed algorithm and the refused one when crudcast knows its name.
    EXPECT_EQ(verifier.verify(sign_jwt(header("none"), claims(), nullptr, ""), now).detail,
              "the token's alg is \"none\"; only RS256 is accepted");

    config_ = {};
    const JwtVerifier hmac(with_secret(secret64, "HS512"));
    expect_denied(hmac, {{"HS256 for HS512", sign_jwt(header("HS256"), claims(), nullptr, secret64), "algorithm"}});
}

TEST_F(JwtTest, ChecksExpAndNbfWithTheLeewayOnBothSides) {
    config_.jwt_leeway = 30s;
    const JwtVerifier verifier(with_secret(secret32));
    const auto at = [&](std::string payload) { return sign_jwt(header("HS256"), payload, nullptr, secret32); };
    const auto exp = [&](std::string seconds) { return at("{\"exp\":" + seconds + "}"); };
    const auto nbf = [&](std::string seconds) { return at("{\"nbf\":" + seconds + "}"); };
    expect_denied(verifier, {
                                {"expired long ago", exp(std::to_string(t - 3600)), "expired"},
                                {"expired leeway ago", exp(std::to_string(t - 30)), "expired"},
                                {"expired 30.5 s ago", exp(std::to_string(t - 31) + ".5"), "expired"},
                                {"valid from in an hour", nbf(std::to_string(t + 3600)), "not_yet_valid"},
                                {"valid from in 30.5 s", nbf(std::to_string(t + 30) + ".5"), "not_yet_valid"},
                            });
    for (const auto& ok : {exp(std::to_string(t - 29) + ".5"), exp(std::to_string(t + 1)), nbf(std::to_string(t + 30)),
                           nbf(std::to_string(t + 29) + ".5"), nbf(std::to_string(t - 3600)), exp("1e11")}) {
        const auto verdict = verifier.verify(ok, now);
        EXPECT_TRUE(verdict.ok) << verdict.reason << ": " << verdict.detail;
    }
    EXPECT_EQ(verifier.verify(exp(std::to_string(t - 20) + ".25"), now).expires,
              std::chrono::system_clock::time_point(std::chrono::milliseconds((t + 10) * 1000 + 250)));
}

TEST_F(JwtTest, ChecksIssuerAndAudienceWhenConfigured) {
    config_.jwt_issuer = "https://id.example";
    config_.jwt_audience = "crudcast";
    const JwtVerifier verifier(with_secret(secret32));
    const auto token = [&](std::string extra) { return sign_jwt(header("HS256"), claims(extra), nullptr, secret32); };
    const std::string iss = ",\"iss\":\"https://id.example\"";
    expect_denied(verifier,
                  {
                      {"no iss", token(",\"aud\":\"crudcast\""), "issuer"},
                      {"another iss", token(",\"iss\":\"https://id.example/\",\"aud\":\"crudcast\""), "issuer"},
                      {"iss not a string", token(",\"iss\":1,\"aud\":\"crudcast\""), "issuer"},
                      {"no aud", token(iss), "audience"},
                      {"another aud", token(iss + ",\"aud\":\"billing\""), "audience"},
                      {"aud array without it", token(iss + ",\"aud\":[\"billing\",\"Crudcast\"]"), "audience"},
                      {"aud not a string", token(iss + ",\"aud\":{\"crudcast\":true}"), "audience"},
                  });
    EXPECT_TRUE(verifier.verify(token(iss + ",\"aud\":\"crudcast\""), now).ok);
    EXPECT_TRUE(verifier.verify(token(iss + ",\"aud\":[\"billing\",\"crudcast\"]"), now).ok);

    config_ = {};
    const JwtVerifier unchecked(with_secret(secret32));
    EXPECT_TRUE(unchecked.verify(token(",\"iss\":\"anyone\",\"aud\":7"), now).ok);
}

// --- topics ----------------------------------------------------------------------------------------

TEST_F(JwtTest, ReadsTheTopicsClaimAsAnArrayOrAListAndStarAsEverything) {
    struct Row {
        std::string claim;  // the JSON after "topics": ; "" = no claim
        std::optional<std::vector<std::string>> topics;
    };
    using List = std::vector<std::string>;
    const std::vector<Row> rows = {
        {"[\"Author\",\"book\"]", List{"author", "book"}},
        {"[\" author \",\"author\",\"\"]", List{"author"}},
        {"[]", List{}},
        {"\"author, Book\"", List{"author", "book"}},
        {"\"author book  review\"", List{"author", "book", "review"}},
        {"\"\"", List{}},
        {"[\"author\",\"*\"]", std::nullopt},
        {"\"*\"", std::nullopt},
        {"", std::nullopt},
    };
    const JwtVerifier verifier(with_secret(secret32));
    for (const auto& row : rows) {
        const auto payload = row.claim.empty() ? claims() : claims(",\"topics\":" + row.claim);
        const auto verdict = verifier.verify(sign_jwt(header("HS256"), payload, nullptr, secret32), now);
        ASSERT_TRUE(verdict.ok) << row.claim << ": " << verdict.detail;
        EXPECT_EQ(verdict.topics, row.topics) << row.claim;
    }
}

TEST_F(JwtTest, RefusesATopicsClaimOfAnotherTypeAndAMissingOneWhenRequired) {
    config_.jwt_topics_claim = "scope";
    config_.jwt_require_topics = true;
    const JwtVerifier verifier(with_secret(secret32));
    const auto token = [&](std::string extra) { return sign_jwt(header("HS256"), claims(extra), nullptr, secret32); };
    expect_denied(verifier, {
                                {"no claim", token(""), "no_topics_claim"},
                                {"only the default name", token(",\"topics\":[\"author\"]"), "no_topics_claim"},
                                {"a number", token(",\"scope\":7"), "bad_topics_claim"},
                                {"an object", token(",\"scope\":{\"author\":true}"), "bad_topics_claim"},
                                {"null", token(",\"scope\":null"), "bad_topics_claim"},
                                {"an array with a number", token(",\"scope\":[\"author\",1]"), "bad_topics_claim"},
                            });
    const auto verdict = verifier.verify(token(",\"scope\":[\"author\"]"), now);
    ASSERT_TRUE(verdict.ok) << verdict.detail;
    EXPECT_EQ(verdict.topics, std::vector<std::string>{"author"});
}

// --- JWKS ------------------------------------------------------------------------------------------

TEST_F(JwtTest, PicksTheJwksKeyByKidAndNeedsAKidWhenThereAreSeveral) {
    const auto& a = key("P-256");
    const auto& b = generate_key("P-256");
    const JwtVerifier verifier(with_jwks({testkit::public_jwk(a.get(), "a"), testkit::public_jwk(b.get(), "b")}));
    ASSERT_EQ(verifier.algorithm(), "ES256");
    const auto token = [&](const KeyPair& k, std::string kid_member) {
        return sign_jwt(header("ES256", kid_member), claims(), k.get(), "");
    };
    EXPECT_TRUE(verifier.verify(token(a, ",\"kid\":\"a\""), now).ok);
    EXPECT_TRUE(verifier.verify(token(b, ",\"kid\":\"b\""), now).ok);
    expect_denied(verifier, {
                                {"unknown kid", token(a, ",\"kid\":\"c\""), "unknown_kid"},
                                {"no kid, two keys", token(a, ""), "unknown_kid"},
                                {"the other key's kid", token(a, ",\"kid\":\"b\""), "bad_signature"},
                            });

    config_ = {};
    const JwtVerifier single(with_jwks({testkit::public_jwk(a.get(), "a")}));
    EXPECT_TRUE(single.verify(token(a, ""), now).ok) << "one usable key serves a token without kid";
}

TEST_F(JwtTest, LeavesOutJwksKeysForAnotherAlgorithmOrUse) {
    const auto& rsa = key("RSA");
    const auto other = generate_key("RSA");
    const JwtVerifier verifier(with_jwks(
        {
            R"({"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"})",
            testkit::public_jwk(other.get(), "enc2").insert(1, "\"use\":\"enc\","),
            testkit::public_jwk(other.get(), "ps", "PS256"),
            testkit::public_jwk(other.get(), "verify-no").insert(1, "\"key_ops\":[\"encrypt\"],"),
            R"({"kty":"dunno","kid":"x"})",
            testkit::public_jwk(rsa.get(), "sig").insert(1, "\"use\":\"sig\",\"key_ops\":[\"verify\"],"),
        },
        "RS256"));
    const auto token = [&](std::string kid) {
        return sign_jwt(header("RS256", ",\"kid\":\"" + kid + "\""), claims(), other.get(), "");
    };
    for (const auto& kid : {"enc", "enc2", "ps", "verify-no", "x"})
        EXPECT_EQ(verifier.verify(token(kid), now).reason, "unknown_kid") << kid;
    EXPECT_TRUE(verifier.verify(sign_jwt(header("RS256", ",\"kid\":\"sig\""), claims(), rsa.get(), ""), now).ok);
    // Only one key is usable, so a token without kid is its.
    EXPECT_TRUE(verifier.verify(sign_jwt(header("RS256"), claims(), rsa.get(), ""), now).ok);
}

TEST_F(JwtTest, RereadsARewrittenJwksAndKeepsTheOldKeysWhenTheRewriteIsBroken) {
    const auto& old_key = key("Ed25519");
    const auto new_key = generate_key("Ed25519");
    const auto path = with_jwks({testkit::public_jwk(old_key.get(), "old")}).jwt_jwks_file;
    const JwtVerifier verifier(config_);
    const auto old_token = sign_jwt(header("EdDSA", ",\"kid\":\"old\""), claims(), old_key.get(), "");
    const auto new_token = sign_jwt(header("EdDSA", ",\"kid\":\"new-key\""), claims(), new_key.get(), "");
    ASSERT_TRUE(verifier.verify(old_token, now).ok);
    ASSERT_EQ(verifier.verify(new_token, now).reason, "unknown_kid");

    // In place, as an editor would: same inode, new size and mtime.
    write("keys.json", testkit::jwks({testkit::public_jwk(new_key.get(), "new-key")}));
    EXPECT_TRUE(verifier.verify(new_token, now).ok);
    EXPECT_EQ(verifier.verify(old_token, now).reason, "unknown_kid");

    // A broken version: the keys read before stay, and one warn line says why, once per version.
    testing::internal::CaptureStderr();
    write("keys.json", "{\"keys\":[");
    EXPECT_TRUE(verifier.verify(new_token, now).ok);
    EXPECT_TRUE(verifier.verify(new_token, now).ok);
    const auto broken = testing::internal::GetCapturedStderr();
    EXPECT_EQ(std::count(broken.begin(), broken.end(), '\n'), 1) << broken;
    EXPECT_NE(broken.find("keeping the keys read before"), std::string::npos) << broken;
    EXPECT_NE(broken.find("not JSON"), std::string::npos) << broken;

    // A JWKS with no usable key is broken too; then the file vanishes; then it comes back by rename.
    testing::internal::CaptureStderr();
    write("keys.json", testkit::jwks({testkit::public_jwk(key("P-256").get(), "ec")}));
    EXPECT_TRUE(verifier.verify(new_token, now).ok);
    std::filesystem::remove(path);
    EXPECT_TRUE(verifier.verify(new_token, now).ok);
    const auto unusable = testing::internal::GetCapturedStderr();
    EXPECT_EQ(std::count(unusable.begin(), unusable.end(), '\n'), 2) << unusable;
    EXPECT_NE(unusable.find("no key in it fits EdDSA"), std::string::npos) << unusable;
    EXPECT_EQ(unusable.find(testkit::public_jwk(key("P-256").get(), "ec").substr(30, 20)), std::string::npos);

    const auto staged = write("keys.json.new", testkit::jwks({testkit::public_jwk(old_key.get(), "old")}));
    std::filesystem::rename(staged, path);
    EXPECT_TRUE(verifier.verify(old_token, now).ok);
    EXPECT_EQ(verifier.verify(new_token, now).reason, "unknown_kid");
}

TEST_F(JwtTest, VerifiesFromManyThreadsWhileTheJwksRotates) {
    const auto& a = key("P-256");
    const auto b = generate_key("P-256");
    const auto both = testkit::jwks({testkit::public_jwk(a.get(), "a"), testkit::public_jwk(b.get(), "b")});
    const auto only_a = testkit::jwks({testkit::public_jwk(a.get(), "a")});
    config_.jwt_jwks_file = write("keys.json", both);
    const JwtVerifier verifier(config_);
    const auto token = sign_jwt(header("ES256", ",\"kid\":\"a\""), claims(), a.get(), "");
    std::atomic<int> refused{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&] {
            for (int n = 0; n < 200; ++n)
                if (!verifier.verify(token, now).ok) ++refused;
        });
    for (int n = 0; n < 50; ++n) {
        const auto staged = write("staged.json", n % 2 ? both : only_a);
        std::filesystem::rename(staged, config_.jwt_jwks_file);
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(refused.load(), 0);
}

// --- start-up errors --------------------------------------------------------------------------------

TEST_F(JwtTest, NamesTheSettingAtFaultWhenTheKeysCannotBeUsed) {
    struct Row {
        std::string name;
        std::function<config::Config()> make;
        std::string setting;
        std::string problem_part;
    };
    const auto& rsa = key("RSA");
    const auto& ec = key("P-256");
    const auto secret = [&](std::string text, std::string alg = "") {
        return [=, this] {
            config_ = {};
            return with_secret(text, alg);
        };
    };
    const auto pem_text = [&](std::string text, std::string alg = "") {
        return [=, this] {
            config_ = {};
            config_.jwt_public_key_file = write("key.pem", text);
            config_.jwt_algorithm = alg;
            return config_;
        };
    };
    const auto jwks_text = [&](std::string text, std::string alg = "") {
        return [=, this] {
            config_ = {};
            config_.jwt_jwks_file = write("keys.json", text);
            config_.jwt_algorithm = alg;
            return config_;
        };
    };
    const auto missing = [&](std::string config::Config::*field) {
        return [=, this] {
            config_ = {};
            config_.*field = (dir_ / "absent").string();
            return config_;
        };
    };
    const std::vector<Row> rows = {
        {"no secret file", missing(&config::Config::jwt_secret_file), "jwt-secret-file", "No such file or directory"},
        {"no PEM file", missing(&config::Config::jwt_public_key_file), "jwt-public-key-file", "cannot read"},
        {"no JWKS file", missing(&config::Config::jwt_jwks_file), "jwt-jwks-file", "cannot read"},
        {"secret of 31 bytes", secret(secret32.substr(1) + "\n"), "jwt-secret-file", "31 bytes"},
        {"secret of 32 for HS384", secret(secret32, "HS384"), "jwt-secret-file", "at least 48"},
        {"empty secret", secret(""), "jwt-secret-file", "0 bytes"},
        {"secret for RS256", secret(secret64, "RS256"), "jwt-algorithm", "RS256 does not fit the HMAC secret"},
        {"private key PEM", pem_text(testkit::private_pem(ec.get())), "jwt-public-key-file", "private key"},
        {"private and public PEM", pem_text(testkit::private_pem(ec.get()) + testkit::public_pem(ec.get())),
         "jwt-public-key-file", "private key"},
        {"garbage PEM", pem_text("-----BEGIN PUBLIC KEY-----\nbm9wZQ==\n-----END PUBLIC KEY-----\n"),
         "jwt-public-key-file", "not a PEM public key"},
        {"RSA of 1024 bits", pem_text(testkit::public_pem(generate_key("RSA-1024").get())), "jwt-public-key-file",
         "1024 bits"},
        {"ES256 with RSA", pem_text(testkit::public_pem(rsa.get()), "ES256"), "jwt-algorithm",
         "ES256 does not fit the RSA key in jwt-public-key-file"},
        {"RS256 with P-256", pem_text(testkit::public_pem(ec.get()), "RS256"), "jwt-algorithm",
         "RS256 does not fit the EC P-256 key in jwt-public-key-file"},
        {"ES384 with P-256", pem_text(testkit::public_pem(ec.get()), "ES384"), "jwt-algorithm", "does not fit"},
        {"EdDSA with RSA", pem_text(testkit::public_pem(rsa.get()), "EdDSA"), "jwt-algorithm", "does not fit"},
        {"JWKS without keys", jwks_text("{\"keys\":[]}"), "jwt-jwks-file", "no usable key"},
        {"JWKS not JSON", jwks_text("keys"), "jwt-jwks-file", "not JSON"},
        {"JWKS without keys array", jwks_text("{\"keys\":{}}"), "jwt-jwks-file", "no \"keys\" array"},
        {"JWKS of encryption keys", jwks_text(R"({"keys":[{"kty":"oct","k":"AAAA","use":"enc"}]})"), "jwt-jwks-file",
         "use is not sig"},
        {"JWKS with a short oct key", jwks_text(testkit::jwks({testkit::oct_jwk("short", "s")})), "jwt-jwks-file",
         "5 bytes"},
        {"JWKS of mixed kinds, no algorithm",
         jwks_text(testkit::jwks({testkit::public_jwk(rsa.get(), "r"), testkit::public_jwk(ec.get(), "e")})),
         "jwt-jwks-file", "different algorithms (ES256, RS256)"},
        {"JWKS key off its curve",
         jwks_text(R"({"keys":[{"kty":"EC","crv":"P-256","x":")" + base64url(std::string(32, '\1')) + R"(","y":")" +
                   base64url(std::string(32, '\2')) + "\"}]}"),
         "jwt-jwks-file", "key 0 was left out"},
        {"JWKS of RSA keys for ES256", jwks_text(testkit::jwks({testkit::public_jwk(rsa.get(), "r")}), "ES256"),
         "jwt-jwks-file", "no key in it fits ES256"},
    };
    for (const auto& row : rows) {
        std::string problem;
        EXPECT_EQ(config_error(row.make(), &problem), row.setting) << row.name << ": " << problem;
        EXPECT_NE(problem.find(row.problem_part), std::string::npos) << row.name << ": " << problem;
    }
    // The secret file's one trailing newline (or CRLF) is not part of the secret; the rest is.
    for (const auto& ending : {"\n", "\r\n", ""}) {
        const JwtVerifier verifier(secret(secret32 + ending)());
        EXPECT_TRUE(verifier.verify(sign_jwt(header("HS256"), claims(), nullptr, secret32), now).ok) << ending;
    }
    const JwtVerifier two_newlines(secret(secret32 + "\n\n")());
    EXPECT_EQ(two_newlines.verify(sign_jwt(header("HS256"), claims(), nullptr, secret32), now).reason, "bad_signature");
}

}  // namespace
}  // namespace crudcast
