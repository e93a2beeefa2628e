// url_test.cpp: unit tests of common/url.hpp — how crudcast reads request targets, path segments,
// query parameters and absolute URLs through Boost.URL, and the lenient escape for targets a server
// has already accepted.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "common/url.hpp"

namespace {

namespace url = crudcast::url;
using Strings = std::vector<std::string>;

struct SegmentsCase {
    std::string target;
    std::optional<Strings> expected;  // nullopt: refused
};

void PrintTo(const SegmentsCase& c, std::ostream* out) { *out << '"' << c.target << '"'; }

class PathSegments : public ::testing::TestWithParam<SegmentsCase> {};

TEST_P(PathSegments, AreDecodedOneByOne) { EXPECT_EQ(url::path_segments(GetParam().target), GetParam().expected); }

INSTANTIATE_TEST_SUITE_P(
    Targets, PathSegments,
    ::testing::Values(SegmentsCase{"/a/b%20c?x=1", Strings{"a", "b c"}}, SegmentsCase{"/a%2Fb/c", Strings{"a/b", "c"}},
                      SegmentsCase{"/caf%C3%A9", Strings{"caf\xC3\xA9"}}, SegmentsCase{"/a%2bb", Strings{"a+b"}},
                      // A '+' is a plus in a path (only a query reads it as a space).
                      SegmentsCase{"/a+b", Strings{"a+b"}},
                      // Empty segments are kept, "." and ".." too; "/" alone has none.
                      SegmentsCase{"/a//b/", Strings{"a", "", "b", ""}}, SegmentsCase{"/", Strings{}},
                      SegmentsCase{"", Strings{}}, SegmentsCase{"/./a/..", Strings{".", "a", ".."}},
                      SegmentsCase{"/.//a", Strings{".", "", "a"}},
                      // A target starting with '/' is a path even with "//": no host is read from it.
                      SegmentsCase{"//api/x", Strings{"", "api", "x"}},
                      // Absolute form counts from the path; asterisk and authority forms are one bare segment.
                      SegmentsCase{"http://example.com:8080/api/x?y=/z", Strings{"api", "x"}},
                      SegmentsCase{"http://[::1]/a", Strings{"a"}}, SegmentsCase{"http://h?x=/a/b", Strings{}},
                      SegmentsCase{"*", Strings{"*"}}, SegmentsCase{"h:443", Strings{"h:443"}},
                      // A fragment (which a client should not send) ends the path.
                      SegmentsCase{"/a/b#c/d", Strings{"a", "b"}},
                      // Refused: bad escapes, bytes a URL cannot hold, an authority Boost.URL 1.81 would misread.
                      SegmentsCase{"/a/%zz", std::nullopt}, SegmentsCase{"/a/%4", std::nullopt},
                      SegmentsCase{"/a/%", std::nullopt}, SegmentsCase{"/a b", std::nullopt},
                      SegmentsCase{"/a\"b", std::nullopt}, SegmentsCase{"/\xC3\xA9", std::nullopt},
                      SegmentsCase{"/?f[a]=1", std::nullopt}, SegmentsCase{"http://h:x/a", std::nullopt},
                      SegmentsCase{"http://[::1]x", std::nullopt},
                      // No authority, so not read as a URL (Boost.URL 1.81 fails an assertion on "a:?").
                      SegmentsCase{"a:?", Strings{"a:"}}, SegmentsCase{"a:#b", Strings{"a:"}}));

// A target of plain characters is split without Boost.URL (the fast path); a fragment, which the origin
// form drops, sends the same target through Boost.URL: both readings must agree on every plain byte.
TEST(PathSegments, PlainTargetsReadTheSameWithAndWithoutBoostUrl) {
    const std::string plain =
        "abcxyzABCXYZ0189-._~!$&'()*+,;=:@";  // unreserved, sub-delims, ':' and '@': every plain byte but '/' '?'
    std::vector<std::string> targets = {"/",
                                        "//",
                                        "/a",
                                        "/a/",
                                        "//a//b/",
                                        "/./a",
                                        "/../a/..",
                                        "/a?",
                                        "/a?b/c?d=e",
                                        "/api/authors/1",
                                        "/api/v2/books/42?fields=name&x=a:b@c"};
    for (char c : plain) targets.push_back(std::string("/a") + c + "/" + c + "?q=" + c);
    for (const auto& target : targets) {
        SCOPED_TRACE(target);
        const auto fast = url::path_segments(target);
        ASSERT_TRUE(fast.has_value());
        EXPECT_EQ(fast, url::path_segments(target + "#fragment"));
    }
}

TEST(EscapeInvalid, KeepsWhatTheClientSentReadable) {
    const std::pair<std::string, std::string> cases[] = {{"/a/%zz", "/a/%25zz"},
                                                         {"/a/%41%4", "/a/%41%254"},
                                                         {"/a%", "/a%25"},
                                                         {"/a b", "/a%20b"},
                                                         {"/\xC3\xA9", "/%C3%A9"},
                                                         {"/a\"<>\\^`{|}", "/a%22%3C%3E%5C%5E%60%7B%7C%7D"},
                                                         {"/t\x01\x7f", "/t%01%7F"},
                                                         {"/?f[a]=1&x=+", "/?f%5Ba%5D=1&x=+"},
                                                         {"http://[::1]:80/[x]", "http://[::1]:80/%5Bx%5D"},
                                                         {"/a#b#c", "/a#b%23c"},
                                                         {"/a-b._~!$&'()*+,;=:@/?", "/a-b._~!$&'()*+,;=:@/?"},
                                                         {"", ""}};
    for (const auto& [target, escaped] : cases) {
        EXPECT_EQ(url::escape_invalid(target), escaped) << target;
        EXPECT_TRUE(url::path_segments(escaped).has_value()) << escaped;
    }
    // Decoding gives back the bytes the client sent.
    EXPECT_EQ(url::path_segments(url::escape_invalid("/a/%zz/b c/\xC3\xA9/%41")),
              (Strings{"a", "%zz", "b c", "\xC3\xA9", "A"}));
    EXPECT_EQ(url::path_segments(url::escape_invalid("/items?filter[name]=x")), Strings{"items"});
}

TEST(QueryValues, EveryValueOfTheKeyInOrder) {
    EXPECT_EQ(url::query_values("/ws?topic=a&x=1&topic=b", "topic"), (Strings{"a", "b"}));
    EXPECT_EQ(url::query_values("/ws?topic=a,b", "topic"), Strings{"a,b"});
    EXPECT_EQ(url::query_values("/ws?topic=a+b&topic=%2B&topic=c%20d", "topic"), (Strings{"a b", "+", "c d"}));
    EXPECT_EQ(url::query_values("/ws?t%6Fpic=x", "topic"), Strings{"x"});  // keys are decoded too
    EXPECT_EQ(url::query_values("/ws?topic&topic=", "topic"), (Strings{"", ""}));
    EXPECT_EQ(url::query_values("/ws?other=1", "topic"), Strings{});
    EXPECT_EQ(url::query_values("/ws", "topic"), Strings{});
    EXPECT_EQ(url::query_values("http://h/ws?topic=x", "topic"), Strings{"x"});
    EXPECT_EQ(url::query_values("*", "topic"), Strings{});
    EXPECT_EQ(url::query_values("/ws?topic=%zz", "topic"), std::nullopt);
    EXPECT_EQ(url::query_values("/ws?topic=[a]", "topic"), std::nullopt);
}

TEST(PercentDecode, RefusesMalformedEscapes) {
    EXPECT_EQ(url::percent_decode("a%20b%2F%c3%a9"), "a b/\xC3\xA9");
    EXPECT_EQ(url::percent_decode("a+b"), "a+b");
    EXPECT_EQ(url::percent_decode(""), "");
    for (const auto* bad : {"%zz", "%4", "%", "a%g1"}) EXPECT_EQ(url::percent_decode(bad), std::nullopt) << bad;
}

TEST(EncodeQueryValue, LeavesOnlyUnreservedBytes) {
    EXPECT_EQ(url::encode_query_value("Ab-9._~"), "Ab-9._~");
    EXPECT_EQ(url::encode_query_value("a b/\xC3\xA9,&=+%#"), "a%20b%2F%C3%A9%2C%26%3D%2B%25%23");
    EXPECT_EQ(url::query_values("/?t=" + url::encode_query_value("a b&c=+"), "t"), Strings{"a b&c=+"});
}

TEST(ParseUrl, SplitsAnAbsoluteUrl) {
    const auto full = url::parse_url("http://user:pw@[::1]:8080/a/b%20c?q=1#top");
    ASSERT_TRUE(full);
    EXPECT_EQ(full->scheme, "http");
    EXPECT_TRUE(full->has_userinfo);
    EXPECT_EQ(full->host, "::1");
    EXPECT_TRUE(full->ipv6);
    EXPECT_EQ(full->port, "8080");
    EXPECT_EQ(full->authority, "user:pw@[::1]:8080");
    EXPECT_EQ(full->path, "/a/b%20c");
    EXPECT_EQ(full->target, "/a/b%20c?q=1");
    EXPECT_TRUE(full->has_query);
    EXPECT_TRUE(full->has_fragment);

    const auto bare = url::parse_url("HTTP://app");
    ASSERT_TRUE(bare);
    EXPECT_EQ(bare->scheme, "HTTP");
    EXPECT_EQ(bare->host, "app");
    EXPECT_FALSE(bare->ipv6);
    EXPECT_EQ(bare->port, std::nullopt);
    EXPECT_EQ(bare->authority, "app");
    EXPECT_EQ(bare->target, "");
    EXPECT_FALSE(bare->has_userinfo || bare->has_query || bare->has_fragment);

    EXPECT_EQ(url::parse_url("http://h:/a")->port, "");
    EXPECT_EQ(url::parse_url("http:///a")->host, "");
    EXPECT_EQ(url::parse_url("ws://h?x=1")->target, "?x=1");
    EXPECT_EQ(url::parse_url("http://10.0.0.1:80")->host, "10.0.0.1");
    for (const auto* bad : {"http://h:x/a", "http://[::1]x", "http://[::1", "http://[zz]/", "http://[v1.x]/",
                            "http://a b/", "http://h/%zz", "mailto:a@b", "/a", "a:?", ""})
        EXPECT_EQ(url::parse_url(bad), std::nullopt) << bad;
}

TEST(ParseAuthority, TellsWhichPartIsWrong) {
    ASSERT_TRUE(url::parse_authority("[::1]:80"));
    EXPECT_TRUE(url::parse_authority("[::1]:80")->ipv6);
    EXPECT_EQ(url::parse_authority("[::1]:80")->port, "80");
    EXPECT_TRUE(url::parse_authority("u@h")->has_userinfo);
    EXPECT_EQ(url::parse_authority("h")->host, "h");
    for (const auto* bad : {"h:x", "[::1", "[zz]", "[::1]x", "a|b", "[v1.x]"})
        EXPECT_EQ(url::parse_authority(bad), std::nullopt) << bad;
}

}  // namespace
