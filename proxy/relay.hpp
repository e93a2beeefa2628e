// relay.hpp: streams one HTTP message (header already parsed) from one socket to another through a
// fixed-size buffer, so a body of any size crosses crudcast in bounded memory. Internal to proxy/.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include "proxy/asio.hpp"

namespace crudcast::proxy {

namespace http = beast::http;

struct RelayResult {
    error_code read_error;   // reading the source (the sender went away, timed out, broke framing)
    error_code write_error;  // writing the destination
    std::uint64_t body_bytes = 0;  // body bytes taken from the source
    bool ok() const { return !read_error && !write_error; }
};

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

// Writes parser.get() (header, then the body as it is read) from `in` to `out`. The header's first
// write carries the first body bytes too, so a small message costs one write. `before_last_write`
// runs once just before the write that completes the message (read-your-writes hooks).
template <bool isRequest, class BeforeLastWrite>
asio::awaitable<RelayResult> relay_message(beast::tcp_stream& in, beast::flat_buffer& in_buffer,
                                           http::parser<isRequest, http::buffer_body>& parser,
                                           beast::tcp_stream& out, std::chrono::milliseconds read_timeout,
                                           std::chrono::milliseconds write_timeout, BodyCapture* capture,
                                           BeforeLastWrite&& before_last_write) {
    RelayResult result;
    RelayBuffer chunk;  // taken only when there is a body
    http::serializer<isRequest, http::buffer_body> serializer{parser.get()};
    bool last_write_announced = false;
    do {
        auto& body = parser.get().body();
        if (!parser.is_done()) {
            body.data = chunk.get();
            body.size = relay_buffer_size;
            in.expires_after(read_timeout);
            auto [ec, n] = co_await http::async_read_some(in, in_buffer, parser, use_nothrow);
            (void)n;
            if (ec == http::error::need_buffer) ec = {};
            if (ec) {
                result.read_error = ec;
                co_return result;
            }
            const std::size_t got = relay_buffer_size - body.size;
            result.body_bytes += got;
            if (capture && !capture->overflow) {
                if (capture->data.size() + got <= capture->limit) {
                    capture->data.append(chunk.get(), got);
                } else {
                    capture->overflow = true;
                    capture->data.clear();
                    capture->data.shrink_to_fit();
                }
            }
            body.size = got;
            body.data = chunk.get();
            body.more = !parser.is_done();
        } else {
            body.data = nullptr;
            body.size = 0;
            body.more = false;
        }
        if (parser.is_done() && !last_write_announced) {
            last_write_announced = true;
            before_last_write();
        }
        out.expires_after(write_timeout);
        auto [ec, n] = co_await http::async_write(out, serializer, use_nothrow);
        (void)n;
        if (ec == http::error::need_buffer) ec = {};
        if (ec) {
            result.write_error = ec;
            co_return result;
        }
    } while (!parser.is_done() || !serializer.is_done());
    co_return result;
}

}  // namespace crudcast::proxy
