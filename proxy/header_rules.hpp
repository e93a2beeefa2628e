// header_rules.hpp: the pure rules for what crosses the proxy: hop-by-hop headers, X-Forwarded-*,
// Host, X-Request-ID and request targets. No I/O; tested table-driven in tests/header_rules_test.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>

namespace crudcast::proxy {

namespace http = boost::beast::http;

// Removes the hop-by-hop headers of RFC 9110 §7.6.1 (Connection, Proxy-Connection, Keep-Alive,
// TE, Trailer, Upgrade) and every header named in a Connection header. Transfer-Encoding and
// Content-Length are left alone: they are the message's framing, re-applied by the serializer.
// With keep_upgrade, Upgrade survives and "Connection: upgrade" is re-added (tunnelled upgrades).
void strip_hop_by_hop(http::fields& fields, bool keep_upgrade = false);

struct ForwardContext {
    std::string_view client_ip;      // the socket peer: "127.0.0.1" or "::1"
    std::string_view upstream_host;  // "127.0.0.1:3000", used when !preserve_host or no Host
    bool preserve_host = true;
    std::string_view request_id;
    // The peer is one of trusted-proxies (decided once per connection, at accept).
    bool trusted_peer = false;
    std::string_view proto = "http";  // the scheme crudcast itself serves
};

// Applies X-Forwarded-For / -Proto / -Host, Forwarded, Host and X-Request-ID to a request about to
// go upstream. Call after strip_hop_by_hop.
//  - From a trusted peer (a load balancer in front of crudcast): X-Forwarded-For lines are joined in
//    order and the peer appended ("<theirs>, <peer>"); one X-Forwarded-Proto / -Host is kept, none is
//    set from crudcast's own values, and more than one is replaced by them (a chain that cannot say
//    which one is meant is not believed); Forwarded passes as sent.
//  - From any other peer: all three are replaced with crudcast's own (For = the peer, Proto = `proto`,
//    Host = the request's Host, none without one) and Forwarded is removed, so nothing a client
//    claims about its own address or scheme reaches the upstream.
void apply_forwarding_headers(http::fields& fields, const ForwardContext& ctx);

// How crudcast passes an upstream response head on to its client.
struct ResponseHeadRules {
    std::string_view request_id;  // set as X-Request-ID unless the upstream echoed one
    bool keep_alive = false;      // crudcast's own decision about the client connection
    bool own_version = false;     // send HTTP/1.1: an intermediary sends its own version (RFC 9110 §6.2)
    // Re-frames the body: false for an HTTP/1.0 client (no chunked coding there: the body ends at
    // close), true for an EOF-delimited body to keep the client's connection; unset: as received.
    std::optional<bool> chunked = {};
    // crudcast's X-Crudcast-Seq goes on this response: a cross-origin one (it has
    // Access-Control-Allow-Origin) lists it in Access-Control-Expose-Headers, or a browser app
    // could not read it.
    bool expose_seq = false;
};

// Strips the hop-by-hop headers and the upstream's own X-Crudcast-Seq (the position is crudcast's
// to say), adds X-Request-ID, then sets version, framing, Connection and the CORS exposure as
// `rules` say. Forwarded responses and declined upgrades go through it.
void prepare_response_head(http::response<http::buffer_body>& head, const ResponseHeadRules& rules);

// The event stream's position on a proxied response: the event's seq for a write that made one,
// else the position when the request was forwarded.
inline constexpr std::string_view seq_header = "X-Crudcast-Seq";
// Room for "X-Crudcast-Seq: <any uint64>\r\n".
inline constexpr std::size_t seq_line_max = seq_header.size() + 2 + 20 + 2;
// Writes "X-Crudcast-Seq: <seq>\r\n" to `out` (seq_line_max bytes of room); returns its length.
// (The header costs about 1k instructions a request and no allocation: callgrind, a GET and a POST
// through the demo backend, 60.3M -> 61.35M instructions over 500 of each, operator new calls unchanged.)
std::size_t seq_header_line(std::uint64_t seq, char* out);
// Removes every X-Crudcast-Seq line; when the head has Access-Control-Allow-Origin and `expose`,
// appends X-Crudcast-Seq to Access-Control-Expose-Headers (created when absent; several lines
// become one) unless one of its tokens already names it, in any case.
void apply_seq_cors_rules(http::fields& fields, bool expose);
// Adds X-Request-ID unless the upstream's response already carries one.
void add_request_id(http::fields& fields, std::string_view request_id);

// A client's X-Request-ID is kept when it is 1..128 characters of [A-Za-z0-9._~:/+=@-];
// anything else (empty, too long, spaces, control bytes) is replaced by a generated id.
bool is_acceptable_request_id(std::string_view id);
// 32 lower-case hex digits from a per-thread PRNG seeded from std::random_device.
std::string generate_request_id();

// What to do with a request target (RFC 9112 §3.2).
struct TargetDecision {
    enum Kind { forward, reject } kind = forward;
    std::string target;     // the target to send upstream (origin-form), when forward
    std::string reason;     // why, when reject
    std::string authority;  // an accepted absolute-form target's host[:port]: the request's Host (RFC 9112 §3.2.2)
};

// origin-form ("/path?q") and asterisk-form ("*") pass byte for byte, prefixed with base_path.
// absolute-form ("http://host/path") is accepted only when its authority is one of
// `own_authorities` (crudcast's own address or the upstream's), reduced to origin-form;
// any other host is refused, so crudcast is never an open proxy. authority-form (CONNECT) is refused.
TargetDecision decide_target(std::string_view target, std::string_view base_path,
                             const std::vector<std::string>& own_authorities);

// True when the request asks for a protocol upgrade (Connection: upgrade + Upgrade header).
bool is_upgrade_request(const http::fields& fields);

// True when an Accept value names text/event-stream (any case, parameters ignored; */* does not
// count: a client that accepts anything gets the WebSocket hint, not a stream it did not ask for).
bool accepts_event_stream(std::string_view accept);

// Idempotent methods (RFC 9110 §9.2.2) may be retried on a fresh upstream connection.
bool is_idempotent(std::string_view method);

}  // namespace crudcast::proxy
