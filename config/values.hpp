// values.hpp: config/'s own value readers for the settings table (settings.cpp); not for other
// folders. Each throws std::invalid_argument with a message that quotes the value (masked).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace crudcast::config::values {

[[noreturn]] void fail(const std::string& problem);
bool has_space_or_control(std::string_view text);
// Letters, digits, '.', '-' and '_' only, not empty: "localhost", "crudcast-admin.internal".
bool is_host_name(std::string_view host);
// Plain non-negative integer, no unit ("4", not "4k"), at most `max`.
std::uint64_t parse_count(const std::string& text, std::uint64_t max);
// "host:port", "[v6]:port" or ":port" (all interfaces).
Endpoint parse_endpoint(const std::string& text);
std::string show_endpoint(const Endpoint& endpoint);
// "http://host[:port][/base]", read by Boost.URL; credentials and https refused.
UpstreamUrl parse_upstream(const std::string& text);
bool parse_bool(const std::string& text);
// "a, b,c" -> {"a", "b", "c"}; an empty entry is refused.
std::vector<std::string> split_list(const std::string& text);
std::string join(const std::vector<std::string>& items);

}  // namespace crudcast::config::values
