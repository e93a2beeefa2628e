// testkit.cpp: see testkit.hpp. POSIX sockets and processes; Beast only for parsing responses.
#include "tests/testkit.hpp"

#include <rapidjson/document.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <gtest/gtest.h>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

#include "common/log.hpp"

extern char** environ;

namespace crudcast::testkit {

namespace http = boost::beast::http;

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

int poll_timeout(Duration timeout) {
    if (timeout == forever) return -1;
    return static_cast<int>(std::clamp<Duration::rep>(timeout.count(), 0, 24 * 3600 * 1000));
}

bool iequals(std::string_view a, std::string_view b) { return boost::beast::iequals(a, b); }

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

config::Config test_config(std::uint16_t upstream_port) {
    config::Config c;
    c.listen = {"127.0.0.1", 0};
    c.upstream.host = "127.0.0.1";
    c.upstream.port = upstream_port;
    c.upstream.host_header = "127.0.0.1:" + std::to_string(upstream_port);
    c.upstream.text = "http://" + c.upstream.host_header;
    c.threads = 2;
    c.admin_listen = std::nullopt;
    c.connect_timeout = 2s;
    c.upstream_timeout = 5s;
    c.client_header_timeout = 2s;
    c.idle_timeout = 5s;
    c.drain_timeout = 5s;
    c.ws_handshake_rate = 0;  // tests open thousands of subscribers from 127.0.0.1; ws_auth_test sets it
    const char* env = std::getenv("CRUDCAST_TEST_LOG");
    c.log_level = config::LogLevel::warn;
    for (auto level :
         {config::LogLevel::error, config::LogLevel::info, config::LogLevel::debug, config::LogLevel::trace})
        if (env && std::string_view(env) == config::to_string(level)) c.log_level = level;
    log::configure(c.log_level, config::LogFormat::text);
    return c;
}

std::uint16_t free_port() { return RawUpstream().port(); }  // listened on, never connected to: free again

// ---- Socket ----

Socket::Socket(Socket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), buffer_(std::move(other.buffer_)), start_(std::exchange(other.start_, 0)) {}

Socket::~Socket() { close(); }

Socket Socket::connect(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_errno("socket");
    Socket s(fd);
    const auto addr = loopback(port);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        throw_errno("connect 127.0.0.1:" + std::to_string(port));
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
}

bool Socket::send_all(std::string_view bytes) {
    while (!bytes.empty()) {
        const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

Socket::Status Socket::fill(Duration timeout) {
    pollfd p{fd_, POLLIN, 0};
    int rc;
    do {
        rc = ::poll(&p, 1, poll_timeout(timeout));
    } while (rc < 0 && errno == EINTR);
    if (rc <= 0) return rc == 0 ? Status::timeout : Status::error;
    if (start_ > (1u << 20)) {
        buffer_.erase(0, start_);
        start_ = 0;
    }
    constexpr std::size_t chunk = 256 * 1024;
    const std::size_t old = buffer_.size();
    buffer_.resize(old + chunk);
    ssize_t n;
    do {
        n = ::recv(fd_, buffer_.data() + old, chunk, 0);
    } while (n < 0 && errno == EINTR);
    buffer_.resize(old + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0) return Status::error;
    return n == 0 ? Status::eof : Status::data;
}

std::optional<std::string> Socket::read_until(std::string_view delimiter, Duration timeout) {
    std::size_t pos;
    while ((pos = buffered().find(delimiter)) == std::string_view::npos) {
        if (fill(timeout) != Status::data) return std::nullopt;
    }
    return read_exactly(pos + delimiter.size(), timeout);
}

void Socket::shutdown_write() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void Socket::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

void Socket::reset() {
    if (fd_ >= 0) {
        const linger abort{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    }
    close();
}

// ---- RawUpstream ----

RawUpstream::RawUpstream(Handler handler, std::uint16_t port) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw_errno("socket");
    const int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto addr = loopback(port);
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 128) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        const int saved = errno;
        ::close(listen_fd_);
        errno = saved;
        throw_errno("RawUpstream: bind/listen 127.0.0.1:" + std::to_string(port));
    }
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
}

RawUpstream::~RawUpstream() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    ::close(listen_fd_);
    {
        std::lock_guard lock(mutex_);
        for (int fd : live_fds_) ::shutdown(fd, SHUT_RDWR);  // wakes blocked reads
    }
    for (auto& t : threads_) t.join();
}

void RawUpstream::accept_loop() {
    while (!stopping_) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return;  // shut down
        }
        const std::size_t index = ++connections_;
        std::lock_guard lock(mutex_);
        if (stopping_) {
            ::close(fd);
            return;
        }
        const int one = 1;  // the upstream streams in big writes: Nagle + delayed ACK would stall them
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        live_fds_.push_back(fd);
        threads_.emplace_back([this, fd, index] { serve(Socket(fd), index); });
    }
}

void RawUpstream::serve(Socket socket, std::size_t index) {
    for (;;) {
        auto request = read_request(socket, index);
        if (!request) break;
        Handler handler;
        {
            std::lock_guard lock(mutex_);
            requests_.push_back(*request);
            handler = handler_;
        }
        changed_.notify_all();
        UpstreamReply reply = handler ? handler(*request) : UpstreamReply::ok();
        if (reply.kind == UpstreamReply::Kind::close) break;
        if (reply.kind == UpstreamReply::Kind::never_answer) {
            while (socket.fill(forever) == Socket::Status::data) socket.consume(socket.buffered().size());
            break;
        }
        if (!socket.send_all(reply.bytes)) break;
        if (reply.then) {
            reply.then(socket);
            break;
        }
        if (reply.close_after) break;
    }
    std::lock_guard lock(mutex_);
    live_fds_.erase(std::find(live_fds_.begin(), live_fds_.end(), socket.fd()));
    socket.close();  // under the lock: the destructor never shuts down a reused descriptor
}

std::optional<RecordedRequest> RawUpstream::read_request(Socket& socket, std::size_t index) {
    auto head = socket.read_until("\r\n\r\n", forever);
    if (!head) return std::nullopt;
    RecordedRequest r;
    r.connection = index;
    r.head = *head;
    std::string_view rest(r.head);
    rest.remove_suffix(2);  // the empty line
    bool first = true;
    while (!rest.empty()) {
        const auto eol = rest.find("\r\n");
        const auto line = rest.substr(0, eol);
        rest.remove_prefix(std::min(rest.size(), eol + 2));
        if (first) {
            first = false;
            r.request_line = line;
            const auto sp1 = line.find(' ');
            const auto sp2 = line.rfind(' ');
            r.method = line.substr(0, sp1);
            if (sp1 != std::string_view::npos && sp2 > sp1) {
                r.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
                r.version = line.substr(sp2 + 1);
            }
            continue;
        }
        r.header_lines.emplace_back(line);
        const auto colon = line.find(':');
        r.headers.items.emplace_back(std::string(line.substr(0, colon)),
                                     colon == std::string_view::npos ? "" : std::string(trim(line.substr(colon + 1))));
    }
    const bool keep = keep_bodies_;
    Checksum sum;
    auto take = [&](std::uint64_t n, bool is_data) {
        while (n > 0) {
            if (socket.buffered().empty() && socket.fill(forever) != Socket::Status::data) return false;
            const auto in = socket.buffered().substr(
                0, static_cast<std::size_t>(std::min<std::uint64_t>(n, socket.buffered().size())));
            if (is_data) {
                sum.update(in);
                r.body_size += in.size();
                if (keep) r.body.append(in);
            }
            if (keep) r.raw_body.append(in);
            n -= in.size();
            socket.consume(in.size());
        }
        return true;
    };
    // As a lenient server reads it (Beast, for one): the last Transfer-Encoding line decides.
    const auto te_lines = r.headers.all("Transfer-Encoding");
    const auto te = te_lines.empty() ? std::string() : te_lines.back();
    r.chunked = te.size() >= 7 && iequals(te.substr(te.size() - 7), "chunked");
    if (r.chunked) {
        for (;;) {
            auto line = socket.read_until("\r\n", forever);
            if (!line) return std::nullopt;
            if (keep) r.raw_body += *line;
            const std::uint64_t size = std::strtoull(line->c_str(), nullptr, 16);
            if (size == 0) {
                do {  // trailer section, up to the empty line
                    line = socket.read_until("\r\n", forever);
                    if (!line) return std::nullopt;
                    if (keep) r.raw_body += *line;
                } while (*line != "\r\n");
                break;
            }
            if (!take(size, true) || !take(2, false)) return std::nullopt;
        }
    } else if (r.headers.has("Content-Length")) {
        if (!take(std::strtoull(r.headers.get("Content-Length").c_str(), nullptr, 10), true)) return std::nullopt;
    }
    r.body_checksum = sum.value();
    return r;
}

// ---- Client ----

void Client::send(std::string_view bytes) {
    if (!socket_.send_all(bytes)) throw std::runtime_error(std::string("client send failed: ") + std::strerror(errno));
}

Response Client::read_response(const ReadOptions& options) {
    http::response_parser<http::buffer_body> parser;
    parser.eager(true);
    parser.header_limit(1u << 20);
    parser.body_limit(boost::none);
    if (options.head_request) parser.skip(true);
    Response r;
    std::vector<char> chunk(64 * 1024);
    bool header_taken = false;
    for (;;) {
        if (parser.is_header_done() && !header_taken) {
            header_taken = true;
            const auto& msg = parser.get();
            r.status = msg.result_int();
            r.version = msg.version();
            r.reason = std::string(msg.reason());
            for (const auto& f : msg)
                r.headers.items.emplace_back(std::string(f.name_string()), std::string(f.value()));
            r.chunked = parser.chunked();
            r.keep_alive = parser.keep_alive();
        }
        if (parser.is_done()) return r;
        const auto in = socket_.buffered();
        if (!in.empty()) {
            std::string_view head;
            if (!parser.is_header_done()) {
                const auto end = in.find("\r\n\r\n");
                if (end != std::string_view::npos) head = in.substr(0, end + 4);
            }
            parser.get().body().data = chunk.data();
            parser.get().body().size = chunk.size();
            boost::beast::error_code ec;
            const auto used = parser.put(boost::asio::buffer(in.data(), in.size()), ec);
            const std::size_t got = chunk.size() - parser.get().body().size;
            if (got > 0) {
                r.body_size += got;
                if (options.body_sink) {
                    options.body_sink({chunk.data(), got});
                } else {
                    r.body.append(chunk.data(), got);
                }
            }
            if (parser.is_header_done() && r.head.empty()) r.head = std::string(head);
            socket_.consume(used);
            if (ec == http::error::need_buffer || (!ec && used > 0)) continue;
            if (ec && ec != http::error::need_more)
                throw std::runtime_error("unparsable HTTP response: " + ec.message());
        }
        switch (socket_.fill(options.timeout)) {
            case Socket::Status::data: break;
            case Socket::Status::eof: {
                // Beast's put_eof on a parser that got nothing finishes an empty message (a phantom 200).
                if (!parser.got_some()) throw std::runtime_error("connection closed before a response");
                boost::beast::error_code ec;
                parser.put_eof(ec);
                if (ec) throw std::runtime_error("connection closed before a complete response: " + ec.message());
                break;
            }
            case Socket::Status::timeout: throw std::runtime_error("timed out waiting for a response");
            case Socket::Status::error:
                throw std::runtime_error(std::string("error reading a response: ") + std::strerror(errno));
        }
    }
}

// ---- ChildProcess ----

struct ChildProcess::Stream {
    int fd = -1;
    std::mutex mutex;
    std::condition_variable cv;
    std::vector<std::string> lines;
    bool closed = false;
    std::thread reader;

    void run() {  // one line at a time into `lines`, until EOF
        std::string partial;
        char buf[4096];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
            partial.append(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
            std::lock_guard lock(mutex);
            for (auto eol = partial.find('\n'); eol != std::string::npos; eol = partial.find('\n')) {
                lines.push_back(partial.substr(0, eol));
                partial.erase(0, eol + 1);
            }
            cv.notify_all();
        }
        std::lock_guard lock(mutex);
        if (!partial.empty()) lines.push_back(partial);
        closed = true;
        cv.notify_all();
    }
};

ChildProcess::ChildProcess(const std::string& path, const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& extra_env)
    : out_(std::make_unique<Stream>()), err_(std::make_unique<Stream>()) {
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw_errno("pipe");
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw_errno("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);

    std::map<std::string, std::string> env;
    for (char** e = environ; *e; ++e) {
        const std::string kv = *e;
        if (kv.starts_with("CRUDCAST_")) continue;  // hermetic: settings come from args/extra_env only
        const auto eq = kv.find('=');
        env[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
    }
    for (const auto& [k, v] : extra_env) env[k] = v;
    std::vector<std::string> env_strings, arg_strings{path};
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    arg_strings.insert(arg_strings.end(), args.begin(), args.end());
    std::vector<char*> envp, argv;
    for (auto& s : env_strings) envp.push_back(s.data());
    for (auto& s : arg_strings) argv.push_back(s.data());
    envp.push_back(nullptr);
    argv.push_back(nullptr);

    const int rc = ::posix_spawn(&pid_, path.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    out_->fd = out_pipe[0];
    err_->fd = err_pipe[0];
    out_->reader = std::thread([s = out_.get()] { s->run(); });
    err_->reader = std::thread([s = err_.get()] { s->run(); });
    if (rc != 0) {
        pid_ = -1;
        for (auto* s : {out_.get(), err_.get()}) {
            s->reader.join();
            ::close(s->fd);
        }
        throw std::system_error(rc, std::generic_category(), "posix_spawn " + path);
    }
}

ChildProcess::~ChildProcess() {
    if (pid_ > 0 && !exit_code_) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    for (auto* s : {out_.get(), err_.get()}) {
        if (s->reader.joinable()) s->reader.join();
        ::close(s->fd);
    }
    if (::testing::Test::HasFailure()) std::cerr << "---- child stderr ----\n" << stderr_text() << "----\n";
}

void ChildProcess::signal(int signo) {
    if (pid_ > 0 && !exit_code_) ::kill(pid_, signo);
}

std::optional<int> ChildProcess::wait(Duration timeout) {
    if (exit_code_ || pid_ <= 0) return exit_code_;
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd < 0) throw_errno("pidfd_open");
    pollfd p{pidfd, POLLIN, 0};
    int rc;
    do {
        rc = ::poll(&p, 1, poll_timeout(timeout));
    } while (rc < 0 && errno == EINTR);
    ::close(pidfd);
    if (rc <= 0) return std::nullopt;
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) throw_errno("waitpid");
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    // What it wrote before it exited is read to the end before anyone looks at it (the readers
    // could still be behind: a test read an empty stderr from a process that had written its line).
    for (auto* stream : {out_.get(), err_.get()}) {
        std::unique_lock lock(stream->mutex);
        stream->cv.wait_for(lock, std::chrono::seconds(5), [stream] { return stream->closed; });
    }
    return exit_code_;
}

std::optional<std::string> ChildProcess::wait_for(Stream& s, std::string_view needle, Duration timeout) {
    std::unique_lock lock(s.mutex);
    std::optional<std::string> found;
    s.cv.wait_for(lock, timeout, [&] {
        for (const auto& line : s.lines)
            if (line.find(needle) != std::string::npos) return found = line, true;
        return s.closed;
    });
    return found;
}

std::string ChildProcess::stderr_text() const {
    std::lock_guard lock(err_->mutex);
    std::string out;
    for (const auto& line : err_->lines) out += line + "\n";
    return out;
}

std::string ChildProcess::stdout_text() const {
    std::lock_guard lock(out_->mutex);
    std::string out;
    for (const auto& line : out_->lines) out += line + "\n";
    return out;
}

ChildProcess::Memory ChildProcess::memory() const {
    Memory m;
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with("VmHWM:")) m.hwm_kib = std::stoull(line.substr(6));
        if (line.starts_with("VmRSS:")) m.rss_kib = std::stoull(line.substr(6));
    }
    return m;
}

std::pair<unsigned, std::string> access_record(std::uint16_t admin_port, const std::string& rid) {
    const auto deadline = std::chrono::steady_clock::now() + default_timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        rapidjson::Document doc;
        doc.Parse(exchange(admin_port, admin_request("/api/requests")).body.c_str());
        if (!doc.HasParseError() && doc.IsObject() && doc.HasMember("requests"))
            for (const auto& r : doc["requests"].GetArray())
                if (r["rid"].GetString() == rid) return {r["status"].GetUint(), r["error"].GetString()};
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a polling interval, not a synchronisation
    }
    ADD_FAILURE() << "no access record for " << rid;
    return {};
}

}  // namespace crudcast::testkit
