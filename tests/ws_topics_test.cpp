// ws_topics_test.cpp: which topics a subscriber asked for in its ws-path query string
// (topics_from_query, through Boost.URL), table-driven.
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gateway/ws/websocket_session.hpp"

namespace {

using crudcast::gateway::topics_from_query;
using Topics = std::vector<std::string>;

struct Row {
    const char* target;
    std::optional<Topics> topics;
};

TEST(WsTopics, TheQueryStringNamesTheTopics) {
    const std::vector<Row> rows = {
        {"/ws", Topics{"all"}},
        {"/ws?", Topics{"all"}},
        {"/ws?topic=author", Topics{"author"}},
        {"/ws?topic=author,book", Topics{"author", "book"}},
        {"/ws?topic=author&topic=book", Topics{"author", "book"}},
        {"/ws?topic=a,b&topic=c", Topics{"a", "b", "c"}},
        {"/ws?topic=author&topic=author", Topics{"author"}},
        {"/ws?topic=Author", Topics{"author"}},
        {"/ws?topic=all", Topics{"all"}},
        {"/ws?topic=ALL", Topics{"all"}},
        {"/ws?topic=author,all", Topics{"all"}},
        {"/ws?topic=", Topics{"all"}},
        {"/ws?topic", Topics{"all"}},
        {"/ws?topic=,,", Topics{"all"}},
        {"/ws?other=author", Topics{"all"}},
        {"/ws?topics=author", Topics{"all"}},
        {"/ws?x=1&topic=author&y=2", Topics{"author"}},
        {"/ws?topic=%61uthor", Topics{"author"}},
        {"/ws?%74opic=author", Topics{"author"}},
        {"/ws?topic=author%2Cbook", Topics{"author", "book"}},
        {"/ws?topic=%20author%20,%20book", Topics{"author", "book"}},
        {"/ws?topic=+author+,+book+", Topics{"author", "book"}},
        {"/ws?topic=blog+post", Topics{"blog post"}},
        {"/ws?topic=blog%2Bpost", Topics{"blog+post"}},
        {"/ws?topic=%C3%A9t%C3%A9", Topics{"\xc3\xa9t\xc3\xa9"}},
        {"/ws?topic=a=b", Topics{"a=b"}},
        // Not a valid query (a bad % escape, a byte RFC 3986 does not allow): no topics can be read,
        // and reading it as "no filter" would widen the subscription to everything.
        {"/ws?topic=%zz", std::nullopt},
        {"/ws?topic=%4", std::nullopt},
        {"/ws?topic=a%", std::nullopt},
        {"/ws?topic=a|b", std::nullopt},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.target);
        EXPECT_EQ(topics_from_query(row.target), row.topics);
    }
}

TEST(WsTopics, TopicNamesAreBoundedUtf8WithoutControls) {
    using crudcast::gateway::topic_name_problem;
    EXPECT_EQ(topic_name_problem("author"), "");
    EXPECT_EQ(topic_name_problem("blog post"), "");
    EXPECT_EQ(topic_name_problem("\xc3\xa9t\xc3\xa9"), "");
    EXPECT_EQ(topic_name_problem("\xc2\xa0"), "");  // U+00A0, just past the C1 controls
    EXPECT_EQ(topic_name_problem(std::string(128, 'a')), "");
    EXPECT_EQ(topic_name_problem(std::string(129, 'a')), "is longer than 128 bytes");
    for (const char* bad : {"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80"})
        EXPECT_EQ(topic_name_problem(bad), "is not valid UTF-8") << bad;
    for (const std::string& bad : {std::string("a\x01"), std::string("\x7f"), std::string("\xc2\x80"),
                                   std::string("\xc2\x9f"), std::string("a\nb"), std::string(1, '\0')})
        EXPECT_EQ(topic_name_problem(bad), "contains a control character");
}

TEST(WsTopics, SubscriptionRefusalCountsDistinctTopics) {
    using crudcast::gateway::subscription_refusal;
    EXPECT_EQ(subscription_refusal("/ws?topic=a,b", 2), "");
    EXPECT_EQ(subscription_refusal("/ws?topic=a,B,b,A", 2), "");  // two distinct after lower-casing
    EXPECT_EQ(subscription_refusal("/ws?topic=a,b,c", 2), "3 topics: a subscriber may name at most 2 (ws-max-topics)");
    EXPECT_EQ(subscription_refusal("/ws?topic=a,b,all", 1), "");  // "all" alone
    EXPECT_EQ(subscription_refusal("/ws?topic=a,%01", 8), "topic 2 contains a control character");
    EXPECT_NE(subscription_refusal("/ws?topic=%zz", 8), "");
}

}  // namespace
