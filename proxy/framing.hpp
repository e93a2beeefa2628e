// framing.hpp: crudcast owns HTTP/1.1 message framing (RFC 9112 §6), so that it and the upstream can
// never disagree on where a message ends (request smuggling). A message is accepted only with one
// plain Content-Length or with Transfer-Encoding exactly "chunked" over all its lines; crudcast then
// drops every framing line it received and writes the one that matches the bytes it sends.
// Pure, no I/O; tested over sockets in tests/framing_test.cpp.
#pragma once

#include <cstdint>
#include <string_view>

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional/optional.hpp>

namespace crudcast::proxy {

namespace http = boost::beast::http;

struct FramingVerdict {
    unsigned status = 0;      // 0: acceptable; 400, or 501 for a transfer coding crudcast does not implement
    std::string_view reason;  // why, when refused (a static sentence)
    bool ok() const { return status == 0; }
};

// A request's framing: Transfer-Encoding and Content-Length together, Content-Length repeated or not
// 1*DIGIT, Transfer-Encoding on HTTP/1.0, or a coding list whose final coding is not a single chunked
// are 400 (RFC 9112 §6.3); a valid list ending in chunked after other codings ("gzip, chunked") is 501.
FramingVerdict check_request_framing(const http::request_header<>& head);
// A response's framing, by the same rules; any refusal is the upstream's fault (502).
FramingVerdict check_response_framing(const http::response_header<>& head);
// Host: required once on HTTP/1.1, at most once on HTTP/1.0, and a valid host[:port].
FramingVerdict check_host(const http::request_header<>& head);
// host = reg-name (letters, digits, - . _ ~) or IPv4 or [IPv6], then optionally :port (1..65535 digits).
bool is_valid_host(std::string_view host);
// The judgement of a request head the proxy has read: its framing, then its Host.
FramingVerdict check_request_head(const http::request_header<>& head);

// The limits a request head (and body) is read with: max-header-bytes, and max-body-bytes (0: none).
void limit_request_parser(http::basic_parser<true>& parser, std::size_t max_header_bytes, std::uint64_t max_body_bytes);

// How long the chunked body at the start of `bytes` is (every chunk, the last chunk and its
// trailers): its length once all of it is there, 0 while more bytes are needed, npos when the bytes
// are no chunked body (the request parser then says why). For reading small bodies whole.
std::size_t chunked_body_length(std::string_view bytes);

// Drops every Content-Length and Transfer-Encoding line, then writes "Transfer-Encoding: chunked" or
// "Content-Length: N" (or neither) to match the body as it will be sent.
void set_framing(http::fields& fields, bool chunked, boost::optional<std::uint64_t> content_length);

}  // namespace crudcast::proxy
