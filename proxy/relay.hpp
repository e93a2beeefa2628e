// relay.hpp: streams one HTTP message (its head already parsed by Beast) from one socket to
// another through a fixed-size buffer, so a body of any size crosses crudcast in bounded memory.
// The head and the first body bytes leave in one gather write; a message captured for an event is
// held until it is complete (bounded by the capture's limit). Internal to proxy/.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <boost/asio/write.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/optional/optional.hpp>

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
// While the copy is within its limit, relay_message holds the message back (the copy is the body
// it would have written), so the head can still carry what before_last_write learns.
struct BodyCapture {
    std::size_t limit = 0;
    std::string data;
    bool overflow = false;
};

// A header line that joins the head when the head is written, not when it is serialized (before
// any body byte is read, so a chunked body's trailers never become head fields): the event's
// X-Crudcast-Seq is set by before_last_write of a held message. Fixed room: no allocation.
struct LateHeadLine {
    std::array<char, 64> bytes{};
    std::size_t size = 0;
};

inline constexpr std::size_t relay_buffer_size = 64 * 1024;
// Most bodies are small and announce their length: they get a small buffer.
inline constexpr std::size_t small_relay_buffer_size = 4 * 1024;

// Relay buffers are recycled per thread, in two sizes. Allocating and freeing 64 KiB per message makes
// glibc trim and re-fault the heap on every request (measured: ~0.7 page faults per request), and so
// did a cache smaller than the messages in flight (a 64 KiB buffer per response at -c64 overflowed a
// cache of 32: sysmalloc and madvise were 3.5% of the proxy's CPU). A body whose remaining length is
// known and small takes a small buffer, of which the cache keeps many more.
class RelayBuffer {
public:
    RelayBuffer() = default;
    RelayBuffer(const RelayBuffer&) = delete;
    RelayBuffer& operator=(const RelayBuffer&) = delete;
    ~RelayBuffer() {
        if (!data_) return;
        auto& cache = free_list(small_);
        if (cache.size() < (small_ ? 1024 : 32)) cache.push_back(std::move(data_));
    }
    // The buffer, taken at the first call: small when `remaining` (the body's bytes still to read,
    // when known) fits in one.
    char* get(const boost::optional<std::uint64_t>& remaining = boost::none) {
        if (!data_) {
            small_ = remaining && *remaining <= small_relay_buffer_size;
            auto& cache = free_list(small_);
            if (cache.empty()) {
                data_.reset(new char[small_ ? small_relay_buffer_size : relay_buffer_size]);
            } else {
                data_ = std::move(cache.back());
                cache.pop_back();
            }
        }
        return data_.get();
    }
    std::size_t size() const { return small_ ? small_relay_buffer_size : relay_buffer_size; }

private:
    static std::vector<std::unique_ptr<char[]>>& free_list(bool small) {
        thread_local std::vector<std::unique_ptr<char[]>> large_cache;
        thread_local std::vector<std::unique_ptr<char[]>> small_cache;
        return small ? small_cache : large_cache;
    }
    std::unique_ptr<char[]> data_;
    bool small_ = false;
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

// Appends `n` body bytes to the capture while they fit; past its limit the capture only says so
// (what it held is written, then freed, by relay_message).
inline void capture_append(BodyCapture* capture, const char* data, std::size_t n) {
    if (!capture || capture->overflow) return;
    if (capture->data.size() + n <= capture->limit) {
        capture->data.append(data, n);
    } else {
        capture->overflow = true;
    }
}

// Adds one write's body buffers to `out` after `count`: what a capture held and the piece just
// read, chunk-framed when `chunked` (`size_line` holds the size line), then the last chunk when
// `last`. Returns the new count.
inline std::size_t gather_body(std::array<asio::const_buffer, 6>& out, std::size_t count, bool chunked,
                               std::string_view held, std::string_view piece, char* size_line, bool last) {
    const std::size_t bytes = held.size() + piece.size();
    if (bytes > 0) {
        if (chunked) out[count++] = asio::buffer(size_line, chunk_size_line(bytes, size_line));
        if (!held.empty()) out[count++] = asio::buffer(held.data(), held.size());
        if (!piece.empty()) out[count++] = asio::buffer(piece.data(), piece.size());
        if (chunked) out[count++] = asio::buffer(crlf, 2);
    }
    if (last && chunked) out[count++] = asio::buffer(last_chunk, 5);
    return count;
}

// Writes parser.get() (its head as it is now, then the body as it is read) from `from` to `to`.
// The body is chunk-framed when the head says chunked, raw otherwise. `body_allowed` is false for
// answers that never carry a body (to HEAD, 204, 304). `before_last_write` runs once, just before
// the write that completes the message (the hook for read-your-writes events); `late` (may be
// null) is read after it, when the head is written.
// With a capture, nothing is written while the capture is within its limit: head and body leave
// together once the body is complete (chunked: as one chunk), so the head can carry the event's
// seq. A body that outgrows the capture is written from then on as it comes (head, what was held,
// the new piece) and makes no event. A destination that fails meanwhile is not noticed before the
// message is complete: the event of a write whose client left is not lost.
template <bool isRequest, class BeforeLastWrite>
asio::awaitable<RelayResult> relay_message(Deadline& deadline, RelayLeg from, beast::flat_buffer& from_buffer,
                                           http::parser<isRequest, http::buffer_body>& parser, RelayLeg to,
                                           bool body_allowed, BodyCapture* capture, const LateHeadLine* late,
                                           BeforeLastWrite&& before_last_write) {
    RelayResult result;
    RelayBuffer chunk;  // taken only when there is a body
    std::string head;
    head.reserve(512 + sizeof(LateHeadLine::bytes));  // room for the late line: no reallocation
    serialize_head(parser.get().base(), head);
    const bool chunked = body_allowed && parser.get().chunked();
    // The source's chunk lines and trailers count against its header limit.
    const bool limit_chunks = from.chunk_limit != nullptr && parser.chunked() && !parser.is_done();
    const auto head_fields =
        limit_chunks ? static_cast<std::size_t>(std::distance(parser.get().begin(), parser.get().end())) : 0;
    if (limit_chunks) parser.on_chunk_header(*from.chunk_limit);
    bool finished = false;
    char size_line[20];
    while (!finished) {
        std::size_t got = 0;
        auto& body = parser.get().body();
        if (!parser.is_done()) {
            body.data = chunk.get(parser.content_length_remaining());
            body.size = chunk.size();
            deadline.expect(from.side, from.timeout, from.on_expiry);
            auto [ec, n] = co_await http::async_read_some(from.socket, from_buffer, parser, use_nothrow);
            (void)n;
            if (ec == http::error::need_buffer) ec = {};
            if (ec) {
                result.read_error = deadline.expired() ? beast::error::timeout : ec;
                co_return result;
            }
            got = chunk.size() - body.size;
            result.body_bytes += got;
            capture_append(capture, chunk.get(), got);
        }
        finished = parser.is_done();
        if (finished && limit_chunks && trailer_bytes(parser.get(), head_fields) > from.chunk_limit->limit) {
            result.read_error = http::error::header_limit;
            co_return result;
        }
        const bool holding = capture != nullptr && !capture->overflow;
        if (holding && !finished) continue;
        if (got == 0 && !finished && result.wrote) continue;  // nothing new to send yet
        if constexpr (std::is_same_v<std::invoke_result_t<BeforeLastWrite&>, asio::awaitable<void>>) {
            if (finished) co_await before_last_write();  // may wait: a broker bus's read-your-writes
        } else {
            if (finished) before_last_write();
        }
        // Body bytes read earlier and not written yet: the capture's, at the first write.
        std::string_view held;
        std::size_t piece = got;
        if (capture != nullptr && !result.wrote) {
            held = capture->data;
            if (holding) piece = 0;  // this piece is in the capture too
        }
        std::array<asio::const_buffer, 6> out;
        std::size_t count = 0;
        if (!result.wrote) {
            if (late != nullptr && late->size > 0) head.insert(head.size() - 2, late->bytes.data(), late->size);
            out[count++] = asio::buffer(head);
        }
        const std::string_view read = piece > 0 ? std::string_view(chunk.get(), piece) : std::string_view();
        count = gather_body(out, count, chunked, held, read, size_line, finished);
        result.wrote = true;
        deadline.expect(to.side, to.timeout);
        auto [ec, n] =
            co_await asio::async_write(to.socket, std::span<const asio::const_buffer>(out.data(), count), use_nothrow);
        (void)n;
        if (capture != nullptr && capture->overflow) std::string().swap(capture->data);  // written: not needed again
        if (ec) {
            result.write_error = deadline.expired() ? beast::error::timeout : ec;
            co_return result;
        }
    }
    co_return result;
}

}  // namespace crudcast::proxy
