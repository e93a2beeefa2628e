// admission.hpp: the parts of a subscriber's admission that need no I/O: which topics a credential
// lets it have, and the per-client-address handshake rate. The JWT check is jwt_verifier.hpp, the
// question to the API itself forward_auth.hpp; the handshake path (gateway.cpp) puts them together.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace crudcast::gateway::auth {

// What a subscriber asked for: named topics, or every topic (`all`, no topic parameter).
struct TopicRequest {
    bool all = true;
    std::vector<std::string> topics;  // lower case, when !all
};

// What a credential allows: nullopt = every topic.
using AllowedTopics = std::optional<std::vector<std::string>>;

// "author, Book ,*" -> {"author", "book"} or nullopt when "*" is among them (every topic).
AllowedTopics parse_allowed_topics(std::string_view list);

// Strict (jwt): every asked topic must be allowed, and `all` only when everything is. Returns the
// first topic refused ("all" for a refused `all`), or "" when the request fits.
std::string refused_topic(const TopicRequest& request, const AllowedTopics& allowed);

// Narrowing (forward's X-Crudcast-Allow-Topics): the asked topics that are allowed, `all` becoming
// the allowed list. Empty when nothing is left (the handshake is then refused).
TopicRequest narrow(const TopicRequest& request, const AllowedTopics& allowed);

// A token bucket per client address: `rate` handshakes a second sustained, `burst` at once. Shared by
// every worker thread (one lock; handshakes are rare next to requests). Addresses idle long enough
// to be full again are forgotten, so the table holds only addresses that are handshaking now.
class HandshakeLimiter {
public:
    HandshakeLimiter(std::uint32_t rate, std::uint32_t burst) : rate_(rate), burst_(burst) {}
    // Takes one handshake for `address`; false when its bucket is empty (then `retry_after` is the
    // whole seconds until one is there again, at least 1).
    bool admit(std::string_view address, std::chrono::steady_clock::time_point now, unsigned* retry_after = nullptr);
    std::size_t tracked() const;
    // The most addresses tracked at once (about 100 bytes each).
    static constexpr std::size_t max_tracked = 100'000;

private:
    struct Bucket {
        double tokens = 0;
        std::chrono::steady_clock::time_point updated;
    };
    void forget_full(std::chrono::steady_clock::time_point now);

    const std::uint32_t rate_;
    const std::uint32_t burst_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Bucket> buckets_;
    std::chrono::steady_clock::time_point last_cleanup_{};
};

}  // namespace crudcast::gateway::auth
