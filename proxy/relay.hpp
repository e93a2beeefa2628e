// relay.hpp: streams one HTTP message (its head already parsed by Beast) from one socket to
// another through a fixed-size buffer, so a body of any size crosses crudcast in bounded memory.
// The head and the first body bytes leave in one gather write. Internal to proxy/.
#pragma once

#include <array>
#include <chrono>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/write.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include "common/asio.hpp"
#include "proxy/deadline.hpp"
#include "proxy/wire.hpp"

namespace crudcast::proxy {

namespace http = beast::http;

struct RelayResult {
    error_code read_error;         // reading the source (the sender went away, timed out, broke framing)
    error_code write_error;        // writing the destination
    std::uint64_t body_bytes = 0;  // body bytes taken from the source
    bool wrote = false;            // bytes of the message went to the destination
    bool ok() const { return !read_error && !write_error; }
};

// Chunk extensions and trailers are header bytes in the body: they count against a header limit.
// The callback Beast's parser calls for each chunk line (a chunk line longer than the source's
// buffer never gets here: the bounded buffer overflows first). Lives as long as its parsers.
struct ChunkLineLimit {
    std::size_t limit = 0;
    void operator()(std::uint64_t, beast::string_view extensions, error_code& ec) const {
        if (extensions.size() > limit) ec = http::error::header_limit;
    }
};

// A failed read that means the source's chunk lines or trailers passed its header limit.
inline bool is_framing_overflow(const error_code& ec) {
    return ec == http::error::header_limit || ec == http::error::buffer_overflow;
}

// Bytes of the fields after the first `skip` (the trailers a chunked body added to its head).
template <class Fields>
std::size_t trailer_bytes(const Fields& fields, std::size_t skip) {
    std::size_t bytes = 0;
    for (const auto& f : fields) {
        if (skip > 0) {
            --skip;
            continue;
        }
        bytes += f.name_string().size() + f.value().size() + 4;
    }
    return bytes;
}

// Optional copy of the first `limit` body bytes (for events); `overflow` once the body is larger.
struct BodyCapture {
    std::size_t limit = 0;
    std::string data;
    bool overflow = false;
};

inline constexpr std::size_t relay_buffer_size = 64 * 1024;

// Relay buffers are recycled per thread: allocating and freeing 64 KiB per message makes glibc
// trim and re-fault the heap on every request (measured: ~0.7 page faults per request).
class RelayBuffer {
public:
    RelayBuffer() = default;
    RelayBuffer(const RelayBuffer&) = delete;
    RelayBuffer& operator=(const RelayBuffer&) = delete;
    ~RelayBuffer() {
        if (!data_) return;
        auto& cache = free_list();
        if (cache.size() < 32) cache.push_back(std::move(data_));
    }
    char* get() {
        if (!data_) {
            auto& cache = free_list();
            if (cache.empty()) {
                data_.reset(new char[relay_buffer_size]);
            } else {
                data_ = std::move(cache.back());
                cache.pop_back();
            }
        }
        return data_.get();
    }

private:
    static std::vector<std::unique_ptr<char[]>>& free_list() {
        thread_local std::vector<std::unique_ptr<char[]>> cache;
        return cache;
    }
    std::unique_ptr<char[]> data_;
};

struct RelayLeg {
    tcp::socket& socket;
    Side side;
    std::chrono::milliseconds timeout;
    // As a source: the limit on its chunk lines and trailers (null: none).
    ChunkLineLimit* chunk_limit = nullptr;
    // As a source: a stall past `timeout` cancels the read instead of closing the socket, so an
    // answer (408) can still be written to it.
    Expiry on_expiry = Expiry::close;
};

// Writes parser.get() (its head as it is now, then the body as it is read) from `from` to `to`.
// The body is chunk-framed when the head says chunked, raw otherwise. `body_allowed` is false for
// answers that never carry a body (to HEAD, 204, 304). `before_last_write` runs once, just before
// the write that completes the message (the hook for read-your-writes events).
// Appends `n` body bytes to the capture while they fit; past its limit the capture only says so.
inline void capture_append(BodyCapture* capture, const char* data, std::size_t n) {
    if (!capture || capture->overflow) return;
    if (capture->data.size() + n <= capture->limit) {
        capture->data.append(data, n);
    } else {
        capture->overflow = true;
        std::string().swap(capture->data);
    }
}

// Writes parser.get() (its head as it is now, then the body as it is read) from `from` to `to`.
// The body is chunk-framed when the head says chunked, raw otherwise. `body_allowed` is false for
// answers that never carry a body (to HEAD, 204, 304). `before_last_write` runs once, just before
// the write that completes the message (the hook for read-your-writes events). When the
// destination fails while a capture is still within its limit, the source is read to its end all
// the same and `before_last_write` still runs: the event of a write whose client left is not lost.
template <bool isRequest, class BeforeLastWrite>
asio::awaitable<RelayResult> relay_message(Deadline& deadline, RelayLeg from, beast::flat_buffer& from_buffer,
                                           http::parser<isRequest, http::buffer_body>& parser, RelayLeg to,
                                           bool body_allowed, BodyCapture* capture,
                                           BeforeLastWrite&& before_last_write) {
    RelayResult result;
    RelayBuffer chunk;  // taken only when there is a body
    std::string head;
    head.reserve(512);
    serialize_head(parser.get().base(), head);
    const bool chunked = body_allowed && parser.get().chunked();
    // The source's chunk lines and trailers count against its header limit.
    const bool limit_chunks = from.chunk_limit != nullptr && parser.chunked() && !parser.is_done();
    const auto head_fields =
        limit_chunks ? static_cast<std::size_t>(std::distance(parser.get().begin(), parser.get().end())) : 0;
    if (limit_chunks) parser.on_chunk_header(*from.chunk_limit);
    bool finished = false;
    bool draining = false;  // the destination failed: the source is only read, for the capture
    char size_line[20];
    while (!finished) {
        std::size_t got = 0;
        auto& body = parser.get().body();
        if (!parser.is_done()) {
            body.data = chunk.get();
            body.size = relay_buffer_size;
            deadline.expect(from.side, from.timeout, from.on_expiry);
            auto [ec, n] = co_await http::async_read_some(from.socket, from_buffer, parser, use_nothrow);
            (void)n;
            if (ec == http::error::need_buffer) ec = {};
            if (ec) {
                result.read_error = deadline.expired() ? beast::error::timeout : ec;
                co_return result;
            }
            got = relay_buffer_size - body.size;
            result.body_bytes += got;
            capture_append(capture, chunk.get(), got);
        }
        finished = parser.is_done();
        if (finished && limit_chunks && trailer_bytes(parser.get(), head_fields) > from.chunk_limit->limit) {
            result.read_error = http::error::header_limit;
            co_return result;
        }
        if (draining) {
            if (capture->overflow) co_return result;  // no event can come of it any more
            if (finished) before_last_write();
            continue;
        }
        if (got == 0 && !finished && result.wrote) continue;  // nothing new to send yet
        std::array<asio::const_buffer, 5> out;
        std::size_t count = 0;
        if (!result.wrote) out[count++] = asio::buffer(head);
        if (got > 0) {
            if (chunked) out[count++] = asio::buffer(size_line, chunk_size_line(got, size_line));
            out[count++] = asio::buffer(chunk.get(), got);
            if (chunked) out[count++] = asio::buffer(crlf, 2);
        }
        if (finished) {
            if (chunked) out[count++] = asio::buffer(last_chunk, 5);
            before_last_write();
        }
        result.wrote = true;
        deadline.expect(to.side, to.timeout);
        auto [ec, n] =
            co_await asio::async_write(to.socket, std::span<const asio::const_buffer>(out.data(), count), use_nothrow);
        (void)n;
        if (ec) {
            result.write_error = deadline.expired() ? beast::error::timeout : ec;
            if (finished || capture == nullptr || capture->overflow) co_return result;
            draining = true;
        }
    }
    co_return result;
}

}  // namespace crudcast::proxy
