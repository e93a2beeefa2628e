// event_mapper_test.cpp: table-driven tests of the event contract (../EVENTS.md): model and id
// inference, singularisation, payload pointer, id typing, reasons for no event, route rules, and
// the serialized event and its WebSocket frame.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "bus/event.hpp"
#include "config/config.hpp"
#include "gateway/events/event_mapper.hpp"

namespace {

using crudcast::bus::Event;
using crudcast::config::Config;
using crudcast::config::RouteRule;
using crudcast::gateway::EventMapper;
using crudcast::gateway::Exchange;
using crudcast::gateway::MapResult;
using crudcast::gateway::NoEventReason;
using crudcast::gateway::singularize;

// What a test expects: an event (model, id, many, payload) or the reason for none.
struct Expect {
    std::string model{};  // "" when `reason` is set
    std::string id = "null";
    std::string reason{};  // "" = an event
    bool many = false;
    std::string payload{};  // "" = do not check
};

struct Case {
    std::string method = "POST";
    std::string target{};
    unsigned status = 201;
    std::string content_type = "application/json";
    std::string body{};
    Expect expect{};
};

void PrintTo(const Case& c, std::ostream* out) {
    *out << c.method << ' ' << c.target << ' ' << c.status << " [" << c.content_type << "] " << c.body;
}

// A reason by its name on the wire; "" when there is none (an event was made, or might be).
std::string text(const std::optional<NoEventReason>& reason) {
    return reason ? std::string(crudcast::gateway::name_of(*reason)) : "";
}

MapResult run(const EventMapper& mapper, const Case& c, bool too_large = false) {
    return mapper.map(Exchange{.method = c.method,
                               .target = c.target,
                               .status = c.status,
                               .content_type = c.content_type,
                               .body = c.body,
                               .body_too_large = too_large});
}

void check(const MapResult& result, const Case& c) {
    SCOPED_TRACE(c.method + " " + c.target + " -> " + (result.reason ? text(result.reason) : "event") +
                 " detail: " + result.detail);
    if (!c.expect.reason.empty()) {
        EXPECT_FALSE(result.event.has_value());
        EXPECT_EQ(text(result.reason), c.expect.reason);
        return;
    }
    ASSERT_TRUE(result.event.has_value()) << "reason: " << text(result.reason);
    EXPECT_EQ(text(result.reason), "");
    EXPECT_EQ(result.event->model, c.expect.model);
    EXPECT_EQ(result.event->method, c.method);
    EXPECT_EQ(result.event->id_json, c.expect.id);
    EXPECT_EQ(result.event->many, c.expect.many);
    if (!c.expect.payload.empty()) {
        EXPECT_EQ(result.event->payload_json, c.expect.payload);
    }
    EXPECT_EQ(result.event->ts, 0);  // the bus stamps these
    EXPECT_EQ(result.event->seq, 0u);
}

Expect event(std::string model, std::string id = "null") {
    return Expect{.model = std::move(model), .id = std::move(id)};
}
Expect none(std::string reason) { return Expect{.reason = std::move(reason)}; }

// RouteRule with every member defaulted, so a designated initializer can name only what a row needs
// (g++ warns about omitted members that have no default of their own).
struct Rule {
    std::string path{};
    std::optional<std::string> model{};
    std::optional<std::string> id{};
    std::optional<std::string> payload_pointer{};
    std::optional<std::vector<std::string>> methods{};
    bool publish = true;

    operator RouteRule() const {  // NOLINT(google-explicit-constructor): rows read as rules
        RouteRule rule;
        rule.path = path;
        rule.model = model;
        rule.id = id;
        rule.payload_pointer = payload_pointer;
        rule.methods = methods;
        rule.publish = publish;
        return rule;
    }
};

// --- model and id from the URL ----------------------------------------------------------------

Config inference_config() {
    Config config;
    config.path_prefixes = {"api", "", "internal/rest"};  // "" (from "/") is no prefix at all
    config.models = {{"octopi", "octopus"}, {"Staff", "staff-member"}};
    return config;
}

class Inference : public ::testing::TestWithParam<Case> {};

TEST_P(Inference, ModelAndIdFromThePath) {
    const EventMapper mapper(inference_config());
    check(run(mapper, GetParam()), GetParam());
}

Case path(std::string target, Expect expect) { return Case{.target = std::move(target), .expect = std::move(expect)}; }

INSTANTIATE_TEST_SUITE_P(
    Paths, Inference,
    ::testing::Values(
        // EVENTS.md's own examples.
        path("/api/authors", event("author")), path("/api/v1/authors/42", event("author", "42")),
        path("/authors/42/books", event("book")), path("/authors/42/books/7", event("book", "7")),
        // Prefixes and versions, in any order and case; a partial prefix is not one.
        path("/API/V2/authors/42", event("author", "42")), path("/v1/api/authors", event("author")),
        path("/api/v1/v2/things", event("thing")), path("/internal/rest/widgets/5", event("widget", "5")),
        path("/internal/widgets", event("internal", "\"widgets\"")), path("/v10/items/1", event("item", "1")),
        path("/api/v1.2/items", event("v1.2", "\"items\"")),
        // Slashes.
        path("/api/authors/", event("author")), path("//api///authors//42//", event("author", "42")),
        path("/api/v1/authors/42/books/7/reviews", event("review")),
        // Query, fragment, absolute form.
        path("/api/authors/42?expand=books", event("author", "42")), path("/api/authors?next=/a/b/c", event("author")),
        path("/api/authors/42#top", event("author", "42")),
        path("http://example.com:8080/api/authors/42", event("author", "42")),
        // Percent-encoding: decoded per segment, so %2F stays inside its segment.
        path("/api/files/a%2Fb", event("file", "\"a/b\"")), path("/api/my%20items/1", event("my item", "1")),
        path("/api/authors/caf%C3%A9", event("author", "\"caf\xC3\xA9\"")),
        path("/api/authors/%34%32", event("author", "42")),
        path("/api/authors/a%22b%5C", event("author", R"("a\"b\\")")),
        path("/api/authors/%FF", event("author", R"("\ufffd")")), path("/api/authors/%zz", event("author", "\"%zz\"")),
        path("/api/authors/tab%09", event("author", R"("tab\t")")),
        // Id typing.
        path("/api/authors/550e8400-e29b-41d4-a716-446655440000",
             event("author", "\"550e8400-e29b-41d4-a716-446655440000\"")),
        path("/api/articles/hello-world", event("article", "\"hello-world\"")),
        path("/api/authors/9223372036854775807", event("author", "9223372036854775807")),
        path("/api/authors/9223372036854775808", event("author", "\"9223372036854775808\"")),
        path("/api/authors/123456789012345678901234567890", event("author", "\"123456789012345678901234567890\"")),
        path("/api/authors/007", event("author", "\"007\"")), path("/api/authors/0", event("author", "0")),
        path("/api/authors/-5", event("author", "\"-5\"")), path("/api/authors/+5", event("author", "\"+5\"")),
        path("/api/authors/1e3", event("author", "\"1e3\"")),
        // Singularisation, case, irregulars (built in and from config.models).
        path("/api/Authors", event("author")), path("/api/categories", event("category")),
        path("/api/boxes/1", event("box", "1")), path("/api/people/3", event("person", "3")),
        path("/api/children", event("child")), path("/api/classes", event("class")),
        path("/api/matches", event("match")), path("/api/wishes", event("wish")), path("/api/heroes", event("hero")),
        path("/api/status", event("status")), path("/api/statuses/9", event("status", "9")),
        path("/api/addresses", event("address")), path("/api/analyses", event("analysis")),
        path("/api/indices", event("index")), path("/api/series/3", event("series", "3")),
        path("/api/news", event("news")), path("/api/sheep", event("sheep")), path("/api/data", event("data")),
        path("/api/octopi/1", event("octopus", "1")), path("/api/STAFF", event("staff-member")),
        path("/api/blog-posts", event("blog-post")), path("/api/sales-people", event("sales-person")),
        path("/api/sizes", event("size")), path("/api/quizzes", event("quiz")), path("/api/movies", event("movie")),
        // No collection at all.
        path("/", none("no-model")), path("", none("no-model")), path("/api", none("no-model")),
        path("/api/v1", none("no-model")), path("/api/v1/", none("no-model")), path("//api//", none("no-model")),
        path("/?x=1", none("no-model")),
        // "all" is the reserved topic.
        path("/api/all", none("reserved")), path("/api/ALL/1", none("reserved")), path("/alls", none("reserved")),
        path("/authors/1/all", none("reserved"))));

TEST(Inference, PrefixesDefaultToApiOnly) {
    const EventMapper mapper{Config{}};
    check(run(mapper, path("/api/v3/books/1", {})), path("/api/v3/books/1", event("book", "1")));
    check(run(mapper, path("/rest/books", {})), path("/rest/books", event("rest", "\"books\"")));
}

TEST(Inference, ReservedExplainsItself) {
    const EventMapper mapper{Config{}};
    const auto result = run(mapper, path("/api/all", {}));
    EXPECT_EQ(text(result.reason), "reserved");
    EXPECT_NE(result.detail.find("\"all\""), std::string::npos) << result.detail;
}

TEST(Singularize, Words) {
    const std::vector<std::pair<std::string, std::string>> irregular{{"Cacti", "Cactus"}, {"data", "datum"}};
    const std::pair<std::string, std::string> cases[] = {
        {"authors", "author"},
        {"categories", "category"},
        {"pies", "pie"},
        {"ties", "tie"},
        {"classes", "class"},
        {"boxes", "box"},
        {"matches", "match"},
        {"wishes", "wish"},
        {"buzzes", "buzz"},
        {"prizes", "prize"},
        {"heroes", "hero"},
        {"toes", "toe"},
        {"shoes", "shoe"},
        {"people", "person"},
        {"men", "man"},
        {"women", "woman"},
        {"mice", "mouse"},
        {"geese", "goose"},
        {"feet", "foot"},
        {"teeth", "tooth"},
        {"species", "species"},
        {"status", "status"},
        {"campus", "campus"},
        {"analysis", "analysis"},
        {"class", "class"},
        {"staff", "staff"},
        {"s", "s"},
        {"", ""},
        {"cacti", "cactus"},
        {"DATA", "datum"},
        {"user_addresses", "user_address"},
        {"Blog-Posts", "blog-post"},
        {"courses", "course"},
        {"buses", "bus"},
        {"caches", "cache"},
    };
    for (const auto& [plural, singular] : cases) EXPECT_EQ(singularize(plural, irregular), singular) << plural;
    EXPECT_EQ(singularize("data"), "data");  // without the override
}

// --- payload, id from the payload, many --------------------------------------------------------

struct PayloadCase {
    std::string pointer{};
    Case exchange{};
    std::string detail_contains{};  // "" = detail must be empty
};

void PrintTo(const PayloadCase& c, std::ostream* out) {
    *out << "pointer " << c.pointer << ": ";
    PrintTo(c.exchange, out);
}

class Payloads : public ::testing::TestWithParam<PayloadCase> {};

TEST_P(Payloads, ComeFromTheBodyAtThePointer) {
    const auto& c = GetParam();
    Config config;
    config.payload_pointer = c.pointer;
    const auto result = run(EventMapper(config), c.exchange);
    check(result, c.exchange);
    if (c.detail_contains.empty()) {
        EXPECT_EQ(result.detail, "");
    } else {
        EXPECT_NE(result.detail.find(c.detail_contains), std::string::npos) << result.detail;
    }
}

Case body(std::string target, std::string json, Expect expect) {
    return Case{.target = std::move(target), .body = std::move(json), .expect = std::move(expect)};
}

Expect with(Expect expect, std::string payload, bool many = false) {
    expect.payload = std::move(payload);
    expect.many = many;
    return expect;
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, Payloads,
    ::testing::Values(
        // flarchitect's envelope.
        PayloadCase{"/value", body("/api/authors", R"({"value": {"id": 42, "name": "Ada"}, "status_code": 200})",
                                   with(event("author", "42"), R"({"id":42,"name":"Ada"})"))},
        PayloadCase{"/value", body("/api/authors", R"({"value": [{"id": 1}, {"id": 2}], "status_code": 200})",
                                   with(event("author"), R"([{"id":1},{"id":2}])", true))},
        PayloadCase{"/value/0",
                    body("/api/authors", R"({"value": [{"id": 1}]})", with(event("author", "1"), R"({"id":1})"))},
        PayloadCase{"/value", body("/api/authors/5", R"({"value": null})", with(event("author", "5"), "null"))},
        PayloadCase{"/a~1b/c~0d", body("/api/x", R"({"a/b": {"c~d": 5}})", with(event("x"), "5"))},
        PayloadCase{"/value", body("/api/n", R"({"value": {"x": 0.1, "big": 12345678901234567890, "neg": -1e-7}})",
                                   with(event("n"), R"({"x":0.1,"big":12345678901234567890,"neg":-1e-7})"))},
        PayloadCase{"/value", body("/api/u", "{\"value\": \"caf\xC3\xA9 \\u00e9\"}",
                                   with(event("u"), "\"caf\xC3\xA9 \xC3\xA9\""))},
        // A pointer that does not resolve falls back to the whole body, and says so.
        PayloadCase{"/value",
                    body("/api/authors", R"({"data": {"id": 3}})", with(event("author"), R"({"data": {"id": 3}})")),
                    "did not resolve"},
        PayloadCase{"/value", body("/api/authors", R"([1, 2])", with(event("author"), "[1, 2]", true)), "\"/value\""},
        PayloadCase{"/value/9", body("/api/authors", R"({"value": []})", with(event("author"), R"({"value": []})")),
                    "did not resolve"},
        // Empty body: a null payload, whatever the pointer.
        PayloadCase{"/value", Case{.target = "/api/authors/3",
                                   .status = 204,
                                   .content_type = "",
                                   .expect = with(event("author", "3"), "null")}},
        PayloadCase{"", Case{.target = "/api/authors/3",
                             .content_type = "text/plain",
                             .body = " \r\n",
                             .expect = with(event("author", "3"), "null")}},
        // No pointer: the body's own bytes, trimmed.
        PayloadCase{"", body("/api/authors", " \n{\"id\": 1,  \"tags\" : [1, 2]}\r\n",
                             with(event("author", "1"), "{\"id\": 1,  \"tags\" : [1, 2]}"))},
        // The id from the payload keeps its JSON type; only strings and numbers are ids.
        PayloadCase{"", body("/api/authors", R"({"id": "abc"})", event("author", "\"abc\""))},
        PayloadCase{"", body("/api/authors", R"({"id": 1.5})", event("author", "1.5"))},
        PayloadCase{"", body("/api/authors", R"({"id": -3})", event("author", "-3"))},
        PayloadCase{"", body("/api/authors", R"({"id": "a\"b\u0001"})", event("author", R"("a\"b\u0001")"))},
        PayloadCase{"", body("/api/authors", R"({"name": "x"})", event("author"))},
        PayloadCase{"", body("/api/authors", R"({"id": null})", event("author"))},
        PayloadCase{"", body("/api/authors", R"({"id": {"a": 1}})", event("author"))},
        PayloadCase{"", body("/api/authors", R"({"id": [1]})", event("author"))},
        PayloadCase{"", body("/api/authors", R"({"id": true})", event("author"))},
        PayloadCase{"", body("/api/authors", R"([{"id": 1}, {"id": 2}])", with(event("author"), "", true))},
        PayloadCase{"", body("/api/authors", R"([])", with(event("author"), "[]", true))},
        PayloadCase{"", body("/api/authors", R"("text")", with(event("author"), "\"text\""))},
        PayloadCase{"", body("/api/authors", "7", with(event("author"), "7"))},
        // An id in the URL wins over the payload's.
        PayloadCase{"", Case{.method = "PUT",
                             .target = "/api/authors/7",
                             .status = 200,
                             .body = R"({"id": 8})",
                             .expect = event("author", "7")}}));

TEST(Payloads, IdFieldIsConfigurable) {
    Config config;
    config.id_field = "uuid";
    const EventMapper mapper(config);
    const auto c = body("/api/authors", R"({"id": 3, "uuid": "u-1"})", event("author", "\"u-1\""));
    check(run(mapper, c), c);
}

// --- reasons: content type, status, method, size, JSON ----------------------------------------

struct ReasonCase {
    std::string name;
    Case exchange;
};

class Reasons : public ::testing::TestWithParam<ReasonCase> {};

Config reason_config() {
    Config config;
    config.max_event_bytes = 64;
    return config;
}

TEST_P(Reasons, DecideWhetherThereIsAnEvent) {
    check(run(EventMapper(reason_config()), GetParam().exchange), GetParam().exchange);
}

Case typed(std::string content_type, Expect expect) {
    return Case{.target = "/api/authors",
                .content_type = std::move(content_type),
                .body = R"({"id": 1})",
                .expect = std::move(expect)};
}

Case status(unsigned code, Expect expect, std::string json = R"({"id": 1})") {
    return Case{.target = "/api/authors", .status = code, .body = std::move(json), .expect = std::move(expect)};
}

Case method(std::string name, Expect expect) {
    return Case{.method = std::move(name), .target = "/api/authors/1", .status = 200, .expect = std::move(expect)};
}

Case json(std::string text, Expect expect) {
    return Case{.target = "/api/authors", .body = std::move(text), .expect = std::move(expect)};
}

INSTANTIATE_TEST_SUITE_P(
    Table, Reasons,
    ::testing::Values(
        ReasonCase{"Json", typed("application/json", event("author", "1"))},
        ReasonCase{"JsonCharset", typed("application/json; charset=utf-8", event("author", "1"))},
        ReasonCase{"JsonUpperCase", typed("Application/JSON;Charset=UTF-8", event("author", "1"))},
        ReasonCase{"JsonSpaces", typed(" application/json ;charset=utf-8", event("author", "1"))},
        ReasonCase{"VendorJson", typed("application/vnd.api+json", event("author", "1"))},
        ReasonCase{"ProblemJson", typed("application/problem+json", event("author", "1"))},
        ReasonCase{"TextJson", typed("text/json", none("content-type"))},
        ReasonCase{"Html", typed("text/html; charset=utf-8", none("content-type"))},
        ReasonCase{"NoType", typed("", none("content-type"))},
        ReasonCase{"Jsonp", typed("application/jsonp", none("content-type"))},
        ReasonCase{"BarePlusJson", typed("application/+json", none("content-type"))},
        ReasonCase{"NoSlashPlusJson", typed("vnd+json", none("content-type"))},
        ReasonCase{"Status199", status(199, none("status"))},
        ReasonCase{"Status200", status(200, event("author", "1"))},
        ReasonCase{"Status204Empty", status(204, with(event("author"), "null"), "")},
        ReasonCase{"Status299", status(299, event("author", "1"))},
        ReasonCase{"Status300", status(300, none("status"))}, ReasonCase{"Status304", status(304, none("status"), "")},
        ReasonCase{"Status404", status(404, none("status"))}, ReasonCase{"Status500", status(500, none("status"))},
        ReasonCase{"Post", method("POST", event("author", "1"))},
        ReasonCase{"Put", method("PUT", event("author", "1"))},
        ReasonCase{"Patch", method("PATCH", event("author", "1"))},
        ReasonCase{"Delete", method("DELETE", event("author", "1"))},
        ReasonCase{"GetIsOffByDefault", method("GET", none("method"))},
        ReasonCase{"Head", method("HEAD", none("method"))}, ReasonCase{"Options", method("OPTIONS", none("method"))},
        ReasonCase{"MethodsAreCaseSensitive", method("post", none("method"))},
        ReasonCase{"MethodBeforeModel", Case{.method = "GET", .target = "/", .expect = none("method")}},
        ReasonCase{"TooLarge", json(R"({"id": 1, "pad": ")" + std::string(45, 'x') + "\"}", none("too-large"))},
        ReasonCase{"AtTheLimit", json(R"({"id": 1, "pad": ")" + std::string(44, 'x') + "\"}", event("author", "1"))},
        ReasonCase{"Unclosed", json("{", none("invalid-json"))},
        ReasonCase{"TrailingGarbage", json(R"({"a": 1} x)", none("invalid-json"))},
        ReasonCase{"TwoValues", json("1 2", none("invalid-json"))},
        // Found by tests/fuzz/fuzz_event_mapper: RapidJSON ends the text at a NUL byte, so the bytes after
        // it went to subscribers raw (not JSON, not UTF-8). No JSON text holds a raw NUL.
        ReasonCase{"NulThenGarbage", json(std::string("{\"id\": 1}\0\x93 x", 13), none("invalid-json"))},
        ReasonCase{"NulInString", json(std::string("{\"id\": \"a\0b\"}", 13), none("invalid-json"))},
        ReasonCase{"NaN", json("NaN", none("invalid-json"))},
        ReasonCase{"SingleQuotes", json("{'a': 1}", none("invalid-json"))},
        ReasonCase{"InvalidUtf8", json("\"\xff\"", none("invalid-json"))},
        // Found by tests/fuzz/fuzz_event_mapper: RapidJSON skipped these bytes; they went into the payload.
        ReasonCase{"ByteOrderMarkAfterWhitespace", json("\n\xEF\xBB\xBF{}", none("invalid-json"))},
        ReasonCase{"TwoByteOrderMarks", json("\xEF\xBB\xBF\xEF\xBB\xBF{}", none("invalid-json"))},
        ReasonCase{"PartOfAByteOrderMark", json("\xBB{}", none("invalid-json"))},
        ReasonCase{"ByteOrderMarkIsDropped", json("\xEF\xBB\xBF {}", with(event("author"), "{}"))}),
    [](const auto& info) { return info.param.name; });

// The access line, the log, /metrics' reason label and /api/stats all take these names from one table;
// dashboards and the README's list read them, so they never change by accident.
TEST(Reasons, NamesOnTheWireStayAsTheyAre) {
    std::vector<std::string> names;
    for (const auto& row : crudcast::gateway::no_event_reasons) names.emplace_back(row.name);
    EXPECT_EQ(names, (std::vector<std::string>{"method", "status", "content-type", "invalid-json", "too-large", "rule",
                                               "no-model", "reserved", "never-publish", "other"}));
    EXPECT_EQ(crudcast::gateway::name_of(NoEventReason::content_type), "content-type");
    EXPECT_EQ(crudcast::gateway::name_of(NoEventReason::no_model), "no-model");
}

TEST(Reasons, GetPublishesWhenConfigured) {
    Config config;
    config.publish_methods = {"GET", "POST"};
    const EventMapper mapper(config);
    check(run(mapper, method("GET", {})), method("GET", event("author", "1")));
    check(run(mapper, method("DELETE", {})), method("DELETE", none("method")));
}

TEST(Reasons, BodyTooLargeFlag) {
    const auto c = json(R"({"id": 1})", none("too-large"));
    check(run(EventMapper(Config{}), c, true), c);
}

TEST(Reasons, DeepNestingIsRefusedNotRecursed) {
    Config config;
    config.payload_pointer = "/value";
    const EventMapper mapper(config);
    const auto deep = std::string(100'000, '[') + std::string(100'000, ']');
    const auto refused = run(mapper, json(deep, {}));
    EXPECT_EQ(text(refused.reason), "invalid-json");
    EXPECT_NE(refused.detail.find("nested deeper"), std::string::npos) << refused.detail;
    const auto fine = "{\"value\": " + std::string(200, '[') + std::string(200, ']') + "}";
    const auto result = run(mapper, json(fine, {}));
    ASSERT_TRUE(result.event.has_value()) << text(result.reason) << ": " << result.detail;
    EXPECT_EQ(result.event->payload_json, std::string(200, '[') + std::string(200, ']'));
    // Brackets inside strings do not count.
    EXPECT_TRUE(run(mapper, json("[\"" + std::string(1000, '[') + "\"]", {})).event.has_value());
}

TEST(Reasons, InvalidJsonSaysWhere) {
    const auto result = run(EventMapper(Config{}), json(R"({"a": })", {}));
    EXPECT_EQ(text(result.reason), "invalid-json");
    EXPECT_NE(result.detail.find("byte 6"), std::string::npos) << result.detail;
}

// --- precheck ---------------------------------------------------------------------------------

struct PrecheckCase {
    std::string method, target;
    unsigned status;
    std::string content_type;
    long long content_length;
    std::string reason;
};

void PrintTo(const PrecheckCase& c, std::ostream* out) {
    *out << c.method << ' ' << c.target << ' ' << c.status << " [" << c.content_type << "] " << c.content_length;
}

class Precheck : public ::testing::TestWithParam<PrecheckCase> {};

TEST_P(Precheck, DecidesFromTheHeadersAlone) {
    const auto& c = GetParam();
    Config config = reason_config();
    config.routes = {Rule{.path = "/auth/login", .publish = false}};
    const EventMapper mapper(config);
    EXPECT_EQ(text(mapper.precheck(c.method, c.target, c.status, c.content_type, c.content_length)), c.reason);
}

INSTANTIATE_TEST_SUITE_P(Headers, Precheck,
                         ::testing::Values(PrecheckCase{"POST", "/api/authors", 201, "application/json", 20, ""},
                                           PrecheckCase{"POST", "/api/authors", 201, "application/json", -1, ""},
                                           PrecheckCase{"POST", "/api/authors", 201, "application/json", 64, ""},
                                           PrecheckCase{"POST", "/api/authors", 201, "application/json", 65,
                                                        "too-large"},
                                           PrecheckCase{"POST", "/api/authors", 201, "text/html", 20, "content-type"},
                                           PrecheckCase{"POST", "/api/authors", 201, "text/html", -1, "content-type"},
                                           PrecheckCase{"POST", "/api/authors", 201, "", 0, ""},
                                           PrecheckCase{"DELETE", "/api/authors/1", 204, "", -1, ""},
                                           PrecheckCase{"POST", "/api/authors", 201, "", -1, "content-type"},
                                           PrecheckCase{"GET", "/api/authors", 200, "application/json", 20, "method"},
                                           PrecheckCase{"POST", "/api/authors", 404, "application/json", 20, "status"},
                                           PrecheckCase{"POST", "/api/authors", 199, "application/json", 20, "status"},
                                           PrecheckCase{"POST", "/auth/login", 200, "application/json", 20, "rule"},
                                           PrecheckCase{"GET", "/auth/login", 200, "application/json", 20, "rule"},
                                           PrecheckCase{"POST", "/api/v1", 200, "application/json", 20, "no-model"},
                                           PrecheckCase{"POST", "/api/all", 200, "application/json", 20, "reserved"}));

// --- route rules ------------------------------------------------------------------------------

Config rules_config() {
    Config config;
    config.payload_pointer = "/value";
    config.routes = {
        Rule{.path = "/auth/login", .publish = false},
        Rule{.path = "/api/v2/people/{pid}", .model = "human", .id = "{pid}"},
        Rule{.path = "/api/things/{tid}", .id = "{tid}", .methods = std::vector<std::string>{"POST", "GET"}},
        Rule{.path = "/api/widgets", .id = "sku", .payload_pointer = "/data"},
        Rule{.path = "/api/widgets/*", .model = "gadget"},
        Rule{.path = "/api/*/special", .model = "special", .id = "code"},
        Rule{.path = "/api/things/{tid}", .model = "shadowed"},
        Rule{.path = "/legacy/**", .model = "legacy"},
        Rule{.path = "/api/all", .model = "everything"},
        Rule{.path = "/api/raw", .payload_pointer = ""},
        Rule{.path = "/api/caf%C3%A9s/{id}", .id = "{id}"},
    };
    return config;
}

struct RuleCase {
    std::string name;
    Case exchange;
    std::string detail_contains;
};

class Rules : public ::testing::TestWithParam<RuleCase> {};

TEST_P(Rules, OverrideInference) {
    const auto& c = GetParam();
    const auto result = run(EventMapper(rules_config()), c.exchange);
    check(result, c.exchange);
    EXPECT_NE(result.detail.find(c.detail_contains), std::string::npos) << result.detail;
}

Case post(std::string target, std::string json, Expect expect) {
    return Case{.target = std::move(target), .body = std::move(json), .expect = std::move(expect)};
}

INSTANTIATE_TEST_SUITE_P(
    Table, Rules,
    ::testing::Values(
        RuleCase{"PublishFalse", post("/auth/login", R"({"token": "t"})", none("rule")), "rule 1 (/auth/login)"},
        RuleCase{"PublishFalseBeforeMethod", Case{.method = "GET", .target = "/auth/login", .expect = none("rule")},
                 "rule 1"},
        RuleCase{"ModelAndParamIdString", post("/api/v2/people/abc", "", event("human", "\"abc\"")), "rule 2"},
        RuleCase{"ParamIdNumber", post("/api/v2/people/12", R"({"value": {"id": 99}})", event("human", "12")),
                 "rule 2"},
        RuleCase{"ParamIdLeadingZero", post("/api/v2/people/012", "", event("human", "\"012\"")), "rule 2"},
        RuleCase{"NoRuleForShorterPath", post("/api/v2/people", "", event("person")), ""},
        RuleCase{"RuleMethodsAllowGet",
                 Case{.method = "GET", .target = "/api/things/5", .status = 200, .expect = event("thing", "5")},
                 "rule 3"},
        RuleCase{"RuleMethodsReplaceDefault",
                 Case{.method = "DELETE",
                      .target = "/api/things/5",
                      .status = 204,
                      .content_type = "",
                      .expect = none("method")},
                 "rule 3"},
        RuleCase{"PayloadFieldIdAndPointer",
                 post("/api/widgets", R"({"data": {"sku": "W-1", "id": 9}})",
                      with(event("widget", "\"W-1\""), R"({"sku":"W-1","id":9})")),
                 "rule 4"},
        RuleCase{"PayloadFieldMissing", post("/api/widgets", R"({"data": {"id": 9}})", event("widget")), "rule 4"},
        RuleCase{"StarMatchesOneSegment", post("/api/widgets/3", "", event("gadget", "3")), "rule 5"},
        RuleCase{"StarIsNotTwoSegments", post("/api/widgets/3/parts", "", event("part")), ""},
        RuleCase{"PayloadFieldIgnoresUrlId",
                 post("/api/x/special", R"({"value": {"code": 77}})", event("special", "77")), "rule 6"},
        RuleCase{"FirstMatchWins", post("/api/things/5", "", event("thing", "5")), "rule 3"},
        RuleCase{"RestMatchesMany", post("/legacy/a/b/c", "", event("legacy", "\"c\"")), "rule 8"},
        RuleCase{"RestMatchesNone", post("/legacy", "", event("legacy")), "rule 8"},
        RuleCase{"RuleNamesReservedPathsModel", post("/api/all", "", event("everything")), "rule 9"},
        RuleCase{"RulePointerEmptyIsWholeBody",
                 post("/api/raw", R"({"value": 1})", with(event("raw"), R"({"value": 1})")), "rule 10"},
        RuleCase{"TemplateMatchesDecodedPath", post("/api/caf%c3%a9s/x", "", event("caf\xC3\xA9", "\"x\"")), "rule 11"},
        // Rule 1 (/auth/login) would say reason=rule; unmatched, never-publish's default decides.
        RuleCase{"LiteralsAreCaseSensitive", post("/AUTH/login", "", none("never-publish")), ""},
        RuleCase{"GlobalPointerWithoutRule", post("/api/books", R"({"value": {"id": 4}})", event("book", "4")), ""}),
    [](const auto& info) { return info.param.name; });

TEST(Rules, BadRulesStopTheMapper) {
    for (const auto& rule : {Rule{.path = "/a/**/b"}, Rule{.path = "/a/{x}/{x}"}, Rule{.path = "/a/b{x}"},
                             Rule{.path = "a"}, Rule{.path = "/a/{x}", .id = "{y}"}, Rule{.path = "/a", .model = "all"},
                             Rule{.path = "/a", .payload_pointer = "x"}}) {
        Config config;
        config.routes = {rule};
        EXPECT_THROW(EventMapper{config}, std::invalid_argument) << rule.path;
    }
}

// --- serialize and the WebSocket frame --------------------------------------------------------

TEST(Serialize, FieldsInContractOrder) {
    const Event created{.ts = 1712345678901,
                        .model = "author",
                        .method = "POST",
                        .id_json = "42",
                        .many = false,
                        .payload_json = R"({"id": 42, "name": "Ada"})",
                        .seq = 17};
    EXPECT_EQ(crudcast::bus::serialize(created),
              R"({"ts":1712345678901,"model":"author","method":"POST","id":42,"many":false,)"
              R"("payload":{"id": 42, "name": "Ada"},"seq":17})");

    const Event listed{.ts = 1,
                       .model = "book",
                       .method = "PATCH",
                       .id_json = "\"b-1\"",
                       .many = true,
                       .payload_json = "[1,2]",
                       .seq = 18446744073709551615u};
    EXPECT_EQ(crudcast::bus::serialize(listed),
              R"({"ts":1,"model":"book","method":"PATCH","id":"b-1","many":true,"payload":[1,2],)"
              R"("seq":18446744073709551615})");

    EXPECT_EQ(crudcast::bus::serialize(Event{}),
              R"({"ts":0,"model":"","method":"","id":null,"many":false,"payload":null,"seq":0})");

    const Event odd{.model = "a\"b\\c\n\x01\xff", .method = "POST"};
    EXPECT_EQ(
        crudcast::bus::serialize(odd),
        R"({"ts":0,"model":"a\"b\\c\n\u0001\ufffd","method":"POST","id":null,"many":false,"payload":null,"seq":0})");
}

TEST(WebSocketFrame, HeaderCarriesTheLength) {
    struct FrameCase {
        std::size_t size;
        std::string header;
    };
    using namespace std::string_literals;
    const FrameCase cases[] = {
        {0, "\x81\x00"s},
        {125, "\x81\x7d"s},
        {126, "\x81\x7e\x00\x7e"s},
        {65535, "\x81\x7e\xff\xff"s},
        {65536, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"s},
    };
    for (const auto& [size, header] : cases) {
        const std::string payload(size, 'p');
        const auto frame = crudcast::bus::websocket_text_frame(payload);
        ASSERT_EQ(frame.size(), header.size() + size) << size;
        EXPECT_EQ(frame.substr(0, header.size()), header) << size;
        EXPECT_EQ(frame.substr(header.size()), payload) << size;
    }
}

}  // namespace

namespace {

// might_publish decides whether a request whose client left may be cancelled: false only when no
// answer could make an event. Without route rules the method alone (a POST to a path with no model
// stays "might": conservative); with route rules the path is read too.
TEST(MightPublish, MethodAloneWithoutRulesThePathWithRules) {
    Config config;
    const EventMapper plain(config);
    EXPECT_FALSE(plain.might_publish("GET", "/api/authors"));
    EXPECT_FALSE(plain.might_publish("HEAD", "/api/authors/1"));
    EXPECT_TRUE(plain.might_publish("POST", "/api/authors"));
    EXPECT_TRUE(plain.might_publish("DELETE", "/api/authors/1"));
    EXPECT_TRUE(plain.might_publish("POST", "/"));  // no model, but only the method is read
    config.routes = {Rule{.path = "/auth/login", .publish = false}};
    const EventMapper ruled(config);
    EXPECT_FALSE(ruled.might_publish("POST", "/auth/login"));
    EXPECT_FALSE(ruled.might_publish("GET", "/api/authors"));
    EXPECT_TRUE(ruled.might_publish("POST", "/api/authors"));
}

}  // namespace

namespace {

// --- never-publish: credential endpoints make no event -----------------------------------------

class NeverPublish : public ::testing::TestWithParam<Case> {};

// The defaults, with rules: one names a login path literally (opting it back in), one catches
// everything under /open with a parameter and a '**' (which is not naming a login).
Config never_publish_config() {
    Config config;
    config.routes = {Rule{.path = "/api/sessions/login", .model = "session"},
                     Rule{.path = "/open/{kind}/**", .model = "open"}};
    return config;
}

TEST_P(NeverPublish, CredentialPathsMakeNoEvent) {
    const EventMapper mapper(never_publish_config());
    const auto& c = GetParam();
    check(run(mapper, c), c);
    // The cheap pre-checks agree with map(), so no body is captured for a never-publish path.
    const auto early = mapper.precheck(c.method, c.target, c.status, c.content_type, -1);
    EXPECT_EQ(text(early), c.expect.reason) << c.target;
    EXPECT_EQ(mapper.might_publish(c.method, c.target), c.expect.reason.empty()) << c.target;
}

Case login(std::string target, Expect expect, unsigned status = 200) {
    return Case{
        .target = std::move(target), .status = status, .body = R"({"id": 1, "x": 2})", .expect = std::move(expect)};
}

INSTANTIATE_TEST_SUITE_P(
    Paths, NeverPublish,
    ::testing::Values(
        // Every default name, as a collection or anywhere in the path, in any case.
        login("/api/login", none("never-publish")), login("/api/logout", none("never-publish")),
        login("/api/signin", none("never-publish")), login("/api/signout", none("never-publish")),
        login("/api/signup", none("never-publish")), login("/api/token", none("never-publish")),
        login("/api/tokens/42", none("never-publish")), login("/api/oauth/callback", none("never-publish")),
        login("/api/users/7/password", none("never-publish")), login("/api/passwords", none("never-publish")),
        login("/api/credentials/3", none("never-publish")), login("/api/auth/login", none("never-publish")),
        login("/api/v1/AUTH/Login", none("never-publish")), login("/LOGIN", none("never-publish")),
        login("/api/Tokens", none("never-publish")), login("/login/extra/deep", none("never-publish")),
        // Decoded first (%6C is 'l'), a ';' parameter does not hide it, an absolute-form target neither.
        login("/api/%6Cogin", none("never-publish")), login("/api/log%69n", none("never-publish")),
        login("/api/login;jsessionid=1", none("never-publish")),
        login("http://example.com/api/auth/token", none("never-publish")),
        // Before the status: a failed login is never-publish too.
        login("/api/login", none("never-publish"), 401),
        // Only whole segments count, and the query is not the path.
        login("/api/authors", event("author", "1")), login("/api/logins", event("login", "1")),
        login("/api/authorities", event("authority", "1")), login("/api/tokenizers/4", event("tokenizer", "4")),
        login("/api/authors?next=/login&token=1", event("author", "1")), login("/api/login%2Fx", event("login/x", "1")),
        // A GET is refused by its method first, as before.
        Case{.method = "GET", .target = "/api/login", .status = 200, .expect = none("method")},
        // A rule naming the path literally opts it back in; a catch-all rule does not.
        login("/api/sessions/login", event("session", "\"login\"")),
        login("/api/sessions/LOGIN", none("never-publish")), login("/open/login/x", none("never-publish")),
        login("/open/things/token", none("never-publish")), login("/open/things", event("open", "\"things\""))));

TEST(NeverPublish, AnEmptyListTurnsItOff) {
    Config config;
    config.never_publish.clear();
    const EventMapper mapper(config);
    const auto c = login("/api/auth/login", event("auth", "\"login\""));
    check(run(mapper, c), c);
    EXPECT_TRUE(mapper.might_publish("POST", "/api/login"));
}

TEST(NeverPublish, TheListIsConfigurable) {
    Config config;
    config.never_publish = {"secrets", "a-very-long-segment-name-that-does-not-fit-in-the-inline-buffer-of-64"};
    const EventMapper mapper(config);
    check(run(mapper, login("/api/login", event("login", "1"))), login("/api/login", event("login", "1")));
    check(run(mapper, login("/api/Secrets/1", none("never-publish"))), login("/api/Secrets/1", none("never-publish")));
    EXPECT_FALSE(mapper.might_publish("POST", "/api/secrets"));
    EXPECT_FALSE(
        mapper.might_publish("POST", "/x/A-Very-Long-Segment-Name-That-Does-Not-Fit-In-The-Inline-Buffer-Of-64/y"));
    EXPECT_TRUE(
        mapper.might_publish("POST", "/x/a-very-long-segment-name-that-does-not-fit-in-the-inline-buffer-of-6"));
    EXPECT_TRUE(mapper.might_publish("POST", "/api/secretsx"));
}

// --- redact-fields: secret members never reach a subscriber --------------------------------------

class Redaction : public ::testing::TestWithParam<Case> {};

TEST_P(Redaction, RemovesSecretMembersAtAnyDepth) {
    Config config;
    config.routes = {Rule{.path = "/api/keys", .id = "api_key"},
                     Rule{.path = "/api/wrapped", .payload_pointer = "/data/password"}};
    const EventMapper mapper(config);
    check(run(mapper, GetParam()), GetParam());
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, Redaction,
    ::testing::Values(
        body("/api/authors", R"({"id": 1, "name": "Ada", "password": "hunter2"})",
             with(event("author", "1"), R"({"id":1,"name":"Ada"})")),
        // Every default name; other names and other cases stay (JSON names are case-sensitive).
        body("/api/authors",
             R"({"id": 2, "password_hash": "x", "token": "t", "access_token": "a", "refresh_token": "r",)"
             R"( "secret": "s", "api_key": "k", "Password": "kept", "tokens": 3})",
             with(event("author", "2"), R"({"id":2,"Password":"kept","tokens":3})")),
        // Nested objects, objects inside arrays, arrays of objects, duplicates.
        body("/api/authors", R"({"id": 3, "profile": {"login": {"password": "p", "user": "ada"}}})",
             with(event("author", "3"), R"({"id":3,"profile":{"login":{"user":"ada"}}})")),
        body("/api/authors", R"({"id": 4, "keys": [{"name": "ci", "secret": "s"}, [{"token": "t", "n": 1}], 5]})",
             with(event("author", "4"), R"({"id":4,"keys":[{"name":"ci"},[{"n":1}],5]})")),
        body("/api/authors", R"([{"id": 5, "password": "a"}, {"id": 6, "password": "b", "ok": true}])",
             with(event("author"), R"([{"id":5},{"id":6,"ok":true}])", true)),
        body("/api/authors", R"({"token": 1, "id": 7, "token": 2})", with(event("author", "7"), R"({"id":7})")),
        // A member whose value is an object is removed whole; a string value equal to a name stays.
        body("/api/authors", R"({"id": 8, "secret": {"a": 1}, "kind": "password"})",
             with(event("author", "8"), R"({"id":8,"kind":"password"})")),
        // Nothing to remove: the backend's own bytes, untouched.
        body("/api/authors", R"({"id": 9,  "name": "Ada"})",
             with(event("author", "9"), R"({"id": 9,  "name": "Ada"})")),
        // The id is read after redaction: a redacted id field gives no id rather than the secret.
        body("/api/keys", R"({"api_key": "k-123", "name": "ci"})", with(event("key"), R"({"name":"ci"})")),
        // A pointer into a redacted member cannot select it: the payload is the redacted whole body.
        body("/api/wrapped", R"({"data": {"password": "p", "id": 10}})",
             with(event("wrapped", "null"), R"({"data":{"id":10}})"))));

TEST(Redaction, AnEmptyListTurnsItOff) {
    Config config;
    config.redact_fields.clear();
    const EventMapper mapper(config);
    const auto c = body("/api/authors", R"({"id": 1, "password": "hunter2"})",
                        with(event("author", "1"), R"({"id": 1, "password": "hunter2"})"));
    check(run(mapper, c), c);
}

TEST(Redaction, SaysWhyThereIsNoId) {
    Config config;
    config.id_field = "token";
    const EventMapper mapper(config);
    const auto result = run(mapper, body("/api/sessions", R"({"token": "abc"})", event("session")));
    ASSERT_TRUE(result.event.has_value());
    EXPECT_EQ(result.event->id_json, "null");
    EXPECT_EQ(result.event->payload_json, "{}");
    EXPECT_NE(result.detail.find("id field \"token\" is in redact-fields"), std::string::npos) << result.detail;
}

}  // namespace

namespace {

// Without route rules might_publish reads never-publish straight from the raw target (no
// allocation); it must agree with map()'s reading of the decoded segments.
TEST(MightPublish, ReadsNeverPublishFromTheRawTargetAsMapDoes) {
    const EventMapper mapper{Config{}};
    const std::vector<std::pair<std::string, bool>> rows = {
        {"/api/login", false},
        {"/api/%6Cogin", false},
        {"/api/%4C%4F%47%49%4E", false},
        {"/api/log%69n;x=1", false},
        {"/api/login;jsessionid=1", false},
        {"/api/login%3Bx", false},  // a decoded ';' ends the name as a raw one does
        {"http://example.com/api/auth/x", false},
        {"//api//Tokens//", false},
        {"/LOGIN/", false},
        {"/api/authors?next=/login", true},
        {"/api/login%2Fx", true},
        {"/api/logins", true},
        {"/api/%zzlogin", true},
        {"/api/%6", true},
        {"/api/authors/42", true},
    };
    for (const auto& [target, might] : rows) {
        EXPECT_EQ(mapper.might_publish("POST", target), might) << target;
        const auto mapped = mapper.map(Exchange{.method = "POST",
                                                .target = target,
                                                .status = 200,
                                                .content_type = "",
                                                .body = "",
                                                .body_too_large = false});
        EXPECT_EQ(text(mapped.reason) == "never-publish", !might) << target << ": " << text(mapped.reason);
    }
}

}  // namespace
