// http_feed.hpp: how the proxy feeds a Beast parser, without sockets, for the HTTP fuzz targets.
// Bytes "arrive" in pieces of `step`; like http::read_header, the parser is offered everything that
// has arrived and not been consumed, and more arrives only when it says need_more. At the end of the
// input the peer closes (put_eof). The body is read through a small buffer_body window, as the relay does.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>

namespace crudcast::fuzz {

namespace http = boost::beast::http;

// An invariant of crudcast's own code broke: abort, so libFuzzer keeps the input as a crash.
#define CRUDCAST_FUZZ_CHECK(condition)                                                             \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #condition); \
            std::abort();                                                                          \
        }                                                                                          \
    } while (0)

// The high nibble of an option byte: 0 = everything at once, n = pieces of n*n bytes (1 to 225).
inline std::size_t arrival_step(std::uint8_t options, std::size_t whole) {
    const std::size_t n = options >> 4;
    return n == 0 ? whole : n * n;
}

class Feed {
public:
    Feed(std::string_view input, std::size_t step) : input_(input), step_(std::max<std::size_t>(step, 1)) {
        arrived_ = std::min(input_.size(), step_);
    }

    // Reads a message head into `parser`; the error, or none once the head is complete.
    template <bool isRequest>
    boost::system::error_code read_header(http::basic_parser<isRequest>& parser) {
        return run(parser, [&] { return parser.is_header_done(); });
    }

    // Reads the rest of the message through a 64-byte window; returns the error (none once done) and
    // adds the body bytes delivered to `body_bytes`.
    template <class Parser>
    boost::system::error_code read_body(Parser& parser, std::uint64_t& body_bytes) {
        char window[64];
        auto& body = parser.get().body();
        body.data = window;
        body.size = sizeof window;
        auto ec = run(parser, [&] {
            if (body.size == 0) {  // the window is full: the relay sends it on and offers it again
                body_bytes += sizeof window;
                body.data = window;
                body.size = sizeof window;
            }
            return parser.is_done();
        });
        if (ec == http::error::need_buffer) ec = {};
        body_bytes += sizeof window - body.size;
        return ec;
    }

    std::size_t consumed() const { return used_; }
    bool at_end() const { return used_ == input_.size(); }

private:
    template <class Parser, class Done>
    boost::system::error_code run(Parser& parser, Done done) {
        boost::system::error_code ec;
        for (;;) {
            if (done()) return {};
            if (used_ == arrived_) {
                if (arrived_ == input_.size()) {  // the peer closed
                    parser.put_eof(ec);
                    if (!ec && !done()) ec = http::error::partial_message;
                    return ec;
                }
                arrived_ = std::min(input_.size(), arrived_ + step_);
            }
            used_ += parser.put(boost::asio::buffer(input_.data() + used_, arrived_ - used_), ec);
            if (ec == http::error::need_more) {
                if (arrived_ == input_.size() && used_ < arrived_) {
                    // Nothing more will come and the parser wants more than is left: offer EOF.
                    used_ = arrived_;
                }
                if (arrived_ < input_.size()) arrived_ = std::min(input_.size(), arrived_ + step_);
                ec = {};
                continue;
            }
            if (ec == http::error::need_buffer) {
                done();  // resets the window
                ec = {};
                continue;
            }
            if (ec) return ec;
        }
    }

    std::string_view input_;
    std::size_t step_;
    std::size_t arrived_ = 0;
    std::size_t used_ = 0;
};

}  // namespace crudcast::fuzz
