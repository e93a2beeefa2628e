// ws_subscriber.cpp: see ws_subscriber.hpp.
#include "tests/ws_subscriber.hpp"

#include <stdexcept>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket.hpp>

#include "testkit.hpp"

namespace crudcast::testkit {

namespace websocket = boost::beast::websocket;

struct Subscriber::Impl {
    boost::asio::io_context io;
    websocket::stream<boost::asio::ip::tcp::socket> ws{io};
};

Subscriber::Subscriber(std::uint16_t port, const std::string& target, int rcvbuf, const std::string& origin)
    : impl_(std::make_unique<Impl>()) {
    auto& sock = impl_->ws.next_layer();
    sock.open(boost::asio::ip::tcp::v4());
    if (rcvbuf > 0) sock.set_option(boost::asio::socket_base::receive_buffer_size(rcvbuf));
    sock.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    if (!origin.empty()) {
        impl_->ws.set_option(websocket::stream_base::decorator(
            [origin](websocket::request_type& req) { req.set(boost::beast::http::field::origin, origin); }));
    }
    impl_->ws.handshake("127.0.0.1", target);
}

Subscriber::~Subscriber() = default;

void Subscriber::read(boost::beast::flat_buffer& buffer, boost::beast::error_code& ec) {
    bool done = false;
    impl_->ws.async_read(buffer, [&](boost::beast::error_code e, std::size_t) {
        ec = e;
        done = true;
    });
    impl_->io.restart();
    impl_->io.run_for(default_timeout);
    if (!done) {
        impl_->ws.next_layer().cancel();
        impl_->io.restart();
        impl_->io.run();
        ec = boost::asio::error::timed_out;
    }
}

rapidjson::Document Subscriber::next() {
    rapidjson::Document doc;
    doc.Parse(next_raw().c_str());
    EXPECT_FALSE(doc.HasParseError());
    return doc;
}

std::uint64_t Subscriber::next_seq() {
    const auto doc = next();
    if (!doc.IsObject() || !doc.HasMember("seq") || !doc["seq"].IsUint64())
        throw std::runtime_error("a message without a seq");
    return doc["seq"].GetUint64();
}

std::string Subscriber::next_raw() {
    boost::beast::flat_buffer buffer;
    boost::beast::error_code ec;
    read(buffer, ec);
    if (ec) throw boost::beast::system_error(ec);
    return boost::beast::buffers_to_string(buffer.data());
}

std::uint16_t Subscriber::close_code() const { return impl_->ws.reason().code; }

std::string Subscriber::close_reason() const {
    const auto& reason = impl_->ws.reason().reason;
    return {reason.data(), reason.size()};
}

void Subscriber::send_text(const std::string& text) {
    impl_->ws.text(true);
    impl_->ws.write(boost::asio::buffer(text));
}

void Subscriber::ping() { impl_->ws.ping({}); }

void Subscriber::close() { impl_->ws.close(websocket::close_code::normal); }

void Subscriber::drop() {
    boost::beast::error_code ignored;
    impl_->ws.next_layer().close(ignored);
}

}  // namespace crudcast::testkit
