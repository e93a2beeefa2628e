// header_rules_test.cpp: table-driven tests of the pure header and target rules (proxy/header_rules)
// and of the wire serializer (proxy/wire).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/header_rules.hpp"
#include "proxy/wire.hpp"

namespace crudcast::proxy {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

http::fields make_fields(const Headers& headers) {
    http::fields f;
    for (const auto& [k, v] : headers) f.insert(k, v);
    return f;
}

Headers to_list(const http::fields& f) {
    Headers out;
    for (const auto& field : f) out.emplace_back(std::string(field.name_string()), std::string(field.value()));
    return out;
}

struct HopCase {
    const char* name;
    Headers in;
    Headers expected;
    bool keep_upgrade = false;
};

class HopByHop : public ::testing::TestWithParam<HopCase> {};

TEST_P(HopByHop, StripsExactlyTheHopByHopHeaders) {
    auto f = make_fields(GetParam().in);
    strip_hop_by_hop(f, GetParam().keep_upgrade);
    EXPECT_EQ(to_list(f), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Table, HopByHop,
    ::testing::Values(HopCase{"standard_set",
                              {{"Host", "a"},
                               {"Connection", "keep-alive"},
                               {"Keep-Alive", "timeout=5"},
                               {"TE", "trailers"},
                               {"Trailer", "X-Sum"},
                               {"Upgrade", "h2c"},
                               {"Proxy-Connection", "keep-alive"},
                               {"Accept", "*/*"}},
                              {{"Host", "a"}, {"Accept", "*/*"}}},
                      HopCase{"named_in_connection",
                              {{"Connection", "close, X-Secret"}, {"X-Secret", "s"}, {"x-other", "o"}},
                              {{"x-other", "o"}}},
                      HopCase{
                          "named_in_two_connection_headers",
                          {{"Connection", "X-A"}, {"X-A", "1"}, {"X-Keep", "k"}, {"Connection", "x-b"}, {"X-B", "2"}},
                          {{"X-Keep", "k"}}},
                      HopCase{"framing_never_dropped_on_client_say_so",
                              {{"Connection", "Content-Length, Host"}, {"Host", "h"}, {"Content-Length", "3"}},
                              {{"Host", "h"}, {"Content-Length", "3"}}},
                      HopCase{"transfer_encoding_kept_as_framing",
                              {{"Transfer-Encoding", "chunked"}, {"X-Y", "z"}},
                              {{"Transfer-Encoding", "chunked"}, {"X-Y", "z"}}},
                      HopCase{"case_and_repeats_preserved",
                              {{"x-CamelCase", "1"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}},
                              {{"x-CamelCase", "1"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}}},
                      HopCase{"upgrade_kept_for_tunnels",
                              {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}, {"Sec-WebSocket-Key", "k"}},
                              {{"Upgrade", "websocket"}, {"Sec-WebSocket-Key", "k"}, {"Connection", "upgrade"}},
                              true}),
    [](const auto& info) { return std::string(info.param.name); });

ForwardContext trusted(std::string_view peer, std::string_view rid = "r") {
    return {.client_ip = peer, .upstream_host = "127.0.0.1:3000", .request_id = rid, .trusted_peer = true};
}
ForwardContext untrusted(std::string_view peer) {
    return {.client_ip = peer, .upstream_host = "127.0.0.1:3000", .request_id = "r", .trusted_peer = false};
}

TEST(Forwarding, TrustedPeerChainIsJoinedInOrderAndThePeerAppended) {
    auto f = make_fields({{"Host", "api.example"}, {"X-Forwarded-For", "1.2.3.4"}, {"X-Forwarded-For", "5.6.7.8"}});
    apply_forwarding_headers(f, trusted("127.0.0.1", "rid-1"));
    EXPECT_EQ(f["X-Forwarded-For"], "1.2.3.4, 5.6.7.8, 127.0.0.1");
    EXPECT_EQ(f.count("X-Forwarded-For"), 1u);
    EXPECT_EQ(f["X-Forwarded-Proto"], "http");
    EXPECT_EQ(f["X-Forwarded-Host"], "api.example");
    EXPECT_EQ(f["Host"], "api.example");
    EXPECT_EQ(f["X-Request-ID"], "rid-1");
}

TEST(Forwarding, TrustedPeerKeepsOneProtoHostAndForwarded) {
    auto f = make_fields({{"Host", "internal:8080"},
                          {"X-Forwarded-Proto", "https"},
                          {"X-Forwarded-Host", "shop.example"},
                          {"Forwarded", "for=192.0.2.60;proto=https"}});
    apply_forwarding_headers(f, trusted("::1"));
    EXPECT_EQ(f["X-Forwarded-For"], "::1");
    EXPECT_EQ(f["X-Forwarded-Proto"], "https");
    EXPECT_EQ(f["X-Forwarded-Host"], "shop.example");
    EXPECT_EQ(f["Forwarded"], "for=192.0.2.60;proto=https");
}

TEST(Forwarding, TrustedPeerRepeatedOrEmptyProtoAndHostAreReplaced) {
    auto f = make_fields({{"Host", "internal:8080"},
                          {"X-Forwarded-Proto", "https"},
                          {"X-Forwarded-Proto", "http"},
                          {"X-Forwarded-Host", "a.example"},
                          {"X-Forwarded-Host", "b.example"}});
    apply_forwarding_headers(f, trusted("10.0.0.2"));
    EXPECT_EQ(to_list(f), (Headers{{"Host", "internal:8080"},
                                   {"X-Forwarded-For", "10.0.0.2"},
                                   {"X-Forwarded-Proto", "http"},
                                   {"X-Forwarded-Host", "internal:8080"},
                                   {"X-Request-ID", "r"}}));
    auto g = make_fields({{"Host", "h"}, {"X-Forwarded-Proto", " "}});
    apply_forwarding_headers(g, trusted("10.0.0.2"));
    EXPECT_EQ(g["X-Forwarded-Proto"], "http");
}

TEST(Forwarding, UntrustedPeerClaimsAreReplacedWithCrudcastsOwn) {
    auto f = make_fields({{"Host", "api.example"},
                          {"X-Forwarded-For", "6.6.6.6"},
                          {"X-Forwarded-For", "7.7.7.7"},
                          {"X-Forwarded-Proto", "https"},
                          {"X-Forwarded-Host", "bank.example"},
                          {"Forwarded", "for=6.6.6.6"}});
    apply_forwarding_headers(f, untrusted("203.0.113.9"));
    EXPECT_EQ(to_list(f), (Headers{{"Host", "api.example"},
                                   {"X-Forwarded-For", "203.0.113.9"},
                                   {"X-Forwarded-Proto", "http"},
                                   {"X-Forwarded-Host", "api.example"},
                                   {"X-Request-ID", "r"}}));
    // Without a Host there is no X-Forwarded-Host at all, not the client's.
    auto g = make_fields({{"X-Forwarded-Host", "bank.example"}});
    apply_forwarding_headers(g, untrusted("203.0.113.9"));
    EXPECT_EQ(g.count("X-Forwarded-Host"), 0u);
    EXPECT_EQ(g["Host"], "127.0.0.1:3000");
}

TEST(Forwarding, ReplacesHostWhenNotPreservedOrMissing) {
    auto f = make_fields({{"Host", "public.example"}});
    auto ctx = trusted("10.0.0.1");
    ctx.preserve_host = false;
    apply_forwarding_headers(f, ctx);
    EXPECT_EQ(f["Host"], "127.0.0.1:3000");
    EXPECT_EQ(f["X-Forwarded-Host"], "public.example");

    auto g = make_fields({});
    apply_forwarding_headers(g, trusted("10.0.0.1"));
    EXPECT_EQ(g["Host"], "127.0.0.1:3000");
    EXPECT_EQ(g.count("X-Forwarded-Host"), 0u);
}

struct IdCase {
    std::string id;
    bool ok;
};

class RequestIds : public ::testing::TestWithParam<IdCase> {};

TEST_P(RequestIds, AcceptsOnlySafeIds) { EXPECT_EQ(is_acceptable_request_id(GetParam().id), GetParam().ok); }

INSTANTIATE_TEST_SUITE_P(Table, RequestIds,
                         ::testing::Values(IdCase{"abc-123", true},
                                           IdCase{"7f9c2ba4-e88f-11ee-a951-0242ac120002", true},
                                           IdCase{"trace:1/2+3=4@x~y_z.", true}, IdCase{"", false},
                                           IdCase{"has space", false}, IdCase{"quote\"", false},
                                           IdCase{"new\nline", false}, IdCase{std::string(128, 'a'), true},
                                           IdCase{std::string(129, 'a'), false}));

TEST(RequestIds, GeneratedIdsAreHexAndDistinct) {
    const auto a = generate_request_id();
    const auto b = generate_request_id();
    EXPECT_EQ(a.size(), 32u);
    EXPECT_NE(a, b);
    EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_TRUE(is_acceptable_request_id(a));
}

struct TargetCase {
    const char* target;
    const char* base;
    bool forward;
    const char* expected;  // target when forwarded
};

class Targets : public ::testing::TestWithParam<TargetCase> {};

TEST_P(Targets, Decide) {
    const auto& c = GetParam();
    auto d = decide_target(c.target, c.base, {"127.0.0.1:8080", "backend:3000"});
    EXPECT_EQ(d.kind == TargetDecision::forward, c.forward) << d.reason;
    if (c.forward) {
        EXPECT_EQ(d.target, c.expected);
    } else {
        EXPECT_FALSE(d.reason.empty());
    }
}

INSTANTIATE_TEST_SUITE_P(
    Table, Targets,
    ::testing::Values(
        TargetCase{"/api/authors?x=%20&y=%zz", "", true, "/api/authors?x=%20&y=%zz"},
        TargetCase{"/a//b/./c/../d", "", true, "/a//b/./c/../d"},
        TargetCase{"/caf%C3%A9;v=1?q=a+b", "", true, "/caf%C3%A9;v=1?q=a+b"}, TargetCase{"/?", "", true, "/?"},
        TargetCase{"/x", "/base", true, "/base/x"}, TargetCase{"*", "", true, "*"},
        TargetCase{"*", "/base", true, "/base"}, TargetCase{"http://127.0.0.1:8080/p?q", "", true, "/p?q"},
        TargetCase{"HTTP://backend:3000", "", true, "/"}, TargetCase{"http://backend:3000?q=1", "/b", true, "/b/?q=1"},
        TargetCase{"http://example.com/", "", false, ""}, TargetCase{"http://127.0.0.1:8081/", "", false, ""},
        TargetCase{"https://evil.example/x", "", false, ""}, TargetCase{"example.com:443", "", false, ""},
        TargetCase{"", "", false, ""},
        // absolute-form: the scheme in any case, the rest byte for byte, the authority exact
        TargetCase{"hTTpS://127.0.0.1:8080/x", "", true, "/x"},
        TargetCase{"http://127.0.0.1:8080/a%2F/b?x=%20&y=%zz#f", "", true, "/a%2F/b?x=%20&y=%zz#f"},
        TargetCase{"http://127.0.0.1:8080//p", "", true, "//p"}, TargetCase{"http://BACKEND:3000/", "", true, "/"},
        TargetCase{"http://user@127.0.0.1:8080/", "", false, ""}, TargetCase{"http://127.0.0.1:8080:/", "", false, ""},
        TargetCase{"http://127.0.0.1/", "", false, ""}, TargetCase{"ftp://127.0.0.1:8080/", "", false, ""},
        TargetCase{"ws://127.0.0.1:8080/", "", false, ""}, TargetCase{"http:/127.0.0.1:8080/", "", false, ""},
        TargetCase{"http:///p", "", false, ""}, TargetCase{"http://", "", false, ""}));

TEST(Targets, RejectionsSayWhy) {
    const std::vector<std::string> own{"127.0.0.1:8080"};
    const std::string not_a_form = "request target is not origin-form or absolute-form";
    const std::string other_host = "absolute-form target names another host; crudcast is not a forward proxy";
    EXPECT_EQ(decide_target("", "", own).reason, "empty request target");
    EXPECT_EQ(decide_target("http://", "", own).reason, not_a_form);
    EXPECT_EQ(decide_target("ftp://127.0.0.1:8080/", "", own).reason, not_a_form);
    EXPECT_EQ(decide_target("example.com:443", "", own).reason, not_a_form);
    EXPECT_EQ(decide_target("http:///p", "", own).reason, other_host);
    EXPECT_EQ(decide_target("https://evil.example/x", "", own).reason, other_host);
    EXPECT_EQ(decide_target("http://127.0.0.1:8080/", "", {""}).reason, other_host) << "an empty entry matches nothing";
}

// ---- the response head crudcast passes on (forwarded responses, declined upgrades) ----

http::response<http::buffer_body> upstream_head(unsigned version, const Headers& headers) {
    http::response<http::buffer_body> res{http::status::ok, version};
    for (const auto& [k, v] : headers) res.insert(k, v);
    return res;
}

TEST(ResponseHead, HopByHopOutRequestIdInOwnVersionAndConnection) {
    auto res = upstream_head(10, {{"Connection", "keep-alive, X-Internal"},
                                  {"X-Internal", "1"},
                                  {"Keep-Alive", "timeout=5"},
                                  {"Content-Length", "3"}});
    prepare_response_head(res, {.request_id = "rid-1", .keep_alive = true, .own_version = true});
    EXPECT_EQ(res.version(), 11u);
    EXPECT_EQ(to_list(res.base()), (Headers{{"Content-Length", "3"}, {"X-Request-ID", "rid-1"}}));
}

TEST(ResponseHead, TheUpstreamsRequestIdStays) {
    auto res = upstream_head(11, {{"X-Request-ID", "upstream-id"}});
    prepare_response_head(res, {.request_id = "rid-1", .keep_alive = true});
    EXPECT_EQ(res.base()["X-Request-ID"], "upstream-id");
    EXPECT_EQ(res.base().count("X-Request-ID"), 1u);
}

TEST(ResponseHead, FramingAndConnectionAsCrudcastDecides) {
    auto eof_delimited = upstream_head(11, {{"Content-Type", "text/plain"}});
    prepare_response_head(eof_delimited,
                          {.request_id = "r", .keep_alive = false, .own_version = true, .chunked = true});
    EXPECT_EQ(to_list(eof_delimited.base()), (Headers{{"Content-Type", "text/plain"},
                                                      {"X-Request-ID", "r"},
                                                      {"Transfer-Encoding", "chunked"},
                                                      {"Connection", "close"}}));
    auto for_http10 = upstream_head(11, {{"Transfer-Encoding", "chunked"}});
    prepare_response_head(for_http10, {.request_id = "r", .keep_alive = false, .own_version = true, .chunked = false});
    EXPECT_EQ(for_http10.base().count(http::field::transfer_encoding), 0u);
    // A declined upgrade: the version and framing as received, the connection closed.
    auto declined = upstream_head(10, {{"Content-Length", "0"}});
    prepare_response_head(declined, {.request_id = "r", .keep_alive = false});
    EXPECT_EQ(declined.version(), 10u);
    EXPECT_EQ(to_list(declined.base()), (Headers{{"Content-Length", "0"}, {"X-Request-ID", "r"}}));
}

// X-Crudcast-Seq is crudcast's: the upstream's own goes, and a cross-origin response exposes it.
TEST(ResponseHead, TheSeqHeaderIsCrudcastsAndExposedToCrossOriginReaders) {
    struct Row {
        const char* why;
        Headers upstream;
        bool expose;
        Headers want;
    };
    const Row rows[] = {
        {"no CORS: nothing added", {{"Content-Length", "2"}}, true, {{"Content-Length", "2"}}},
        {"CORS: the header is created",
         {{"Access-Control-Allow-Origin", "*"}},
         true,
         {{"Access-Control-Allow-Origin", "*"}, {"Access-Control-Expose-Headers", "X-Crudcast-Seq"}}},
        {"an existing list is kept and appended to",
         {{"Access-Control-Allow-Origin", "https://app.example"}, {"Access-Control-Expose-Headers", "X-Total-Count"}},
         true,
         {{"Access-Control-Allow-Origin", "https://app.example"},
          {"Access-Control-Expose-Headers", "X-Total-Count, X-Crudcast-Seq"}}},
        {"already named, in another case: not twice",
         {{"Access-Control-Allow-Origin", "*"}, {"Access-Control-Expose-Headers", "ETag, x-crudcast-seq"}},
         true,
         {{"Access-Control-Allow-Origin", "*"}, {"Access-Control-Expose-Headers", "ETag, x-crudcast-seq"}}},
        {"a longer name is another token",
         {{"Access-Control-Allow-Origin", "*"}, {"Access-Control-Expose-Headers", "X-Crudcast-Seq-Old"}},
         true,
         {{"Access-Control-Allow-Origin", "*"},
          {"Access-Control-Expose-Headers", "X-Crudcast-Seq-Old, X-Crudcast-Seq"}}},
        {"several lines become one list",
         {{"Access-Control-Allow-Origin", "*"},
          {"Access-Control-Expose-Headers", "ETag"},
          {"Access-Control-Expose-Headers", " X-Total-Count "}},
         true,
         {{"Access-Control-Allow-Origin", "*"},
          {"Access-Control-Expose-Headers", "ETag, X-Total-Count, X-Crudcast-Seq"}}},
        {"named on a second line: not twice",
         {{"Access-Control-Allow-Origin", "*"},
          {"Access-Control-Expose-Headers", "ETag"},
          {"Access-Control-Expose-Headers", "X-Crudcast-Seq"}},
         true,
         {{"Access-Control-Allow-Origin", "*"},
          {"Access-Control-Expose-Headers", "ETag"},
          {"Access-Control-Expose-Headers", "X-Crudcast-Seq"}}},
        {"no seq on this response: nothing exposed",
         {{"Access-Control-Allow-Origin", "*"}},
         false,
         {{"Access-Control-Allow-Origin", "*"}}},
        {"the upstream's own seq lines go, whatever their case",
         {{"X-Crudcast-Seq", "1"}, {"Content-Length", "2"}, {"x-crudcast-seq", "2"}},
         true,
         {{"Content-Length", "2"}}},
        {"and go without CORS exposure too", {{"X-CRUDCAST-SEQ", "1"}}, false, {}},
    };
    for (const auto& row : rows) {
        auto res = upstream_head(11, row.upstream);
        prepare_response_head(res, {.request_id = "r", .keep_alive = true, .expose_seq = row.expose});
        res.erase("X-Request-ID");
        res.erase(http::field::connection);
        EXPECT_EQ(to_list(res.base()), row.want) << row.why;
    }
}

TEST(ResponseHead, SeqHeaderLineFitsAnyPosition) {
    char line[seq_line_max];
    EXPECT_EQ(std::string(line, seq_header_line(1764690372000001, line)), "X-Crudcast-Seq: 1764690372000001\r\n");
    EXPECT_EQ(std::string(line, seq_header_line(0, line)), "X-Crudcast-Seq: 0\r\n");
    const auto longest = seq_header_line(UINT64_MAX, line);
    EXPECT_EQ(longest, seq_line_max);
    EXPECT_EQ(std::string(line, longest), "X-Crudcast-Seq: 18446744073709551615\r\n");
}

TEST(Upgrade, NeedsConnectionUpgradeAndUpgradeHeader) {
    EXPECT_TRUE(is_upgrade_request(make_fields({{"Connection", "keep-alive, Upgrade"}, {"Upgrade", "websocket"}})));
    EXPECT_FALSE(is_upgrade_request(make_fields({{"Upgrade", "websocket"}})));
    EXPECT_FALSE(is_upgrade_request(make_fields({{"Connection", "upgrade"}})));
    EXPECT_TRUE(
        is_upgrade_request(make_fields({{"Connection", "close"}, {"Upgrade", "x"}, {"connection", "UPGRADE"}})));
}

TEST(Idempotency, Rfc9110Methods) {
    for (const char* m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) EXPECT_TRUE(is_idempotent(m)) << m;
    for (const char* m : {"POST", "PATCH", "PURGE", "get"}) EXPECT_FALSE(is_idempotent(m)) << m;
}

TEST(Wire, RequestHeadIsByteExact) {
    http::request_header<> h;
    h.method_string("PURGE");
    h.target("/a%2Fb?x=1");
    h.version(11);
    h.insert("x-Lower", "v");
    h.insert("Host", "h");
    std::string out;
    serialize_head(h, out);
    EXPECT_EQ(out, "PURGE /a%2Fb?x=1 HTTP/1.1\r\nx-Lower: v\r\nHost: h\r\n\r\n");
}

TEST(Wire, ResponseHeadKeepsTheReasonPhrase) {
    http::response_header<> h;
    h.result(418);
    h.reason("Short And Stout");
    h.version(11);
    h.insert("Content-Length", "0");
    std::string out;
    serialize_head(h, out);
    EXPECT_EQ(out, "HTTP/1.1 418 Short And Stout\r\nContent-Length: 0\r\n\r\n");
}

TEST(Wire, ChunkSizeLines) {
    char buf[20];
    EXPECT_EQ(std::string(buf, chunk_size_line(1, buf)), "1\r\n");
    EXPECT_EQ(std::string(buf, chunk_size_line(65536, buf)), "10000\r\n");
    EXPECT_EQ(std::string(buf, chunk_size_line(0xabcdef, buf)), "abcdef\r\n");
}

}  // namespace
}  // namespace crudcast::proxy
