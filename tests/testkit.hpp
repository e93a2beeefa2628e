// testkit.hpp: helpers for crudcast's socket-level tests: a test Config, a raw loopback socket, a
// scriptable upstream that records requests byte for byte, an HTTP client (raw bytes out, Beast's
// parser in, keep-alive capable), a child process (crudcast, the demo backend), and a checksum.
// Everything blocks with explicit timeouts; nothing here sleeps to synchronise.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/beast/core/string.hpp>

#include "config/config.hpp"
#include "gateway/gateway.hpp"

namespace crudcast::testkit {

using namespace std::chrono_literals;
using Duration = std::chrono::milliseconds;
inline constexpr Duration default_timeout = 10s;
inline constexpr Duration forever = Duration::max();

// listen 127.0.0.1:0, upstream http://127.0.0.1:<port>, 2 threads, no admin listener, short
// timeouts. Log level from env CRUDCAST_TEST_LOG (error|warn|info|debug|trace, default warn).
config::Config test_config(std::uint16_t upstream_port);

// An in-process crudcast, started (bound, threads running); its destructor drains and joins.
inline std::unique_ptr<gateway::Gateway> start_gateway(config::Config config) {
    auto gw = std::make_unique<gateway::Gateway>(std::move(config));
    gw->start();
    return gw;
}

// A loopback port nothing listens on right now (bound to 127.0.0.1:0, then closed).
std::uint16_t free_port();

// FNV-1a 64 over a byte stream: order-sensitive, independent of how the stream is cut.
class Checksum {
public:
    void update(std::string_view bytes) {
        std::uint64_t h = hash_;
        for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
        hash_ = h;
    }
    std::uint64_t value() const { return hash_; }
    static std::uint64_t of(std::string_view bytes) {
        Checksum c;
        c.update(bytes);
        return c.value();
    }

private:
    std::uint64_t hash_ = 0xcbf29ce484222325ull;
};

// A deterministic byte stream of any length: byte i is byte i%8 of splitmix64(i/8).
inline void fill_pattern(std::uint64_t offset, char* out, std::size_t n) {
    for (std::size_t done = 0; done < n;) {
        std::uint64_t x = (offset >> 3) + 0x9e3779b97f4a7c15ull;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        x ^= x >> 31;
        const unsigned skip = offset & 7;
        const std::size_t take = std::min<std::size_t>(8 - skip, n - done);
        for (std::size_t k = 0; k < take; ++k) out[done + k] = static_cast<char>(x >> ((skip + k) * 8));
        done += take;
        offset += take;
    }
}

// Header fields in wire order, names exactly as sent; lookups are case-insensitive.
struct HeaderList {
    std::vector<std::pair<std::string, std::string>> items;

    std::vector<std::string> all(std::string_view name) const {
        std::vector<std::string> out;
        for (const auto& [n, v] : items)
            if (boost::beast::iequals(n, name)) out.push_back(v);
        return out;
    }
    std::string get(std::string_view name) const {  // first value, "" when absent
        auto values = all(name);
        return values.empty() ? std::string() : values.front();
    }
    std::size_t count(std::string_view name) const { return all(name).size(); }
    bool has(std::string_view name) const { return count(name) > 0; }
};

// A connected TCP socket with a read buffer; reads wait at most `timeout` (forever = no limit).
class Socket {
public:
    enum class Status { data, eof, timeout, error };

    Socket() = default;
    explicit Socket(int fd) : fd_(fd) {}
    Socket(Socket&& other) noexcept;
    Socket& operator=(Socket&&) = delete;
    ~Socket();

    static Socket connect(std::uint16_t port);  // 127.0.0.1; throws std::system_error
    int fd() const { return fd_; }
    bool send_all(std::string_view bytes);  // false on any error (e.g. the peer reset)
    // Receives more bytes into the buffer (data), or reports eof / timeout / error.
    Status fill(Duration timeout);
    std::string_view buffered() const { return {buffer_.data() + start_, buffer_.size() - start_}; }
    void consume(std::size_t n) {
        start_ += std::min(n, buffer_.size() - start_);
        if (start_ == buffer_.size()) buffer_.clear(), start_ = 0;
    }
    // Reads until `delimiter` is buffered; returns the bytes up to and including it.
    std::optional<std::string> read_until(std::string_view delimiter, Duration timeout);
    std::optional<std::string> read_exactly(std::size_t n, Duration timeout) {  // nullopt on eof/timeout
        while (buffered().size() < n)
            if (fill(timeout) != Status::data) return std::nullopt;
        std::string out(buffered().substr(0, n));
        consume(n);
        return out;
    }
    void shutdown_write();
    void close();
    void reset();  // closes with RST instead of FIN (SO_LINGER 0): the peer sees "connection reset"

private:
    int fd_ = -1;
    std::string buffer_;
    std::size_t start_ = 0;
};

// One request as the upstream received it.
struct RecordedRequest {
    std::size_t connection = 0;  // 1-based index of the upstream connection it arrived on
    std::string head;            // request line + header lines + CRLF CRLF, byte for byte
    std::string request_line;    // without CRLF
    std::string method, target, version;
    HeaderList headers;
    std::vector<std::string> header_lines;  // "Name: value" exactly as received
    bool chunked = false;
    std::string raw_body;             // body bytes as received (chunk framing included), unless bodies are not kept
    std::string body;                 // decoded body, unless bodies are not kept
    std::uint64_t body_size = 0;      // decoded body bytes (always counted)
    std::uint64_t body_checksum = 0;  // Checksum of the decoded body (always computed)
};

// What the upstream does with one request.
struct UpstreamReply {
    enum class Kind { respond, never_answer, close } kind = Kind::respond;
    std::string bytes;  // written as is
    // After `bytes`, the connection is handed over (an echo loop after 101, a streamed body);
    // the connection is closed when it returns.
    std::function<void(Socket&)> then;
    bool close_after = false;

    static UpstreamReply ok(std::string body = "{\"ok\":true}");
    static UpstreamReply never() { return {Kind::never_answer, {}, {}, false}; }
    static UpstreamReply close() { return {Kind::close, {}, {}, true}; }
};

// "HTTP/1.1 <status> <reason>\r\n" + headers + Content-Length (when `content_length`) + body.
inline std::string http_response(int status, std::string_view reason, const HeaderList& headers, std::string_view body,
                                 bool content_length = true) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
    for (const auto& [name, value] : headers.items) out += name + ": " + value + "\r\n";
    if (content_length) out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    return out.append("\r\n").append(body);
}

// An upstream that answers every request 201 Created with the request's body as JSON (what a
// REST backend answers a POST with): one event per write.
inline UpstreamReply echo_created(const RecordedRequest& request) {
    HeaderList h;
    h.items.emplace_back("Content-Type", "application/json");
    UpstreamReply reply;
    reply.bytes = http_response(201, "Created", h, request.body);
    return reply;
}

inline UpstreamReply UpstreamReply::ok(std::string body) {
    return {Kind::respond, http_response(200, "OK", {{{"Content-Type", "application/json"}}}, body), {}, false};
}

// A scriptable HTTP/1.1 upstream on 127.0.0.1: one thread per connection, keep-alive, requests
// recorded before the handler runs (so a test can wait for a request the handler is holding).
class RawUpstream {
public:
    using Handler = std::function<UpstreamReply(const RecordedRequest&)>;

    explicit RawUpstream(Handler handler = {}, std::uint16_t port = 0);  // throws if it cannot bind
    ~RawUpstream();
    RawUpstream(const RawUpstream&) = delete;
    RawUpstream& operator=(const RawUpstream&) = delete;

    std::uint16_t port() const { return port_; }
    void set_handler(Handler handler) {
        std::lock_guard lock(mutex_);
        handler_ = std::move(handler);
    }
    void keep_bodies(bool keep) { keep_bodies_ = keep; }  // false for huge bodies

    std::size_t connections() const { return connections_.load(); }
    std::size_t request_count() const {
        std::lock_guard lock(mutex_);
        return requests_.size();
    }
    std::vector<RecordedRequest> requests() const {  // complete requests, in arrival order
        std::lock_guard lock(mutex_);
        return requests_;
    }
    RecordedRequest request(std::size_t i) const {  // throws std::out_of_range when there is none
        std::lock_guard lock(mutex_);
        return requests_.at(i);
    }
    // Blocks until at least n complete requests arrived; false on timeout.
    bool wait_for_requests(std::size_t n, Duration timeout = default_timeout) const {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
    }

private:
    void accept_loop();
    void serve(Socket socket, std::size_t index);
    std::optional<RecordedRequest> read_request(Socket& socket, std::size_t index);

    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> keep_bodies_{true};
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> connections_{0};
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    Handler handler_;
    std::vector<RecordedRequest> requests_;
    std::vector<int> live_fds_;
    std::vector<std::thread> threads_;
    std::thread acceptor_;
};

// A WebSocket frame as a client must send it (masked, RFC 6455 §5.3): `first` is the FIN/RSV/opcode
// byte; payloads up to 64 KiB.
inline std::string ws_client_frame(std::uint8_t first, std::string_view payload) {
    const unsigned char mask[4] = {0x11, 0x22, 0x33, 0x44};
    std::string out(1, static_cast<char>(first));
    if (payload.size() < 126) {
        out += static_cast<char>(0x80 | payload.size());
    } else {
        out += static_cast<char>(0x80 | 126);
        out += static_cast<char>(payload.size() >> 8);
        out += static_cast<char>(payload.size() & 0xff);
    }
    for (auto b : mask) out += static_cast<char>(b);
    for (std::size_t i = 0; i < payload.size(); ++i) out += static_cast<char>(payload[i] ^ mask[i % 4]);
    return out;
}

// A one-shot latch for holding an upstream handler until the test releases it.
class Gate {
public:
    void open() {
        std::lock_guard lock(mutex_);
        open_ = true;
        cv_.notify_all();
    }
    bool wait(Duration timeout = default_timeout) {  // true once opened, false on timeout
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, timeout, [&] { return open_; });
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};

// One HTTP response as the client parsed it (Beast's parser).
struct Response {
    unsigned status = 0;
    unsigned version = 0;
    std::string reason;
    HeaderList headers;
    std::string head;  // status line + header lines + CRLF CRLF, byte for byte
    std::string body;  // decoded; empty when a body_sink took it
    std::uint64_t body_size = 0;
    bool chunked = false;     // the body arrived with chunked coding
    bool keep_alive = false;  // what the response says about the connection
};

struct ReadOptions {
    bool head_request = false;                        // the request was HEAD: no body follows
    Duration timeout = default_timeout;               // for each read, not the whole response
    std::function<void(std::string_view)> body_sink;  // streams the body instead of keeping it
};

// An HTTP client over one connection: send raw bytes, read parsed responses, again and again.
class Client {
public:
    explicit Client(std::uint16_t port) : socket_(Socket::connect(port)) {}
    void send(std::string_view bytes);                        // throws when the write fails
    Response read_response(const ReadOptions& options = {});  // throws std::runtime_error on timeout/error
    Response roundtrip(std::string_view request, const ReadOptions& options = {}) {
        send(request);
        return read_response(options);
    }
    // True when the peer closes the connection (EOF or reset) within `timeout`; bytes received
    // before that are discarded. False when the connection is still open at the timeout.
    bool closed_by_peer(Duration timeout = default_timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            socket_.consume(socket_.buffered().size());
            const auto left = std::chrono::duration_cast<Duration>(deadline - std::chrono::steady_clock::now());
            const auto status = socket_.fill(std::max(left, Duration{0}));
            if (status != Socket::Status::data) return status != Socket::Status::timeout;
        }
    }
    Socket& socket() { return socket_; }

private:
    Socket socket_;
};

// exchange(port, request[, options]): connects, sends `request`, reads one response. A function
// object, not a function: argument-dependent lookup would otherwise pick std::exchange for
// exchange(port_variable, std::string).
struct Exchange {
    Response operator()(std::uint16_t port, std::string_view request, const ReadOptions& options = {}) const {
        return Client(port).roundtrip(request, options);
    }
};
inline constexpr Exchange exchange{};
// "GET <target> HTTP/1.1\r\nHost: test\r\n" + extra header lines + "\r\n".
inline std::string get_request(std::string_view target, std::string_view extra_headers = "") {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) + "\r\n";
}

// "POST <target>" with a JSON body.
inline std::string json_post(std::string_view target, std::string_view body) {
    return "POST " + std::string(target) +
           " HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

// "GET <target> HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n": the admin listener answers only an address,
// localhost or an admin-allowed-hosts name as Host.
inline std::string admin_request(std::string_view target) {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
}
// The access record of request `rid` from the admin API's /api/requests: (status, error as the
// access line has them). It is written just after the exchange ends, so it is polled, bounded.
std::pair<unsigned, std::string> access_record(std::uint16_t admin_port, const std::string& rid);

// A child process with stdout and stderr captured line by line. It inherits the environment
// minus CRUDCAST_* variables (settings come from args and extra_env only).
class ChildProcess {
public:
    ChildProcess(const std::string& path, const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& extra_env = {});
    ~ChildProcess();  // SIGKILL if still running; prints its stderr when the test failed
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int signo);
    // The exit code (128 + signal when killed by one); nullopt when still running at the timeout.
    std::optional<int> wait(Duration timeout = default_timeout);
    // The first line (of stdout / stderr) containing `needle`, waiting for it up to `timeout`.
    std::optional<std::string> wait_for_stdout(std::string_view needle, Duration timeout = default_timeout) {
        return wait_for(*out_, needle, timeout);
    }
    std::optional<std::string> wait_for_stderr(std::string_view needle, Duration timeout = default_timeout) {
        return wait_for(*err_, needle, timeout);
    }
    std::string stderr_text() const;
    std::string stdout_text() const;  // every complete line so far, each with its newline

    struct Memory {
        std::uint64_t hwm_kib = 0;  // VmHWM: peak resident set
        std::uint64_t rss_kib = 0;  // VmRSS
    };
    Memory memory() const;  // from /proc/<pid>/status

private:
    struct Stream;
    std::optional<std::string> wait_for(Stream& stream, std::string_view needle, Duration timeout);

    pid_t pid_ = -1;
    std::optional<int> exit_code_;
    std::unique_ptr<Stream> out_;
    std::unique_ptr<Stream> err_;
};

}  // namespace crudcast::testkit
