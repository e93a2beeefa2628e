// error_response.cpp: see error_response.hpp.
#include "proxy/error_response.hpp"

#include <cstdio>

namespace crudcast::proxy {

std::string json_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 8);
    for (unsigned char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out;
}

http::response<http::string_body> error_response(http::status status, std::string_view error,
                                                 std::string_view detail, std::string_view request_id,
                                                 unsigned version, bool keep_alive) {
    http::response<http::string_body> res{status, version};
    res.set(http::field::content_type, "application/json");
    res.set("X-Request-ID", request_id);
    res.body() = "{\"error\":\"" + json_escape(error) + "\",\"detail\":\"" + json_escape(detail) + "\"}\n";
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
}

}  // namespace crudcast::proxy
