// ws_subscriber.hpp: a blocking WebSocket subscriber for the socket-level event tests. Its Beast
// WebSocket stream lives in ws_subscriber.cpp (compiled once into the testkit), so a test file that
// subscribes does not instantiate Beast's WebSocket templates again.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <memory>
#include <string>

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>

namespace crudcast::testkit {

// A blocking WebSocket subscriber; every read gives up after `default_timeout`, so a missing
// event or close fails the test instead of hanging it. (SO_RCVTIMEO would not do: Asio's
// synchronous reads wait again when recv times out.)
class Subscriber {
public:
    // Connects to 127.0.0.1:`port` and completes the handshake for `target` (throws on failure).
    // `rcvbuf` > 0 sets SO_RCVBUF first; a non-empty `origin` is sent as the Origin header.
    Subscriber(std::uint16_t port, const std::string& target, int rcvbuf = 0, const std::string& origin = "");
    ~Subscriber();
    Subscriber(const Subscriber&) = delete;
    Subscriber& operator=(const Subscriber&) = delete;

    // One message into `buffer`; `ec` is the read's error, or timed_out.
    void read(boost::beast::flat_buffer& buffer, boost::beast::error_code& ec);
    // The next event as a JSON document; fails the test on timeout or close.
    rapidjson::Document next();
    // The next event's seq; fails the test (throws) on timeout, close or a message without one.
    std::uint64_t next_seq();
    // The next message's text; throws on timeout or close.
    std::string next_raw();

    // The close frame the server sent (after a read ended with websocket::error::closed).
    std::uint16_t close_code() const;
    std::string close_reason() const;
    // Sends a text message / a ping / a close frame with 1000 (normal).
    void send_text(const std::string& text);
    void ping();
    void close();
    // Closes the TCP connection without a close frame (a subscriber that vanished).
    void drop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace crudcast::testkit
