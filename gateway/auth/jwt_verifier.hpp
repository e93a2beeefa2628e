// jwt_verifier.hpp: ws-auth jwt. Checks a subscriber's token against the one key (or JWKS) and the
// one algorithm the configuration fixes, then its claims: exp and nbf with jwt-leeway, iss, aud, and
// the topics claim that says what the holder may subscribe to. The handshake (gateway.cpp) asks.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "gateway/auth/admission.hpp"

namespace crudcast::gateway::auth {

struct JwtVerdict {
    bool ok = false;
    // When !ok, a stable label used as a metric label and in `ws=denied reason=...`:
    // "malformed", "algorithm", "unknown_kid", "bad_signature", "expired", "not_yet_valid",
    // "issuer", "audience", "no_topics_claim", "bad_topics_claim".
    std::string reason;
    std::string detail;    // one human line for the 401 body / debug log; NEVER contains the token
    AllowedTopics topics;  // when ok: nullopt = every topic ("*" in the claim, or no claim and not required)
    std::optional<std::chrono::system_clock::time_point> expires;  // `exp` (+ leeway), when the token has one
    std::string subject;  // `sub` when it is a string (for logs; cut to 128 bytes), else ""
};

class JwtVerifier {
public:
    // Reads the one key file the config names and fixes the algorithm. Throws
    // config::ConfigError(setting, problem) naming the setting, e.g.
    // ConfigError("jwt-secret-file", "cannot read /x: No such file or directory") or
    // ConfigError("jwt-algorithm", "RS256 does not fit the EC P-256 key in jwt-public-key-file").
    explicit JwtVerifier(const config::Config& config);
    ~JwtVerifier();
    JwtVerifier(const JwtVerifier&) = delete;
    JwtVerifier& operator=(const JwtVerifier&) = delete;

    // Thread-safe (called from several worker threads at once). With a JWKS, each call compares the
    // file's inode, size and mtime with the version read last and rereads it when they differ.
    JwtVerdict verify(std::string_view token, std::chrono::system_clock::time_point now) const;
    const std::string& algorithm() const;  // the fixed algorithm

    // Tokens longer than this are refused unread ("malformed").
    static constexpr std::size_t max_token_size = 8 * 1024;

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace crudcast::gateway::auth
