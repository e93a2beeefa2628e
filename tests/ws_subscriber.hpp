// ws_subscriber.hpp: a blocking Beast WebSocket subscriber for the socket-level event tests.
#pragma once

#include <rapidjson/document.h>

#include <stdexcept>
#include <string>

#include <gtest/gtest.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include "testkit.hpp"

namespace crudcast::testkit {

// A blocking WebSocket subscriber; every read gives up after `default_timeout`, so a missing
// event or close fails the test instead of hanging it. (SO_RCVTIMEO would not do: Asio's
// synchronous reads wait again when recv times out.)
class Subscriber {
public:
    Subscriber(std::uint16_t port, const std::string& target, int rcvbuf = 0, const std::string& origin = "")
        : ws_(io_) {
        auto& sock = ws_.next_layer();
        sock.open(boost::asio::ip::tcp::v4());
        if (rcvbuf > 0) sock.set_option(boost::asio::socket_base::receive_buffer_size(rcvbuf));
        sock.connect({boost::asio::ip::make_address("127.0.0.1"), port});
        if (!origin.empty()) {
            ws_.set_option(
                boost::beast::websocket::stream_base::decorator([origin](boost::beast::websocket::request_type& req) {
                    req.set(boost::beast::http::field::origin, origin);
                }));
        }
        ws_.handshake("127.0.0.1", target);
    }
    // One message into `buffer`; `ec` is the read's error, or timed_out.
    void read(boost::beast::flat_buffer& buffer, boost::beast::error_code& ec) {
        bool done = false;
        ws_.async_read(buffer, [&](boost::beast::error_code e, std::size_t) {
            ec = e;
            done = true;
        });
        io_.restart();
        io_.run_for(default_timeout);
        if (!done) {
            ws_.next_layer().cancel();
            io_.restart();
            io_.run();
            ec = boost::asio::error::timed_out;
        }
    }
    // The next event as a JSON document; fails the test on timeout or close.
    rapidjson::Document next() {
        rapidjson::Document doc;
        doc.Parse(next_raw().c_str());
        EXPECT_FALSE(doc.HasParseError());
        return doc;
    }
    // The next event's seq; fails the test (throws) on timeout, close or a message without one.
    std::uint64_t next_seq() {
        const auto doc = next();
        if (!doc.IsObject() || !doc.HasMember("seq") || !doc["seq"].IsUint64())
            throw std::runtime_error("a message without a seq");
        return doc["seq"].GetUint64();
    }
    std::string next_raw() {
        boost::beast::flat_buffer buffer;
        boost::beast::error_code ec;
        read(buffer, ec);
        if (ec) throw boost::beast::system_error(ec);
        return boost::beast::buffers_to_string(buffer.data());
    }
    boost::beast::websocket::stream<boost::asio::ip::tcp::socket>& ws() { return ws_; }

private:
    boost::asio::io_context io_;
    boost::beast::websocket::stream<boost::asio::ip::tcp::socket> ws_;
};

}  // namespace crudcast::testkit
