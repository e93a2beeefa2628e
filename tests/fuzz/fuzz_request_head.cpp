// fuzz_request_head.cpp: raw client bytes as crudcast's proxy reads and judges a request. Beast's
// request_parser<buffer_body> with the limits of max-header-bytes and max-body-bytes
// (limit_request_parser), fed as bytes arrive; then check_request_head (framing, Host), the target
// decision, the X-Request-ID check and the head rewritten for the upstream; then the body.
// Input: one option byte (limits, arrival step), then the client's bytes.
#include <cstddef>
#include <cstdint>
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

// The default limits (16 KiB head, 1 GiB body), small ones inputs can exceed, and no body limit.
constexpr std::size_t header_limits[] = {16 * 1024, 64, 512, 4096};
constexpr std::uint64_t body_limits[] = {1024ull * 1024 * 1024, 0, 16, 1};

// What crudcast does with a head it accepted before the body is relayed.
void judge_accepted(const http::request_parser<http::buffer_body>& parser) {
    const auto& req = parser.get();
    // Accepted framing is one plain Content-Length or chunked alone, as the parser reads it too.
    const bool has_length = req.count(http::field::content_length) > 0;
    const bool has_coding = req.count(http::field::transfer_encoding) > 0;
    CRUDCAST_FUZZ_CHECK(!(has_length && has_coding));
    CRUDCAST_FUZZ_CHECK(req.count(http::field::content_length) <= 1);
    CRUDCAST_FUZZ_CHECK(!has_coding || parser.chunked());
    CRUDCAST_FUZZ_CHECK(req.count(http::field::host) <= 1);

    const auto decision = decide_target(req.target(), "/base", {"127.0.0.1:8080", "backend:3000"});
    if (decision.kind == TargetDecision::forward) {
        CRUDCAST_FUZZ_CHECK(decision.target.starts_with("/base"));
    } else {
        CRUDCAST_FUZZ_CHECK(!decision.reason.empty());
    }
    const auto id = req["X-Request-ID"];
    const auto request_id = is_acceptable_request_id(id) ? std::string(id) : generate_request_id();
    CRUDCAST_FUZZ_CHECK(is_acceptable_request_id(request_id));
    (void)is_idempotent(req.method_string());

    http::fields upstream_head = req;
    const bool upgrade = is_upgrade_request(req);
    strip_hop_by_hop(upstream_head, upgrade);
    apply_forwarding_headers(upstream_head, {.client_ip = "127.0.0.1",
                                             .upstream_host = "backend:3000",
                                             .preserve_host = (req.method_string().size() & 1) != 0,
                                             .request_id = request_id});
    set_framing(upstream_head, parser.chunked(), parser.content_length());
    CRUDCAST_FUZZ_CHECK(upstream_head.count(http::field::connection) <= 1);
    CRUDCAST_FUZZ_CHECK(
        upstream_head.count(http::field::content_length) + upstream_head.count(http::field::transfer_encoding) <= 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t options = data[0];
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    const std::uint64_t body_limit = body_limits[(options >> 2) & 3];
    const std::size_t step = crudcast::fuzz::arrival_step(options, input.size());

    http::request_parser<http::buffer_body> parser;
    limit_request_parser(parser, header_limits[options & 3], body_limit);
    Feed feed(input, step);
    if (feed.read_header(parser)) return 0;                // crudcast answers 400, 413 or 431 and closes
    if (!check_request_head(parser.get()).ok()) return 0;  // 400 or 501
    judge_accepted(parser);

    std::uint64_t body_bytes = 0;
    const auto ec = feed.read_body(parser, body_bytes);
    if (body_limit != 0) CRUDCAST_FUZZ_CHECK(body_bytes <= body_limit);
    if (!ec && parser.content_length_remaining()) CRUDCAST_FUZZ_CHECK(*parser.content_length_remaining() == 0);
    if (!ec && parser.content_length()) CRUDCAST_FUZZ_CHECK(body_bytes == *parser.content_length());
    return 0;
}
