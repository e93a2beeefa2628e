// deadline.hpp: the one timeout a downstream session has running at any moment. Setting it is a
// clock read and two stores; a per-thread sweep (every 100 ms) closes the socket of whichever side
// is overdue, which completes the pending operation with an error the session then reads as a
// timeout. (A Beast tcp_stream arms and cancels a timer on every read and write; measured, that
// was a large share of crudcast's per-request CPU.)
#pragma once

#include <chrono>

#include "common/asio.hpp"

namespace crudcast::proxy {

enum class Side { client, upstream };
// What an overdue deadline does to its side's socket: close it, or only cancel the pending
// operation (the socket stays open, so crudcast can still answer, e.g. 408 to a stalled body).
enum class Expiry : bool { close, cancel };

class Deadline {
public:
    using Clock = std::chrono::steady_clock;

    void expect(Side side, std::chrono::milliseconds within, Expiry expiry = Expiry::close) {
        side_ = side;
        expiry_ = expiry;
        at_ = Clock::now() + within;
        expired_ = false;
    }
    void clear() { at_ = Clock::time_point::max(); }
    // True when the last failed operation failed because this deadline passed.
    bool expired() const { return expired_; }
    Side side() const { return side_; }

    void watch_client(tcp::socket* s) { client_ = s; }
    void watch_upstream(tcp::socket* s) { upstream_ = s; }

    // Called by the sweep on the session's own thread.
    void check(Clock::time_point now) {
        if (now < at_) return;
        at_ = Clock::time_point::max();
        expired_ = true;
        tcp::socket* s = side_ == Side::client ? client_ : upstream_;
        if (s != nullptr) {
            error_code ignored;
            if (expiry_ == Expiry::cancel) {
                s->cancel(ignored);
            } else {
                s->close(ignored);
            }
        }
    }

private:
    Clock::time_point at_ = Clock::time_point::max();
    Side side_ = Side::client;
    Expiry expiry_ = Expiry::close;
    bool expired_ = false;
    tcp::socket* client_ = nullptr;
    tcp::socket* upstream_ = nullptr;
};

}  // namespace crudcast::proxy
