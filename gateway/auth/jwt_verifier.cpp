// jwt_verifier.cpp: see jwt_verifier.hpp. The order of the checks is the point: the header's alg is
// compared with the fixed algorithm before any key is touched, the signature is checked before the
// payload is parsed, and the claims are read only from a payload whose signature held.
#include "gateway/auth/jwt_verifier.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "common/log.hpp"
#include "gateway/auth/jwks.hpp"
#include "gateway/auth/jwt_claims.hpp"
#include "gateway/auth/jwt_codec.hpp"
#include "gateway/auth/jwt_keys.hpp"

namespace crudcast::gateway::auth {
namespace {

using Keys = std::vector<JwtKey>;

// Which version of the JWKS file was read last; a rewrite changes at least one of these.
struct FileVersion {
    int error = 0;  // errno of a failed stat
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    long long mtime_seconds = 0;
    long mtime_nanoseconds = 0;
    bool operator==(const FileVersion&) const = default;
};

FileVersion version_of(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return FileVersion{.error = errno};
    return {.device = st.st_dev,
            .inode = st.st_ino,
            .size = st.st_size,
            .mtime_seconds = st.st_mtim.tv_sec,
            .mtime_nanoseconds = st.st_mtim.tv_nsec};
}

JwtVerdict deny(std::string reason, std::string detail) {
    JwtVerdict verdict;
    verdict.reason = std::move(reason);
    verdict.detail = std::move(detail);
    return verdict;
}

// The token's alg for a message: only names crudcast knows are repeated, since the rest is the
// sender's text.
std::string shown_alg(std::string_view alg) {
    if (alg == "none" || find_algorithm(alg)) return "\"" + std::string(alg) + "\"";
    return "one crudcast does not know";
}

const rapidjson::Value* member(const rapidjson::Value& object, const char* name) {
    const auto found = object.FindMember(name);
    return found == object.MemberEnd() ? nullptr : &found->value;
}

}  // namespace

struct JwtVerifier::State {
    ClaimRules rules;
    std::string algorithm;
    const Algorithm* spec = nullptr;
    std::string jwks_path;  // "" = one key read at start, never reread

    std::mutex mutex;  // guards keys and seen
    std::shared_ptr<const Keys> keys;
    FileVersion seen;

    std::shared_ptr<const Keys> current_keys();
    void reread(const FileVersion& version);
    void load_single_key(JwtKey key, const std::string& setting);
    // ok, or refused with "unknown_kid" or "bad_signature".
    JwtVerdict check_signature(const rapidjson::Value* kid_member, std::string_view signing_input,
                               std::string_view signature);
};

void JwtVerifier::State::load_single_key(JwtKey key, const std::string& setting) {
    if (algorithm.empty()) algorithm = default_algorithm(key.kind);
    spec = find_algorithm(algorithm);
    if (!spec) throw config::ConfigError("jwt-algorithm", algorithm + " is not an algorithm crudcast knows");
    if (auto problem = misfit(*spec, key); !problem.empty()) {
        // A secret of the right kind but too short is the secret's fault, anything else the algorithm's.
        const bool short_secret = key.kind == KeyKind::hmac && spec->scheme == Algorithm::Scheme::hmac;
        throw config::ConfigError(short_secret ? setting : "jwt-algorithm", problem + " in " + setting);
    }
    keys = std::make_shared<const Keys>(Keys{std::move(key)});
}

std::shared_ptr<const Keys> JwtVerifier::State::current_keys() {
    if (jwks_path.empty()) return keys;  // never replaced: no lock needed
    const auto version = version_of(jwks_path);
    std::lock_guard lock(mutex);
    if (version != seen) {
        seen = version;
        reread(version);
    }
    return keys;
}

// Called with the mutex held, once per new version of the file: a version that cannot be used
// keeps the keys read before and says so once.
void JwtVerifier::State::reread(const FileVersion& version) {
    std::string problem;
    Keys fresh;
    if (version.error != 0) {
        problem = std::string("cannot read it: ") + std::strerror(version.error);
    } else {
        try {
            std::string fixed = algorithm;
            problem = read_jwks(read_key_file("jwt-jwks-file", jwks_path), fixed, fresh);
        } catch (const config::ConfigError& e) {
            problem = e.problem;
        }
    }
    if (!problem.empty()) {
        log::write(log::LogLevel::warn, "jwt-jwks-file changed but cannot be used; keeping the keys read before",
                   {{"file", jwks_path}, {"problem", problem}});
        return;
    }
    const auto count = static_cast<std::uint64_t>(fresh.size());
    keys = std::make_shared<const Keys>(std::move(fresh));
    log::write(log::LogLevel::info, "jwt-jwks-file reread", {{"file", jwks_path}, {"keys", count}});
}

JwtVerifier::JwtVerifier(const config::Config& config) : state_(std::make_unique<State>()) {
    State& s = *state_;
    s.rules = {.leeway = config.jwt_leeway,
               .issuer = config.jwt_issuer,
               .audience = config.jwt_audience,
               .topics_claim = config.jwt_topics_claim,
               .require_topics = config.jwt_require_topics};
    s.algorithm = config.jwt_algorithm;
    if (!config.jwt_jwks_file.empty()) {
        s.jwks_path = config.jwt_jwks_file;
        s.seen = version_of(s.jwks_path);
        Keys keys;
        const auto text = read_key_file("jwt-jwks-file", s.jwks_path);
        if (auto problem = read_jwks(text, s.algorithm, keys); !problem.empty())
            throw config::ConfigError("jwt-jwks-file", s.jwks_path + ": " + problem);
        s.spec = find_algorithm(s.algorithm);
        s.keys = std::make_shared<const Keys>(std::move(keys));
    } else if (!config.jwt_secret_file.empty()) {
        s.load_single_key(read_secret_key(config.jwt_secret_file), "jwt-secret-file");
    } else if (!config.jwt_public_key_file.empty()) {
        s.load_single_key(read_public_key(config.jwt_public_key_file), "jwt-public-key-file");
    } else {
        throw config::ConfigError("ws-auth", "jwt needs one of jwt-secret-file, jwt-public-key-file, jwt-jwks-file");
    }
}

JwtVerdict JwtVerifier::State::check_signature(const rapidjson::Value* kid_member, std::string_view signing_input,
                                               std::string_view signature) {
    const bool has_kid = kid_member != nullptr;
    const std::string_view kid =
        has_kid ? std::string_view(kid_member->GetString(), kid_member->GetStringLength()) : std::string_view();
    const auto current = current_keys();
    const JwtKey* only = current->size() == 1 ? &current->front() : nullptr;
    bool any_key = false;
    for (const auto& key : *current) {
        // One key (a secret, a PEM, a JWKS of one key) serves a token without kid; with a JWKS the
        // token's kid picks the key, and a token with a kid never falls back to another key.
        const bool chosen = has_kid ? (jwks_path.empty() || key.kid == kid) : &key == only;
        if (!chosen) continue;
        any_key = true;
        if (verify_signature(*spec, key, signing_input, signature)) {
            JwtVerdict verdict;
            verdict.ok = true;
            return verdict;
        }
    }
    if (!any_key)
        return deny("unknown_kid", has_kid ? "no key in jwt-jwks-file has the token's kid"
                                           : "the token has no kid, and jwt-jwks-file holds more than one key");
    return deny("bad_signature", "the token's signature does not verify");
}

JwtVerifier::~JwtVerifier() = default;

const std::string& JwtVerifier::algorithm() const { return state_->algorithm; }

JwtVerdict JwtVerifier::verify(std::string_view token, std::chrono::system_clock::time_point now) const {
    if (token.size() > max_token_size) return deny("malformed", "the token is longer than 8 KiB");
    const auto first_dot = token.find('.');
    const auto second_dot = token.find('.', first_dot == std::string_view::npos ? token.size() : first_dot + 1);
    if (second_dot == std::string_view::npos || token.find('.', second_dot + 1) != std::string_view::npos)
        return deny("malformed", "the token is not three base64url parts joined by dots");
    const auto header_text = base64url_decode(token.substr(0, first_dot));
    if (!header_text) return deny("malformed", "the token's header is not base64url");
    rapidjson::Document header;
    if (auto problem = parse_json_object(*header_text, header); !problem.empty())
        return deny("malformed", "the token's header is " + problem);
    const auto* alg = member(header, "alg");
    if (!alg || !alg->IsString()) return deny("malformed", "the token's header has no alg");
    const std::string_view alg_name(alg->GetString(), alg->GetStringLength());
    if (alg_name != state_->algorithm)
        return deny("algorithm",
                    "the token's alg is " + shown_alg(alg_name) + "; only " + state_->algorithm + " is accepted");
    if (member(header, "crit"))
        return deny("malformed", "the token's header has crit, and crudcast understands no JWS extension");
    const auto* kid_member = member(header, "kid");
    if (kid_member && !kid_member->IsString()) return deny("malformed", "the token's kid is not a string");
    const auto signature = base64url_decode(token.substr(second_dot + 1));
    const auto payload_text = base64url_decode(token.substr(first_dot + 1, second_dot - first_dot - 1));
    if (!signature || !payload_text) return deny("malformed", "the token's payload or signature is not base64url");
    if (auto refused = state_->check_signature(kid_member, token.substr(0, second_dot), *signature); !refused.ok)
        return refused;

    rapidjson::Document payload;
    if (auto problem = parse_json_object(*payload_text, payload); !problem.empty())
        return deny("malformed", "the token's payload is " + problem);
    JwtVerdict verdict;
    check_claims(payload, state_->rules, now, verdict);
    return verdict;
}

}  // namespace crudcast::gateway::auth
