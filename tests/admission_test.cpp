// admission_test.cpp: the pure parts of a subscriber's admission (gateway/auth/admission.hpp): the
// topics a credential allows, strict (jwt) and narrowing (forward), and the per-address handshake bucket.
#include "gateway/auth/admission.hpp"

#include <gtest/gtest.h>

#include <string>

namespace crudcast::gateway::auth {
namespace {

using namespace std::chrono_literals;
using Topics = std::vector<std::string>;

TEST(AllowedTopics, AreALowerCaseListOrEveryTopic) {
    EXPECT_EQ(parse_allowed_topics("author, Book ,author"), AllowedTopics(Topics{"author", "book"}));
    EXPECT_EQ(parse_allowed_topics("author,*"), std::nullopt);
    EXPECT_EQ(parse_allowed_topics(""), AllowedTopics(Topics{}));  // nothing allowed, not everything
    EXPECT_EQ(parse_allowed_topics(" , ,"), AllowedTopics(Topics{}));
}

TEST(RefusedTopic, EveryAskedTopicMustBeAllowedAndAllOnlyWhenEverythingIs) {
    const AllowedTopics authors = Topics{"author"};
    EXPECT_EQ(refused_topic({false, {"author"}}, authors), "");
    EXPECT_EQ(refused_topic({false, {"author", "book"}}, authors), "book");
    EXPECT_EQ(refused_topic({true, {}}, authors), "all");
    EXPECT_EQ(refused_topic({true, {}}, std::nullopt), "");
    EXPECT_EQ(refused_topic({false, {"book"}}, AllowedTopics(Topics{})), "book");
}

TEST(Narrow, KeepsTheAllowedTopicsAndTurnsAllIntoTheList) {
    const AllowedTopics allowed = Topics{"author", "book"};
    const auto all = narrow({true, {}}, allowed);
    EXPECT_FALSE(all.all);
    EXPECT_EQ(all.topics, (Topics{"author", "book"}));
    EXPECT_EQ(narrow({false, {"book", "shelf"}}, allowed).topics, (Topics{"book"}));
    EXPECT_TRUE(narrow({false, {"shelf"}}, allowed).topics.empty());
    EXPECT_TRUE(narrow({true, {}}, std::nullopt).all);
}

TEST(HandshakeLimiter, ABurstThenTheRateAndRetryAfterInWholeSeconds) {
    HandshakeLimiter limiter(2, 3);  // 2 a second, 3 at once
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    unsigned retry = 0;
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.admit("10.0.0.1", t0)) << i;
    EXPECT_FALSE(limiter.admit("10.0.0.1", t0, &retry));
    EXPECT_EQ(retry, 1u);
    EXPECT_TRUE(limiter.admit("10.0.0.2", t0));           // another address has its own bucket
    EXPECT_FALSE(limiter.admit("10.0.0.1", t0 + 400ms));  // 0.8 of a handshake refilled
    EXPECT_TRUE(limiter.admit("10.0.0.1", t0 + 600ms));   // 1.2 (the refused one took nothing)
    EXPECT_FALSE(limiter.admit("10.0.0.1", t0 + 600ms));
}

TEST(HandshakeLimiter, ForgetsAddressesWhoseBucketIsFullAgain) {
    HandshakeLimiter limiter(10, 10);
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    EXPECT_TRUE(limiter.admit("10.0.0.1", t0));
    EXPECT_TRUE(limiter.admit("10.0.0.2", t0 + 500ms));
    EXPECT_EQ(limiter.tracked(), 2u);
    EXPECT_TRUE(limiter.admit("10.0.0.3", t0 + 1100ms));  // 10.0.0.1 has been full again since t0 + 1s
    EXPECT_EQ(limiter.tracked(), 2u);
}

TEST(HandshakeLimiter, RateZeroAdmitsEverything) {
    HandshakeLimiter limiter(0, 1);
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    for (int i = 0; i < 100; ++i) EXPECT_TRUE(limiter.admit("10.0.0.1", t0));
    EXPECT_EQ(limiter.tracked(), 0u);
}

}  // namespace
}  // namespace crudcast::gateway::auth
