// wire.cpp: see wire.hpp.
#include "proxy/wire.hpp"

#include <charconv>

namespace crudcast::proxy {

namespace {

void append_version(unsigned version, std::string& out) { out += version == 10 ? "HTTP/1.0" : "HTTP/1.1"; }

template <bool isRequest>
void append_fields(const http::header<isRequest>& head, std::string& out) {
    for (const auto& f : head) {
        const auto name = f.name_string();
        const auto value = f.value();
        out.append(name.data(), name.size());
        out += ": ";
        out.append(value.data(), value.size());
        out += "\r\n";
    }
    out += "\r\n";
}

}  // namespace

void serialize_head(const http::request_header<>& head, std::string& out) {
    const auto method = head.method_string();
    const auto target = head.target();
    out.append(method.data(), method.size());
    out += ' ';
    out.append(target.data(), target.size());
    out += ' ';
    append_version(head.version(), out);
    out += "\r\n";
    append_fields(head, out);
}

void serialize_head(const http::response_header<>& head, std::string& out) {
    append_version(head.version(), out);
    out += ' ';
    char code[8];
    auto r = std::to_chars(code, code + sizeof code, head.result_int());
    out.append(code, r.ptr);
    out += ' ';
    const auto reason = head.reason();
    out.append(reason.data(), reason.size());
    out += "\r\n";
    append_fields(head, out);
}

std::size_t chunk_size_line(std::size_t size, char* out) {
    auto r = std::to_chars(out, out + 16, size, 16);
    r.ptr[0] = '\r';
    r.ptr[1] = '\n';
    return static_cast<std::size_t>(r.ptr + 2 - out);
}

}  // namespace crudcast::proxy
