// error_response.cpp: see error_response.hpp.
#include "proxy/error_response.hpp"

#include "common/json_text.hpp"
#include "common/log.hpp"

namespace crudcast::proxy {

http::response<http::string_body> error_response(http::status status, std::string_view error, std::string_view detail,
                                                 std::string_view request_id, unsigned version, bool keep_alive) {
    http::response<http::string_body> res{status, version};
    res.set(http::field::content_type, "application/json");
    res.set("X-Request-ID", request_id);
    auto& body = res.body();
    body = "{\"error\":\"";
    append_json_escaped(body, error);
    body += "\",\"detail\":\"";
    append_json_escaped(body, detail);
    body += "\"}\n";
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
}

}  // namespace crudcast::proxy
