// frame_writer.cpp: see frame_writer.hpp.
#include "gateway/ws/frame_writer.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string_view>

#include <sys/socket.h>
#include <sys/uio.h>

#include "gateway/ws/frame_codec.hpp"

namespace crudcast::gateway {

namespace {

constexpr std::size_t coalesce_below = 4096;                      // frames smaller than this are copied together
constexpr std::size_t max_write_bytes = std::size_t{512} * 1024;  // one write carries at most this much
constexpr std::size_t max_iov = 64;                               // gather lists up to this long are sent directly

// Small pieces are copied into one scratch buffer; the rest is referenced where it is. Pieces are
// collected first and become buffers only once the scratch buffer is complete (appending may move it).
struct Piece {
    bool in_scratch;
    std::size_t offset;
    std::size_t size;
    const char* data;
};
thread_local std::vector<Piece> pieces;
thread_local std::vector<FrameLog::Span> spans;

}  // namespace

bool FrameWriter::gather(const FrameLog& log, const Subscription& subscription) {
    gather_.clear();
    scratch_.clear();
    pieces.clear();
    batch_ = Batch{.end = subscription.cursor()};
    // Control frames first (between whole frames, never inside one), then data in seq order.
    if (!control_.empty()) gather_control();
    if (subscription.cursor() < log.end_index() && !batch_.close) {
        if (subscription.all() && wire_ == Wire::websocket) {
            gather_all(log, subscription);
        } else {
            gather_topics(log, subscription);
        }
    }
    return begin_write();
}

bool FrameWriter::gather_replay(const std::vector<bus::Delivery>& frames, const Subscription& subscription) {
    gather_.clear();
    scratch_.clear();
    pieces.clear();
    batch_ = Batch{.end = subscription.cursor(), .replay = true};
    if (!control_.empty()) gather_control();
    if (!batch_.close) {
        for (const auto& d : frames) {
            add_event(d.seq, d.frame->data(), d.frame->size());
            ++batch_.frames;
            batch_.last_seq = d.seq;
        }
    }
    return begin_write();
}

bool FrameWriter::begin_write() {
    if (pieces.empty()) return false;  // only entries of other topics
    state_ = State::writing;
    for (const auto& piece : pieces) {
        gather_.push_back(piece.in_scratch ? asio::buffer(scratch_.data() + piece.offset, piece.size)
                                           : asio::buffer(piece.data, piece.size));
    }
    return true;
}

void FrameWriter::gather_control() {
    std::size_t taken = 0;
    while (taken < control_.size() && !batch_.close) {
        const auto& control = control_[taken++];
        batch_.close = control.close;
        add(control.bytes.data(), control.bytes.size(), true);
    }
    control_.erase(control_.begin(), control_.begin() + static_cast<std::ptrdiff_t>(taken));
}

void FrameWriter::gather_all(const FrameLog& log, const Subscription& subscription) {
    // Every entry is for this subscriber: the bytes from the cursor on, as they lie in the log.
    const std::uint64_t cursor = subscription.cursor();
    const std::uint64_t end = log.end_index();
    std::uint64_t stop = end;
    if (log.end_offset() - log.offset_of(cursor) > max_write_bytes) {
        std::size_t bytes = 0;
        for (stop = cursor; stop < end; ++stop) {
            const auto size = log.entry(stop).size;
            if (stop > cursor && bytes + size > max_write_bytes) break;
            bytes += size;
        }
    }
    spans.clear();
    log.spans(cursor, stop, spans);
    for (const auto& span : spans) add(span.data, span.size, false);
    batch_.frames = static_cast<std::size_t>(stop - cursor);
    batch_.last_seq = log.entry(stop - 1).seq;
    batch_.end = stop;
}

void FrameWriter::gather_topics(const FrameLog& log, const Subscription& subscription) {
    // The entries of this subscriber's topics; entries of other topics are skipped.
    const std::uint64_t end = log.end_index();
    std::uint64_t i = subscription.cursor();
    for (; i < end; ++i) {
        const auto& e = log.entry(i);
        if (!subscription.wants(e.topic)) continue;
        if (batch_.frames > 0 && batch_.bytes + e.size > max_write_bytes) break;
        add_event(e.seq, log.data(i), e.size);
        ++batch_.frames;
        batch_.bytes += e.size;
        batch_.last_seq = e.seq;
    }
    batch_.end = i;
}

void FrameWriter::add_event(std::uint64_t seq, const char* frame, std::size_t size) {
    if (wire_ == Wire::websocket) {
        add(frame, size, size < coalesce_below);
        return;
    }
    // SSE: the frame's JSON without its WebSocket header (server frames are unmasked: 2, 4 or 10
    // bytes). JSON has line breaks only as whitespace between tokens; each one starts a new `data:`
    // line, which the client joins back with a newline: the same JSON.
    const auto length = static_cast<unsigned char>(frame[1]) & 0x7f;
    const std::size_t header = length < 126 ? 2 : length == 126 ? 4 : 10;
    const std::string_view json(frame + header, size - header);
    char prefix[48];
    const int n = std::snprintf(prefix, sizeof prefix, "id: %llu\ndata: ", static_cast<unsigned long long>(seq));
    add(prefix, static_cast<std::size_t>(n), true);
    if (json.find_first_of("\r\n") == std::string_view::npos) {
        add(json.data(), json.size(), json.size() < coalesce_below);
    } else {
        std::string lines;
        for (std::size_t i = 0; i < json.size(); ++i) {
            if (json[i] == '\r' || json[i] == '\n') {
                if (json[i] == '\r' && i + 1 < json.size() && json[i + 1] == '\n') ++i;
                lines += "\ndata: ";
            } else {
                lines += json[i];
            }
        }
        add(lines.data(), lines.size(), true);
    }
    add("\n\n", 2, true);
}

void FrameWriter::add(const char* bytes, std::size_t size, bool copy) {
    if (copy) {
        if (!pieces.empty() && pieces.back().in_scratch) {
            pieces.back().size += size;
        } else {
            pieces.push_back({true, scratch_.size(), size, nullptr});
        }
        scratch_.append(bytes, size);
    } else {
        pieces.push_back({false, 0, size, bytes});
    }
}

bool FrameWriter::send_now(int fd, error_code& ec) {
    // Most writes fit in the socket's buffer: send at once and finish here, without a round trip
    // through the event loop; what the kernel does not take waits for the socket asynchronously.
    std::size_t sent = 0;
    if (gather_.size() <= max_iov) {
        iovec iov[max_iov];
        std::size_t total = 0;
        for (std::size_t i = 0; i < gather_.size(); ++i) {
            iov[i].iov_base = const_cast<void*>(gather_[i].data());
            iov[i].iov_len = gather_[i].size();
            total += gather_[i].size();
        }
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = gather_.size();
        const ssize_t n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            ec = error_code(errno, boost::system::system_category());
            return true;
        }
        if (n > 0) sent = static_cast<std::size_t>(n);
        if (sent == total) return true;
    }
    drop_sent(sent);
    return false;
}

void FrameWriter::drop_sent(std::size_t sent) {
    // Drop what was sent from the front of the gather list.
    auto first = gather_.begin();
    while (sent > 0 && sent >= first->size()) {
        sent -= first->size();
        ++first;
    }
    gather_.erase(gather_.begin(), first);
    if (sent > 0) gather_.front() += sent;
}

}  // namespace crudcast::gateway
