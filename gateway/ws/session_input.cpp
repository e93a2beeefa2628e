// session_input.cpp: the parts of a WebSocketSession that take what the peer sends: the wait for
// readability, the read into the thread's buffer, the frames decoded from it (pings, closes, data
// that is checked and dropped, protocol errors) and the ping that checks the peer is alive. See
// websocket_session.hpp.
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/post.hpp>

#include "common/log.hpp"
#include "gateway/ws/websocket_session.hpp"

namespace crudcast::gateway {

using config::LogLevel;

namespace {

// Pongs waiting behind a write the peer does not take: a peer that pings while not reading would
// otherwise grow the control queue without end. One more ping than this closes it with 1008.
constexpr std::size_t max_pending_pongs = 4;

// Asio keeps the memory of a finished handler for the next operation started on the same thread,
// whatever that one's size: after a handshake it is the 101 write's ~800 bytes, which the read or
// ping wait of an idle subscriber would then hold for the subscriber's whole life (measured with
// heaptrack: 784 bytes per idle subscriber). The two waits every subscriber keeps pending take
// memory of their own size instead.
template <typename T>
struct ExactAllocator {
    using value_type = T;
    ExactAllocator() = default;
    template <typename U>
    ExactAllocator(const ExactAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
    void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
    friend bool operator==(ExactAllocator, ExactAllocator) noexcept { return true; }
};

// One read buffer per thread, shared by its sessions: a read takes what the socket holds, the
// session acts on it at once and keeps only an incomplete frame. Large enough for a whole frame.
std::span<char> thread_read_buffer() {
    thread_local std::vector<char> buffer(max_client_payload + 14);
    return buffer;
}

}  // namespace

void WebSocketSession::wait_readable() {
    socket_.async_wait(tcp::socket::wait_read,
                       asio::bind_allocator(ExactAllocator<void>(),
                                            [self = shared_from_this()](error_code ec) { self->on_readable(ec); }));
}

void WebSocketSession::on_readable(error_code ec) {
    const auto buffer = thread_read_buffer();
    std::size_t n = 0;
    if (!ec) n = socket_.read_some(asio::buffer(buffer.data(), buffer.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        wait_readable();  // readable, then not: someone else took the bytes, or a spurious wake-up
        return;
    }
    if (ec) {
        if (close_code_ == 0) {
            close_code_ = 1006;
            const char* eof = sse() ? "client closed the stream" : "connection closed without a close frame";
            close_reason_ = ec == asio::error::eof ? eof : ec.message();
        }
        finish();
        return;
    }
    if (take_input(buffer.first(n))) {
        finish();
        return;
    }
    if (n == buffer.size()) {
        // A full buffer: the socket may hold more, and bytes already there bring no new readiness
        // (the registration is edge-triggered). Read again, after what else is ready on the thread.
        asio::post(socket_.get_executor(), [self = shared_from_this()] { self->on_readable({}); });
        return;
    }
    wait_readable();  // a short read emptied the socket
}

bool WebSocketSession::take_input(std::span<char> input) {
    // SSE: whatever the client sends after its request is not for us. After fail(): dropped.
    if (sse() || discarding_) {
        std::string().swap(partial_);
        return false;
    }
    std::span<char> bytes = input;
    if (!partial_.empty()) {
        partial_.append(input.data(), input.size());
        bytes = std::span<char>(partial_.data(), partial_.size());
    }
    std::size_t used = 0;
    bool over = false;
    // Act on every complete frame; what is left is the start of a frame still arriving.
    while (!over && !discarding_) {
        const auto decoded = decode_client_frame(bytes.subspan(used));
        if (const auto* frame = std::get_if<Frame>(&decoded)) {
            alive_ = true;
            over = on_frame(*frame);
            used += frame->size;
        } else {
            if (const auto* error = std::get_if<ProtocolError>(&decoded)) fail(*error);
            break;
        }
    }
    if (over || discarding_ || used == bytes.size()) {
        std::string().swap(partial_);  // its memory too: an idle session keeps no buffer
    } else if (bytes.data() == partial_.data()) {
        partial_.erase(0, used);
    } else {
        partial_.assign(bytes.data() + used, bytes.size() - used);
    }
    return over;
}

bool WebSocketSession::on_frame(const Frame& frame) {
    switch (frame.opcode) {
        case Opcode::ping: on_ping(frame.payload); break;
        case Opcode::pong: break;
        case Opcode::close: return on_peer_close(frame.payload);
        default:  // text, binary, continuation (the codec refuses other opcodes): checked, not used
            if (auto error = messages_.add(frame.opcode, frame.fin, {frame.payload.data(), frame.payload.size()}))
                fail(*error);
            break;
    }
    return false;
}

void WebSocketSession::on_ping(std::span<const char> payload) {
    if (writer_.queued_pongs() >= max_pending_pongs) {
        log::write(LogLevel::info, "websocket peer pings without reading; closing it with 1008",
                   {{"client", client_address_}, {"rid", request_id_}});
        fail(ProtocolError{1008, "too many pings while not reading"});
        return;
    }
    queue_control(control_frame(Opcode::pong, std::string_view(payload.data(), payload.size())));
}

void WebSocketSession::fail(const ProtocolError& error) {
    // Our close frame goes out (when none has yet); once it is written the socket is shut for
    // sending, and the connection ends at the peer's FIN or after the close grace.
    discarding_ = true;
    close_with(error.close_code, error.reason, State::failing);
}

bool WebSocketSession::on_peer_close(std::span<const char> payload) {
    if (close_sent()) {
        error_code ignored;  // both closes exchanged: done
        socket_.close(ignored);
        return true;
    }
    if (auto error = check_close_payload(payload)) {
        fail(*error);  // never echo a code no close frame may carry
        return false;
    }
    const auto close = parse_close_payload(payload);
    const std::uint16_t code = close.code.value_or(1000);  // a bare close is answered with 1000
    close_with(code, "", State::answering_close);          // echoes the code (§5.5.1)
    close_code_ = code;
    close_reason_ = close.reason.empty() ? std::string("client closed") : std::string(close.reason);
    return false;
}

void WebSocketSession::wait_ping() {
    ping_timer_.expires_after(shard_.config().ws_ping_interval);
    ping_timer_.async_wait(asio::bind_allocator(
        ExactAllocator<void>(), [self = shared_from_this()](error_code ec) { self->on_ping_timer(ec); }));
}

void WebSocketSession::on_ping_timer(error_code ec) {
    if (ec || state_ == State::closed || close_sent()) return;
    if (sse()) {  // a comment: keeps proxies from timing the stream out; a dead peer fails the write
        queue_control(":\n\n");
        wait_ping();
        return;
    }
    if (!alive_) {
        close_code_ = 1006;
        close_reason_ = "no pong within ws-ping-interval";
        log::write(LogLevel::info, "websocket peer unresponsive; closing",
                   {{"client", client_address_}, {"rid", request_id_}});
        error_code ignored;
        socket_.close(ignored);
        return;
    }
    alive_ = false;
    queue_control(control_frame(Opcode::ping, ""));
    wait_ping();
}

}  // namespace crudcast::gateway
