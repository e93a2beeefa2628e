// tunnel.cpp: see tunnel.hpp.
#include "proxy/tunnel.hpp"

#include <memory>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>

namespace crudcast::proxy {

namespace {

asio::awaitable<std::uint64_t> pump(tcp::socket& from, tcp::socket& to) {
    std::uint64_t total = 0;
    auto buffer = std::make_unique<char[]>(16 * 1024);
    for (;;) {
        auto [rec, n] = co_await from.async_read_some(asio::buffer(buffer.get(), 16 * 1024), use_nothrow);
        if (rec) {
            error_code ignored;
            if (rec == asio::error::eof) {
                to.shutdown(tcp::socket::shutdown_send, ignored);  // pass the half-close on
            } else {
                // A reset or local cancel: tear down both ways so the other pump ends too.
                from.close(ignored);
                to.close(ignored);
            }
            co_return total;
        }
        auto [wec, written] = co_await asio::async_write(to, asio::buffer(buffer.get(), n), use_nothrow);
        total += written;
        if (wec) {
            error_code ignored;
            from.close(ignored);
            to.close(ignored);
            co_return total;
        }
    }
}

}  // namespace

asio::awaitable<TunnelBytes> splice(tcp::socket& client, tcp::socket& upstream) {
    using namespace asio::experimental::awaitable_operators;
    auto [up, down] = co_await (pump(client, upstream) && pump(upstream, client));
    co_return TunnelBytes{up, down};
}

}  // namespace crudcast::proxy
