// header_rules.cpp: see header_rules.hpp.
#include "proxy/header_rules.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <random>
#include <span>
#include <vector>

#include <boost/beast/http/rfc7230.hpp>
#include <boost/container/small_vector.hpp>
#include <boost/url/scheme.hpp>

#include "common/text.hpp"

namespace crudcast::proxy {

namespace urls = boost::urls;

namespace {

// A field a proxy must not forward (RFC 9110 §7.6.1): the connection-specific ones, and every field
// a Connection line names, except framing and Host, which crudcast decides itself.
bool is_hop_by_hop(const http::fields::value_type& f, std::span<const std::string_view> named, bool keep_upgrade) {
    switch (f.name()) {
        case http::field::keep_alive:
        case http::field::te:
        case http::field::trailer: return true;
        case http::field::upgrade: return !keep_upgrade;
        case http::field::content_length:
        case http::field::transfer_encoding:
        case http::field::host:
        case http::field::connection:  // erased after the walk: `named` points into its value
            return false;
        default: break;
    }
    const auto name = f.name_string();
    if (name.size() == 16 && iequals(name, "Proxy-Connection")) return true;
    return std::any_of(named.begin(), named.end(), [&](std::string_view token) { return iequals(name, token); });
}

}  // namespace

void strip_hop_by_hop(http::fields& fields, bool keep_upgrade) {
    // One walk over the list instead of a lookup per name in Beast's case-insensitive index (the
    // common message has no hop-by-hop field at all, or only Connection/Keep-Alive). Walk every
    // Connection line: Beast's equal_range assumes same-name fields are adjacent.
    boost::container::small_vector<std::string_view, 8> named;
    bool connection = false, upgrade = false;
    for (const auto& f : fields) {
        if (f.name() == http::field::upgrade) upgrade = true;
        if (f.name() != http::field::connection) continue;
        connection = true;
        for (auto token : http::token_list(f.value())) named.emplace_back(token.data(), token.size());
    }
    for (auto it = fields.begin(); it != fields.end();)
        it = is_hop_by_hop(*it, named, keep_upgrade) ? fields.erase(it) : std::next(it);
    if (connection) fields.erase(http::field::connection);
    if (keep_upgrade && upgrade) fields.set(http::field::connection, "upgrade");
}

namespace {

// The forwarding headers a request arrived with, read in one walk over the field list (Beast's name
// index compares names case-insensitively node by node: a lookup per name cost more than the walk).
struct Arrived {
    enum Name { none, xff, proto, xhost, request_id };
    std::size_t count[5] = {};
    bool blank[5] = {};  // a line of that name is empty after trimming
    bool forwarded = false;
    std::string_view host;
    bool any() const { return count[xff] + count[proto] + count[xhost] + count[request_id] > 0 || forwarded; }
};

Arrived::Name forwarding_name(const http::fields::value_type& f) {
    if (f.name() != http::field::unknown) return Arrived::none;
    const auto name = f.name_string();
    if (name.size() == 15 && iequals(name, "X-Forwarded-For")) return Arrived::xff;
    if (name.size() == 17 && iequals(name, "X-Forwarded-Proto")) return Arrived::proto;
    if (name.size() == 16 && iequals(name, "X-Forwarded-Host")) return Arrived::xhost;
    if (name.size() == 12 && iequals(name, "X-Request-ID")) return Arrived::request_id;
    return Arrived::none;
}

Arrived read_arrived(const http::fields& fields) {
    Arrived a;
    for (const auto& f : fields) {
        if (f.name() == http::field::host) a.host = f.value();
        if (f.name() == http::field::forwarded) a.forwarded = true;
        const auto n = forwarding_name(f);
        if (n == Arrived::none) continue;
        ++a.count[n];
        if (trim(f.value()).empty()) a.blank[n] = true;
    }
    return a;
}

}  // namespace

void apply_forwarding_headers(http::fields& fields, const ForwardContext& ctx) {
    const auto arrived = read_arrived(fields);
    // A trusted peer's single non-empty X-Forwarded-Proto / -Host is kept; anything else is replaced.
    const auto keeps = [&](Arrived::Name n) { return ctx.trusted_peer && arrived.count[n] == 1 && !arrived.blank[n]; };
    const bool keep_proto = keeps(Arrived::proto), keep_xhost = keeps(Arrived::xhost);
    // X-Forwarded-For: a trusted peer's chain (every line, in order), then the peer itself.
    std::string xff;
    if (arrived.any()) {
        for (auto it = fields.begin(); it != fields.end();) {
            const auto n = forwarding_name(*it);
            const bool drop = (n == Arrived::xff) || (n == Arrived::proto && !keep_proto) ||
                              (n == Arrived::xhost && !keep_xhost) || n == Arrived::request_id ||
                              (it->name() == http::field::forwarded && !ctx.trusted_peer);
            if (n == Arrived::xff && ctx.trusted_peer) {
                const auto v = trim(it->value());
                if (!v.empty()) {
                    if (!xff.empty()) xff += ", ";
                    xff.append(v.data(), v.size());
                }
            }
            it = drop ? fields.erase(it) : std::next(it);
        }
    }
    if (!xff.empty()) xff += ", ";
    xff.append(ctx.client_ip.data(), ctx.client_ip.size());
    fields.insert("X-Forwarded-For", xff);
    if (!keep_proto && !ctx.proto.empty()) fields.insert("X-Forwarded-Proto", ctx.proto);
    if (!keep_xhost && !arrived.host.empty()) fields.insert("X-Forwarded-Host", arrived.host);
    if (!ctx.preserve_host || arrived.host.empty()) fields.set(http::field::host, ctx.upstream_host);
    fields.insert("X-Request-ID", ctx.request_id);
}

void prepare_response_head(http::response<http::buffer_body>& head, const ResponseHeadRules& rules) {
    strip_hop_by_hop(head);
    apply_seq_cors_rules(head, rules.expose_seq);
    add_request_id(head, rules.request_id);
    if (rules.own_version) head.version(11);
    if (rules.chunked) head.chunked(*rules.chunked);
    head.keep_alive(rules.keep_alive);  // after the version: what it writes depends on it
}

std::size_t seq_header_line(std::uint64_t seq, char* out) {
    char* p = std::copy(seq_header.begin(), seq_header.end(), out);
    *p++ = ':';
    *p++ = ' ';
    p = std::to_chars(p, p + 20, seq).ptr;
    *p++ = '\r';
    *p++ = '\n';
    return static_cast<std::size_t>(p - out);
}

void apply_seq_cors_rules(http::fields& fields, bool expose) {
    // One walk: Beast's index compares unknown names node by node, and most responses have neither
    // an X-Crudcast-Seq nor CORS headers, so the walk finds nothing and changes nothing.
    bool cors = false;
    std::size_t exposes = 0;
    bool exposed = false;
    for (auto it = fields.begin(); it != fields.end();) {
        if (it->name() == http::field::access_control_allow_origin) cors = true;
        if (it->name() == http::field::access_control_expose_headers) {
            ++exposes;
            for (auto token : http::token_list(it->value()))
                exposed = exposed || iequals(std::string_view(token.data(), token.size()), seq_header);
        }
        const auto name = it->name_string();
        const bool own = it->name() == http::field::unknown && iequals(name, seq_header);
        it = own ? fields.erase(it) : std::next(it);
    }
    if (!expose || !cors || exposed) return;
    if (exposes == 0) {
        fields.insert(http::field::access_control_expose_headers, seq_header);
        return;
    }
    std::string list;
    for (const auto& f : fields) {
        if (f.name() != http::field::access_control_expose_headers) continue;
        const auto value = trim(f.value());
        if (value.empty()) continue;
        if (!list.empty()) list += ", ";
        list.append(value.data(), value.size());
    }
    if (!list.empty()) list += ", ";
    list.append(seq_header.data(), seq_header.size());
    fields.set(http::field::access_control_expose_headers, list);
}

void add_request_id(http::fields& fields, std::string_view request_id) {
    if (fields.count("X-Request-ID") == 0) fields.set("X-Request-ID", request_id);
}

bool is_acceptable_request_id(std::string_view id) {
    if (id.empty() || id.size() > 128) return false;
    return std::all_of(id.begin(), id.end(), [](unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
               c == '~' || c == ':' || c == '/' || c == '+' || c == '=' || c == '@' || c == '-';
    });
}

std::string generate_request_id() {
    thread_local std::mt19937_64 rng{[] {
        std::random_device rd;
        return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    }()};
    static constexpr char hex[] = "0123456789abcdef";
    std::string id(32, '0');
    std::uint64_t a = rng(), b = rng();
    for (int i = 0; i < 16; ++i) {
        id[i] = hex[(a >> (i * 4)) & 15];
        id[16 + i] = hex[(b >> (i * 4)) & 15];
    }
    return id;
}

TargetDecision decide_target(std::string_view target, std::string_view base_path,
                             const std::vector<std::string>& own_authorities) {
    TargetDecision d;
    if (target.empty()) {
        d.kind = TargetDecision::reject;
        d.reason = "empty request target";
        return d;
    }
    if (target.front() == '/') {
        d.target.reserve(base_path.size() + target.size());
        d.target.append(base_path).append(target);
        return d;
    }
    if (target == "*") {
        // OPTIONS * names the server itself; with a base path it becomes the base path.
        d.target = base_path.empty() ? std::string("*") : std::string(base_path);
        return d;
    }
    // absolute-form: Boost.URL names the scheme (in any case). The authority is compared as it is with
    // crudcast's own (stricter than any parse), and the path and query pass byte for byte as in
    // origin-form: a full URL parse would refuse targets forwarded today (a `%zz` in a query).
    const auto scheme_end = target.find("://");
    const auto scheme = scheme_end == std::string_view::npos ? urls::scheme::none
                                                             : urls::string_to_scheme(target.substr(0, scheme_end));
    const auto rest = scheme == urls::scheme::none ? std::string_view() : target.substr(scheme_end + 3);
    if ((scheme != urls::scheme::http && scheme != urls::scheme::https) || rest.empty()) {
        d.kind = TargetDecision::reject;
        d.reason = "request target is not origin-form or absolute-form";
        return d;
    }
    const auto slash = rest.find_first_of("/?");
    const auto authority = rest.substr(0, slash);
    const bool own = std::any_of(own_authorities.begin(), own_authorities.end(),
                                 [&](const std::string& a) { return !a.empty() && iequals(a, authority); });
    if (!own) {
        d.kind = TargetDecision::reject;
        d.reason = "absolute-form target names another host; crudcast is not a forward proxy";
        return d;
    }
    d.authority = authority;
    d.target.append(base_path);
    if (slash == std::string_view::npos) {
        d.target += '/';
    } else {
        if (rest[slash] == '?') d.target += '/';
        d.target.append(rest.substr(slash));
    }
    return d;
}

bool is_upgrade_request(const http::fields& fields) {
    if (fields.count(http::field::upgrade) == 0) return false;
    for (const auto& f : fields) {
        if (f.name() == http::field::connection && http::token_list(f.value()).exists("upgrade")) return true;
    }
    return false;
}

bool is_idempotent(std::string_view method) {
    static constexpr std::array<std::string_view, 6> methods{"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    return std::find(methods.begin(), methods.end(), method) != methods.end();
}

bool accepts_event_stream(std::string_view accept) {
    while (!accept.empty()) {
        const auto comma = accept.find(',');
        auto range = accept.substr(0, comma);
        range = trim(range.substr(0, range.find(';')));
        if (iequals(range, "text/event-stream")) return true;
        accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
    }
    return false;
}

}  // namespace crudcast::proxy
