// jwt_claims.hpp: what a verified token's payload says: whether it is valid now (exp, nbf with the
// leeway), for whom (iss, aud), and which topics its holder may subscribe to. No I/O, no keys.
#pragma once

#include <chrono>
#include <string>

#include <rapidjson/document.h>

#include "gateway/auth/jwt_verifier.hpp"

namespace crudcast::gateway::auth {

struct ClaimRules {
    std::chrono::milliseconds leeway{0};
    std::string issuer;    // "" = not checked
    std::string audience;  // "" = not checked
    std::string topics_claim = "topics";
    bool require_topics = false;
};

// Checks `payload` (a JSON object) at `now`. On success sets verdict.ok, topics, expires and subject;
// otherwise reason and detail. Time edges: refused from exp + leeway on, and before nbf - leeway.
bool check_claims(const rapidjson::Value& payload, const ClaimRules& rules, std::chrono::system_clock::time_point now,
                  JwtVerdict& verdict);

}  // namespace crudcast::gateway::auth
