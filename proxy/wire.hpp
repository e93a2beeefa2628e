// wire.hpp: writes HTTP/1.1 message heads and chunk framing into contiguous bytes, so a message
// goes out as one gather write of a few buffers (Beast's generic serializer costs several times
// more CPU per message on the hot path). Parsing stays with Beast's parser.
#pragma once

#include <cstddef>
#include <string>

#include <boost/beast/http/message.hpp>

namespace crudcast::proxy {

namespace http = boost::beast::http;

// "METHOD target HTTP/1.x\r\n" + fields + "\r\n", appended to out. Field names keep their case.
void serialize_head(const http::request_header<>& head, std::string& out);
// "HTTP/1.x code reason\r\n" + fields + "\r\n"; the reason phrase is the one received.
void serialize_head(const http::response_header<>& head, std::string& out);

// "1a2b\r\n" for a chunk of `size` bytes; returns the number of characters written (<= 18).
std::size_t chunk_size_line(std::size_t size, char* out);

inline constexpr char last_chunk[] = "0\r\n\r\n";
inline constexpr char crlf[] = "\r\n";

}  // namespace crudcast::proxy
