// fuzz_event_mapper.cpp: one proxied exchange through the event mapper, with the default settings, with
// route rules, and with a payload pointer. An event made must serialize to valid JSON with a topic;
// precheck may not rule out an exchange that map() turns into an event with a payload.
// Input: one option byte (settings, body too large, length known), then method, target, status and
// content type on one line each; the rest is the response body.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "bus/event.hpp"
#include "config/config.hpp"
#include "gateway/events/event_mapper.hpp"
#include "tests/fuzz/http_feed.hpp"

namespace {

using crudcast::config::Config;
using crudcast::config::RouteRule;
using namespace crudcast::gateway;

Config rules_config() {
    Config config;
    config.payload_pointer = "/value";
    config.models = {{"octopi", "octopus"}, {"staff", "staff-member"}};
    config.routes = {
        RouteRule{.path = "/auth/login", .publish = false},
        RouteRule{.path = "/api/v2/people/{pid}", .model = "human", .id = "{pid}"},
        RouteRule{.path = "/api/things/{tid}", .id = "{tid}", .methods = std::vector<std::string>{"POST", "GET"}},
        RouteRule{.path = "/api/widgets", .id = "sku", .payload_pointer = "/data"},
        RouteRule{.path = "/api/widgets/*", .model = "gadget"},
        RouteRule{.path = "/api/*/special", .model = "special", .id = "code"},
        RouteRule{.path = "/legacy/**", .model = "legacy"},
        RouteRule{.path = "/api/raw", .payload_pointer = ""},
        RouteRule{.path = "/api/caf%C3%A9s/{id}", .id = "{id}"},
    };
    return config;
}

Config pointer_config() {
    Config config;
    config.payload_pointer = "/data/items/0";
    config.path_prefixes = {"api", "v1"};
    config.id_field = "_id";
    return config;
}

// The next line of `input` (without its '\n'); the rest stays in `input`.
std::string_view next_line(std::string_view& input) {
    const auto end = input.find('\n');
    const auto line = input.substr(0, end);
    input.remove_prefix(end == std::string_view::npos ? input.size() : end + 1);
    return line;
}

unsigned status_of(std::string_view text) {
    unsigned status = 0;
    for (char c : text.substr(0, 4)) {  // digits as themselves ("201" is 201), other bytes as some digit
        const auto byte = static_cast<unsigned char>(c);
        status = status * 10 + (byte >= '0' && byte <= '9' ? byte - '0' : byte % 10);
    }
    return status;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const EventMapper mappers[] = {EventMapper(Config{}), EventMapper(rules_config()),
                                          EventMapper(pointer_config())};
    if (size < 1) return 0;
    const std::uint8_t options = data[0];
    std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    const EventMapper& mapper = mappers[(options & 3) % 3];
    Exchange exchange;
    exchange.method = next_line(input);
    exchange.target = next_line(input);
    exchange.status = status_of(next_line(input));
    exchange.content_type = next_line(input);
    exchange.body = input;
    exchange.body_too_large = (options & 4) != 0;

    const bool length_known = (options & 8) != 0;
    const auto ruled_out = mapper.precheck(exchange.method, exchange.target, exchange.status, exchange.content_type,
                                           length_known ? static_cast<long long>(input.size()) : -1);
    const auto result = mapper.map(exchange);
    CRUDCAST_FUZZ_CHECK(result.event.has_value() != result.reason.has_value());
    if (!result.event) return 0;
    // precheck refuses a type that is not JSON before the body is seen; map() makes a payload-less event of
    // a body that is empty or only whitespace whatever its type. That is the one disagreement allowed.
    if (ruled_out)
        CRUDCAST_FUZZ_CHECK(*ruled_out == NoEventReason::content_type && result.event->payload_json == "null");
    CRUDCAST_FUZZ_CHECK(!exchange.body_too_large);
    CRUDCAST_FUZZ_CHECK(!result.event->model.empty() && result.event->model != "all");
    const auto text = crudcast::bus::serialize(*result.event);
    rapidjson::Document parsed;
    parsed.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());  // as the mapper parses bodies
    CRUDCAST_FUZZ_CHECK(!parsed.HasParseError() && parsed.IsObject());
    CRUDCAST_FUZZ_CHECK(parsed["many"].GetBool() == (parsed["payload"].IsArray()));
    return 0;
}
