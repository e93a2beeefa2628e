// fuzz_response_head.cpp: raw upstream bytes as crudcast reads a response: interim 1xx heads
// skipped, response_parser<buffer_body> with a 64 KiB head limit and no body limit (skip for HEAD),
// check_response_framing, then the head crudcast sends its client (set_framing,
// prepare_response_head) and the body. Input: one option byte (HEAD, client, arrival step), then bytes.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/parser.hpp>

#include "proxy/framing.hpp"
#include "proxy/header_rules.hpp"
#include "tests/fuzz/http_feed.hpp"

namespace {

namespace http = boost::beast::http;
using namespace crudcast::proxy;
using crudcast::fuzz::Feed;
using Parser = http::response_parser<http::buffer_body>;

// The head crudcast sends its client, as relay_response prepares it.
void check_client_head(const Parser& parser, std::uint8_t options) {
    const bool has_length = parser.get().count(http::field::content_length) > 0;
    const bool has_coding = parser.get().count(http::field::transfer_encoding) > 0;
    CRUDCAST_FUZZ_CHECK(!(has_length && has_coding));
    CRUDCAST_FUZZ_CHECK(!has_coding || parser.chunked());

    http::response<http::buffer_body> res = parser.get();
    set_framing(res, parser.chunked(), parser.content_length());
    const bool client_http10 = (options & 2) != 0;
    prepare_response_head(res, {.request_id = "0123456789abcdef0123456789abcdef",
                                .keep_alive = (options & 4) != 0,
                                .own_version = true,
                                .chunked = client_http10       ? std::optional(false)
                                           : parser.need_eof() ? std::optional(true)
                                                               : std::nullopt});
    CRUDCAST_FUZZ_CHECK(res.count(http::field::content_length) + res.count(http::field::transfer_encoding) <= 1);
    CRUDCAST_FUZZ_CHECK(res.count("X-Request-ID") >= 1);
    CRUDCAST_FUZZ_CHECK(res.version() == 11);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t options = data[0];
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    const bool is_head = (options & 1) != 0;
    const std::size_t step = crudcast::fuzz::arrival_step(options, input.size());

    Feed feed(input, step);
    std::optional<Parser> parser;
    for (;;) {
        parser.emplace();
        parser->body_limit(boost::none);
        parser->header_limit(64 * 1024);
        if (is_head) parser->skip(true);
        if (feed.read_header(*parser)) return 0;  // 502
        const auto status = parser->get().result_int();
        if (status >= 200 || status == 101) break;
    }
    if (!check_response_framing(parser->get()).ok()) return 0;  // 502
    check_client_head(*parser, options);

    std::uint64_t body_bytes = 0;
    const auto ec = feed.read_body(*parser, body_bytes);
    // 1xx (here 101), 204 and 304 have no body whatever their head says (RFC 9112 §6.3), as HEAD's answer.
    const auto status = parser->get().result_int();
    const bool body_allowed = !is_head && status >= 200 && status != 204 && status != 304;
    if (!body_allowed) CRUDCAST_FUZZ_CHECK(body_bytes == 0);
    if (!ec && body_allowed && parser->content_length()) CRUDCAST_FUZZ_CHECK(body_bytes == *parser->content_length());
    return 0;
}
