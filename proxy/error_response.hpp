// error_response.hpp: the small JSON error answers crudcast itself gives
// (`{"error": "...", "detail": "..."}`), in one place so they stay consistent.
#pragma once

#include <string>
#include <string_view>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace crudcast::proxy {

namespace http = boost::beast::http;

// `error` is a short stable code ("bad_gateway"), `detail` a human sentence.
http::response<http::string_body> error_response(http::status status, std::string_view error, std::string_view detail,
                                                 std::string_view request_id, unsigned version, bool keep_alive);

}  // namespace crudcast::proxy
