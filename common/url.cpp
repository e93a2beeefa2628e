// url.cpp: the Boost.URL calls behind url.hpp (Boost.URL's own sources compile in boost_impl.cpp).
#include "common/url.hpp"

#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url_view.hpp>

namespace crudcast::url {

namespace urls = boost::urls;

namespace {

std::optional<urls::url_view> parse_target(std::string_view target) {
    auto parsed = urls::parse_uri_reference(target);
    if (!parsed) return std::nullopt;
    return *parsed;
}

}  // namespace

std::optional<std::vector<std::string>> path_segments(std::string_view target) {
    const auto view = parse_target(target);
    if (!view) return std::nullopt;
    std::vector<std::string> out;
    for (const auto& segment : view->segments()) out.push_back(segment);
    return out;
}

std::optional<std::vector<std::string>> query_values(std::string_view target, std::string_view key) {
    const auto view = parse_target(target);
    if (!view) return std::nullopt;
    std::vector<std::string> out;
    for (const auto& param : view->params()) {
        if (param.key == key) out.push_back(param.has_value ? param.value : std::string());
    }
    return out;
}

std::optional<std::string> percent_decode(std::string_view text) {
    auto pct = urls::make_pct_string_view(text);
    if (!pct) return std::nullopt;
    std::string out;
    out.resize(pct->decoded_size());
    pct->decode({}, urls::string_token::assign_to(out));
    return out;
}

std::string encode_query_value(std::string_view text) {
    return urls::encode(text, urls::unreserved_chars);
}

}  // namespace crudcast::url
