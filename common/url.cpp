// url.cpp: the Boost.URL calls behind url.hpp (Boost.URL's own sources compile in boost_impl.cpp).
#include "common/url.hpp"

#include <algorithm>

#include <boost/url/authority_view.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/grammar/hexdig_chars.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/parse_path.hpp>
#include <boost/url/pct_string_view.hpp>
#include <boost/url/rfc/sub_delim_chars.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url_view.hpp>

namespace crudcast::url {

namespace urls = boost::urls;

namespace {

// "scheme://...": a target with an authority. Checked before Boost.URL reads anything: 1.81 fails an
// assertion on a scheme followed by an empty path and a '?' or '#' ("a:?"), which has no authority.
bool has_authority(std::string_view text) {
    const auto colon = text.find(':');
    return colon != std::string_view::npos && colon > 0 && text.substr(colon + 1).starts_with("//");
}

// A request target as Boost.URL reads it: origin form ("/a?q", where "//a" is a path, not a host),
// absolute form ("http://h/a?q"), or a bare path with no query ("*", the authority form "h:443").
struct Target {
    std::string_view path;              // still encoded
    std::optional<urls::url_view> url;  // none for a bare path
};

// Boost.URL 1.81 takes "http://h:x/a" as host "h", an empty port and the path "x/a": after an
// authority RFC 3986 allows only an empty path or one starting with '/', so that is refused here.
bool valid_after_authority(const urls::url_view& url) {
    return !url.has_authority() || url.encoded_path().empty() || url.encoded_path().starts_with('/');
}

std::optional<Target> read_target(std::string_view target) {
    if (target.starts_with('/')) {
        // The origin form has no fragment; one a client sends anyway ends the path, as in any URL.
        const auto parsed = urls::parse_origin_form(target.substr(0, target.find('#')));
        if (!parsed) return std::nullopt;
        return Target{parsed->encoded_path(), *parsed};
    }
    if (has_authority(target)) {
        const auto parsed = urls::parse_uri(target);
        if (!parsed || !valid_after_authority(*parsed)) return std::nullopt;
        return Target{parsed->encoded_path(), *parsed};
    }
    // These forms have no query; a '?' or '#' a client sends anyway ends the path, as in a URL.
    const auto path = target.substr(0, target.find_first_of("?#"));
    if (!urls::parse_path(path)) return std::nullopt;
    return Target{path, std::nullopt};
}

std::string decoded(urls::pct_string_view text) {
    std::string out;
    out.resize(text.decoded_size());
    text.decode({}, urls::string_token::assign_to(out));
    return out;
}

bool starts_escape(std::string_view text, std::size_t at) {
    return at + 2 < text.size() && text[at] == '%' && urls::grammar::hexdig_chars(text[at + 1]) &&
           urls::grammar::hexdig_chars(text[at + 2]);
}

template <class View>
UrlParts parts_of(const View& view) {
    UrlParts parts;
    parts.has_userinfo = view.has_userinfo();
    parts.ipv6 = view.host_type() == urls::host_type::ipv6;
    parts.host = parts.ipv6 ? std::string(view.host_address()) : std::string(view.encoded_host());
    if (view.has_port()) parts.port = std::string(view.port());
    parts.authority = std::string(view.encoded_host_and_port());
    if (view.has_userinfo()) parts.authority.insert(0, std::string(view.encoded_userinfo()) + "@");
    return parts;
}

}  // namespace

std::optional<std::vector<std::string>> path_segments(std::string_view target) {
    // Nearly every request reads as it is written: an origin-form target of plain characters (no
    // escape, no byte RFC 3986 forbids) is valid and decodes to itself, so it is split here; Boost.URL
    // reads the rest. Measured with callgrind: Boost.URL's origin-form parse is ~2k instructions a
    // request, as much as the rest of the event mapper, and every POST reads its path twice.
    std::string_view path;
    const bool plain = target.starts_with('/') && std::ranges::all_of(target, [](char c) {
                           return urls::unreserved_chars(c) || urls::sub_delim_chars(c) || c == ':' || c == '@' ||
                                  c == '/' || c == '?';
                       });
    if (plain) {
        path = target.substr(0, target.find('?'));
    } else {
        const auto read = read_target(target);
        if (!read) return std::nullopt;
        path = read->path;
    }
    // Split here rather than through segments(), which hides a leading "." segment (Boost.URL's way
    // of keeping "/.//a" a path): crudcast reports the path as the client wrote it.
    if (path.starts_with('/')) path.remove_prefix(1);
    std::vector<std::string> out;
    if (path.empty()) return out;
    for (std::size_t start = 0;;) {
        const auto slash = std::min(path.find('/', start), path.size());
        const auto segment = path.substr(start, slash - start);
        // Boost.URL has validated every escape of a target that is not plain, so this cannot fail.
        out.push_back(plain ? std::string(segment) : decoded(urls::make_pct_string_view(segment).value()));
        if (slash == path.size()) return out;
        start = slash + 1;
    }
}

std::optional<std::vector<std::string>> query_values(std::string_view target, std::string_view key) {
    const auto read = read_target(target);
    if (!read) return std::nullopt;
    std::vector<std::string> out;
    if (!read->url) return out;
    for (const auto& param : read->url->params()) {
        if (param.key == key) out.push_back(param.has_value ? param.value : std::string());
    }
    return out;
}

std::optional<std::string> percent_decode(std::string_view text) {
    auto pct = urls::make_pct_string_view(text);
    if (!pct) return std::nullopt;
    return decoded(*pct);
}

std::string encode_query_value(std::string_view text) { return urls::encode(text, urls::unreserved_chars); }

std::string escape_invalid(std::string_view target) {
    // Brackets are legal only around an IPv6 host, so they stay only in an absolute URL's authority.
    std::size_t host_end = 0;
    if (const auto scheme = target.find("://"); !target.starts_with('/') && scheme != std::string_view::npos)
        host_end = std::min(target.find_first_of("/?#", scheme + 3), target.size());
    constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    bool in_fragment = false;
    for (std::size_t i = 0; i < target.size(); ++i) {
        const char c = target[i];
        const bool keep = c == '%'               ? starts_escape(target, i)
                          : c == '#'             ? !in_fragment
                          : c == '[' || c == ']' ? i < host_end
                                                 : urls::unreserved_chars(c) || urls::sub_delim_chars(c) || c == ':' ||
                                                       c == '@' || c == '/' || c == '?';
        in_fragment = in_fragment || c == '#';
        if (keep) {
            out += c;
        } else {
            out += '%';
            out += hex[static_cast<unsigned char>(c) >> 4];
            out += hex[static_cast<unsigned char>(c) & 15];
        }
    }
    return out;
}

std::optional<UrlParts> parse_url(std::string_view text) {
    if (!has_authority(text)) return std::nullopt;
    const auto view = urls::parse_uri(text);
    if (!view || !valid_after_authority(*view) || view->host_type() == urls::host_type::ipvfuture) return std::nullopt;
    UrlParts parts = parts_of(*view);
    parts.scheme = std::string(view->scheme());
    parts.path = std::string(view->encoded_path());
    parts.target = std::string(view->encoded_target());
    parts.has_query = view->has_query();
    parts.has_fragment = view->has_fragment();
    return parts;
}

std::optional<UrlParts> parse_authority(std::string_view text) {
    const auto view = urls::parse_authority(text);
    if (!view || view->host_type() == urls::host_type::ipvfuture) return std::nullopt;
    return parts_of(*view);
}

std::string redact_query_value(std::string_view target, std::string_view key) {
    const auto question = target.find('?');
    if (question == std::string_view::npos) return std::string(target);
    const auto fragment = target.find('#', question);
    std::string out(target.substr(0, question + 1));
    std::string_view query =
        target.substr(question + 1, fragment == std::string_view::npos ? target.npos : fragment - question - 1);
    while (true) {
        const auto amp = query.find('&');
        const auto pair = query.substr(0, amp);
        if (pair.size() > key.size() && pair.starts_with(key) && pair[key.size()] == '=') {
            out.append(key).append("=REDACTED");
        } else {
            out.append(pair);
        }
        if (amp == std::string_view::npos) break;
        out += '&';
        query.remove_prefix(amp + 1);
    }
    if (fragment != std::string_view::npos) out.append(target.substr(fragment));
    return out;
}

}  // namespace crudcast::url
