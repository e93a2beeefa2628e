// fuzz_jwt.cpp: ws-auth jwt's reading of what a subscriber or a key file hands it. Input: one selector
// byte, then the text. 0: a token through JwtVerifier::verify (HS256 over a fixed secret, which the
// fuzzer cannot forge: every token must be refused, with one of the stable reasons and a one-line
// detail). 1: base64url (text that decodes must be the only spelling of its bytes). 2: a payload through
// the claim checks (topics come out lower case and non-empty). 3: a JWKS (what it accepts fits its
// algorithm).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/auth/jwks.hpp"
#include "gateway/auth/jwt_claims.hpp"
#include "gateway/auth/jwt_codec.hpp"
#include "gateway/auth/jwt_verifier.hpp"
#include "tests/fuzz/http_feed.hpp"

namespace {

using namespace crudcast::gateway::auth;

// The secret file, which lives as long as the process (the verifier reads it once, at start).
crudcast::config::Config secret_config() {
    static char name[] = "/tmp/crudcast-fuzz-jwt-XXXXXX";
    const int fd = mkstemp(name);
    CRUDCAST_FUZZ_CHECK(fd >= 0);
    CRUDCAST_FUZZ_CHECK(write(fd, "0123456789abcdef0123456789abcdef\n", 33) == 33);
    close(fd);
    std::atexit([] { std::remove(name); });
    crudcast::config::Config config;
    config.ws_auth = crudcast::config::WsAuth::jwt;
    config.jwt_secret_file = name;
    return config;
}

const JwtVerifier& verifier() {
    static const JwtVerifier instance(secret_config());
    return instance;
}

bool known_reason(std::string_view reason) {
    constexpr std::array<std::string_view, 10> reasons = {
        "malformed",     "algorithm", "unknown_kid", "bad_signature",   "expired",
        "not_yet_valid", "issuer",    "audience",    "no_topics_claim", "bad_topics_claim"};
    return std::ranges::find(reasons, reason) != reasons.end();
}

void check_refusal(const JwtVerdict& verdict) {
    CRUDCAST_FUZZ_CHECK(!verdict.ok && known_reason(verdict.reason));
    CRUDCAST_FUZZ_CHECK(!verdict.detail.empty() && verdict.detail.find('\n') == std::string::npos);
}

std::string encode(std::string_view bytes) {
    constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t bits = 0;
    int count = 0;
    for (const char c : bytes) {
        bits = (bits << 8) | static_cast<unsigned char>(c);
        count += 8;
        while (count >= 6) out += alphabet[(bits >> (count -= 6)) & 63];
    }
    if (count > 0) out += alphabet[(bits << (6 - count)) & 63];
    return out;
}

void claims(std::string_view text) {
    rapidjson::Document payload;
    if (!parse_json_object(text, payload).empty()) return;
    const ClaimRules rules{.leeway = std::chrono::seconds(30), .issuer = "i", .audience = "a"};
    JwtVerdict verdict;
    if (!check_claims(payload, rules, std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000)),
                      verdict)) {
        check_refusal(verdict);
        return;
    }
    if (!verdict.topics) return;
    for (const auto& topic : *verdict.topics) {
        CRUDCAST_FUZZ_CHECK(!topic.empty() && topic != "*");
        CRUDCAST_FUZZ_CHECK(std::ranges::none_of(topic, [](char c) { return c >= 'A' && c <= 'Z'; }));
    }
}

void jwks(std::string_view text) {
    std::string algorithm;
    std::vector<JwtKey> keys;
    if (!read_jwks(text, algorithm, keys).empty()) return;
    const Algorithm* spec = find_algorithm(algorithm);
    CRUDCAST_FUZZ_CHECK(spec != nullptr && !keys.empty());
    for (const auto& key : keys) CRUDCAST_FUZZ_CHECK(misfit(*spec, key).empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 4) {
        case 0: check_refusal(verifier().verify(text, std::chrono::system_clock::now())); break;
        case 1:
            if (const auto bytes = base64url_decode(text)) CRUDCAST_FUZZ_CHECK(encode(*bytes) == text);
            break;
        case 2: claims(text); break;
        case 3: jwks(text); break;
    }
    return 0;
}
