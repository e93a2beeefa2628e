// bench/fanout_client.cpp: the load generator and meter of bench/fanout.sh (WebSocket fan-out).
//
// 1. Opens --subs WebSocket subscribers at ws://HOST:PORT<ws-path> (Beast does the handshake, at
//    most --connect-parallel at a time), spread over --threads io_context threads. With several
//    ports (--port A,B: instances of one deployment sharing a broker bus) subscriber i connects to
//    the (i mod n)-th, and so do the HTTP connections of steps 3 and 4, so every instance both
//    publishes and delivers.
// 2. Reads each subscriber with its own frame parser over raw socket reads into a --read-buffer
//    byte buffer (256 KiB by default), so one read can carry many frames. Each text message is
//    scanned just enough to take "ts" (the first field) and "seq" (the last field); every frame is
//    counted per subscriber, seq is checked to be gap-free per subscriber (gaps, missing frames and
//    out-of-order frames are counted), and latency = receive time - ts is recorded in a 0.1 ms
//    histogram (the receive time is the system clock read once per socket read; ts has 1 ms
//    resolution, so a latency reads up to 1 ms high).
// 3. Sync: POSTs one event at a time until every subscriber has received one, then waits for the
//    newest of them everywhere. Frames up to that seq are "stale" and ignored; the measurement
//    counts only frames after it, so it never depends on subscriptions racing the first events.
// 4. Triggers events with real HTTP POSTs through the front, on --http-conns keep-alive HTTP/1.1
//    connections (one request in flight on each), for --duration seconds, either
//    - at --rate events/s: a 1 ms timer releases the POSTs due by then (open loop). When every
//      connection is busy and POSTs are due, another connection is opened, up to --http-conns-max,
//      so a slow front does not slow the arrivals (no coordinated omission). With --http-conns-max
//      equal to --http-conns the connections are fixed: a due POST waits for a free one. POSTs
//      still due at the end are reported as "behind", and the most that were due at once with no
//      free connection as "max behind"; or
//    - as fast as possible (--rate 0): exactly --http-conns connections, back to back.
// 5. Drains: waits until every expected frame (2xx POSTs x subscribers) arrived, or no frame came
//    for --drain-idle, or --drain-max passed since the last POST. Missing frames are "lost".
// 6. Prints human-readable lines and one machine-readable `RESULT key=value ...` line, including
//    the POSTs' own latency (request written .. response read), its own CPU use (getrusage
//    user+sys over wall time of the measured window: 100% = one core), the front's (--server-pid,
//    from /proc) and the whole machine's (from /proc/stat).
//
// Exit status: 0 when the measurement ran (whatever it found), 1 when it could not (bad options,
// a subscriber failed to connect, no sync event arrived).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/stream.hpp>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// ---------------------------------------------------------------------------------------------
// Options

struct Options {
    std::string host = "127.0.0.1";
    std::vector<unsigned short> ports;  // several: instances of one deployment, used in turn
    std::string ws_path = "/ws";
    std::string post_path = "/api/authors";
    std::string post_body = R"({"name":"Ada"})";
    std::size_t subs = 100;
    double rate = 1000;  // events/s; 0 = as fast as possible
    double duration = 10;
    std::size_t http_conns = 8;
    std::size_t http_conns_max = 256;
    std::size_t threads = 1;
    std::size_t read_buffer = 256 * 1024;
    std::size_t poll_us = 0;  // subscriber threads: 0 = sleep in epoll_wait; N = poll, then sleep N µs when idle
    std::size_t connect_parallel = 64;
    double drain_idle = 3;
    double drain_max = 30;
    double sync_timeout = 15;
    double connect_timeout = 60;
    std::string label = "front";
    std::vector<long> server_pids;
};

Options opt;

[[noreturn]] void usage_error(const std::string& why) {
    const bool help = why.empty();
    std::fprintf(
        help ? stdout : stderr,
        "%s%s%s"
        "usage: crudcast-fanout-client --port P[,P...] [--host 127.0.0.1] [--ws-path /ws]\n"
        "  [--post-path /api/authors] [--post-body JSON] [--subs 100] [--rate 1000 (0 = as fast as possible)]\n"
        "  [--duration 10] [--http-conns 8] [--http-conns-max 256] [--threads 1] [--read-buffer 256k] [--poll-us 0] "
        "[--connect-parallel 64]\n"
        "  [--drain-idle 3] [--drain-max 30] [--sync-timeout 15] [--connect-timeout 60] [--label NAME] [--server-pid "
        "PID[,PID...]]\n"
        "durations are seconds (a trailing s or ms is accepted)\n",
        help ? "" : "crudcast-fanout-client: ", why.c_str(), help ? "" : "\n");
    std::exit(help ? 0 : 1);
}

double parse_seconds(const std::string& name, std::string v) {
    double scale = 1;
    if (v.ends_with("ms")) {
        scale = 0.001;
        v.resize(v.size() - 2);
    } else if (v.ends_with("s")) {
        v.resize(v.size() - 1);
    }
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(d >= 0)) usage_error("bad duration for " + name + ": '" + v + "'");
    return d * scale;
}

std::size_t parse_count(const std::string& name, std::string v) {
    std::size_t scale = 1;
    if (!v.empty() && (v.back() == 'k' || v.back() == 'K')) scale = 1024;
    if (!v.empty() && (v.back() == 'm' || v.back() == 'M')) scale = 1024 * 1024;
    if (scale != 1) v.pop_back();
    std::size_t n = 0;
    const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc() || p != v.data() + v.size())
        usage_error("bad number for " + name + ": '" + v + "'");
    return n * scale;
}

void parse_options(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string name = argv[i];
        if (name == "-h" || name == "--help") usage_error("");
        if (i + 1 >= argc) usage_error("missing value for " + name);
        const std::string v = argv[++i];
        if (name == "--host") opt.host = v;
        else if (name == "--port") {
            std::stringstream ss(v);
            std::string one;
            while (std::getline(ss, one, ',')) {
                const auto port = parse_count(name, one);
                if (port == 0 || port > 65535) usage_error("bad port for --port: '" + one + "'");
                opt.ports.push_back(static_cast<unsigned short>(port));
            }
        } else if (name == "--ws-path") opt.ws_path = v;
        else if (name == "--post-path") opt.post_path = v;
        else if (name == "--post-body") opt.post_body = v;
        else if (name == "--subs") opt.subs = parse_count(name, v);
        else if (name == "--rate") opt.rate = static_cast<double>(parse_count(name, v));
        else if (name == "--duration") opt.duration = parse_seconds(name, v);
        else if (name == "--http-conns") opt.http_conns = parse_count(name, v);
        else if (name == "--http-conns-max") opt.http_conns_max = parse_count(name, v);
        else if (name == "--threads") opt.threads = parse_count(name, v);
        else if (name == "--read-buffer") opt.read_buffer = parse_count(name, v);
        else if (name == "--poll-us") opt.poll_us = parse_count(name, v);
        else if (name == "--connect-parallel") opt.connect_parallel = parse_count(name, v);
        else if (name == "--drain-idle") opt.drain_idle = parse_seconds(name, v);
        else if (name == "--drain-max") opt.drain_max = parse_seconds(name, v);
        else if (name == "--sync-timeout") opt.sync_timeout = parse_seconds(name, v);
        else if (name == "--connect-timeout") opt.connect_timeout = parse_seconds(name, v);
        else if (name == "--label") opt.label = v;
        else if (name == "--server-pid") {
            std::stringstream ss(v);
            std::string one;
            while (std::getline(ss, one, ','))
                if (!one.empty()) opt.server_pids.push_back(static_cast<long>(parse_count(name, one)));
        } else usage_error("unknown option " + name);
    }
    if (opt.ports.empty()) usage_error("--port is required");
    if (opt.subs == 0 || opt.threads == 0 || opt.http_conns == 0 || opt.connect_parallel == 0)
        usage_error("--subs, --threads, --http-conns and --connect-parallel must be at least 1");
    if (opt.read_buffer < 4096) usage_error("--read-buffer must be at least 4k");
    if (opt.duration <= 0) usage_error("--duration must be positive");
    opt.http_conns_max = std::max(opt.http_conns_max, opt.http_conns);
}

// ---------------------------------------------------------------------------------------------
// Clocks and CPU accounting

std::int64_t wall_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

double self_cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return s(ru.ru_utime) + s(ru.ru_stime);
}

// utime + stime of a process, from /proc/PID/stat; -1 when unreadable.
double proc_cpu_seconds(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return -1;
    const auto paren = line.rfind(')');
    if (paren == std::string::npos) return -1;
    std::istringstream fields(line.substr(paren + 2));
    std::string f;
    double ticks = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i)
        if (i == 14 || i == 15) ticks += std::strtod(f.c_str(), nullptr);
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double servers_cpu_seconds() {
    double total = 0;
    for (long pid : opt.server_pids) {
        const double s = proc_cpu_seconds(pid);
        if (s < 0) return -1;
        total += s;
    }
    return total;
}

// Busy and total jiffies of the whole machine, from the first line of /proc/stat.
std::pair<double, double> machine_jiffies() {
    std::ifstream in("/proc/stat");
    std::string cpu;
    in >> cpu;
    double v[10] = {};
    double total = 0;
    for (int i = 0; i < 8 && in >> v[i]; ++i) total += v[i];
    const double idle = v[3] + v[4];  // idle + iowait
    return {total - idle, total};
}

// ---------------------------------------------------------------------------------------------
// Latency histogram: 0.1 ms buckets up to 60 s, then one overflow bucket (the max is exact).

struct Histogram {
    static constexpr std::int64_t bucket_us = 100;
    static constexpr std::size_t buckets = 600'000;
    std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(buckets + 1, 0);
    std::uint64_t n = 0;
    std::uint64_t negative = 0;
    std::int64_t max_us = 0;

    void add(std::int64_t us) {
        if (us < 0) {
            ++negative;
            us = 0;
        }
        counts[std::min<std::size_t>(static_cast<std::size_t>(us / bucket_us), buckets)]++;
        ++n;
        max_us = std::max(max_us, us);
    }
    void merge(const Histogram& o) {
        for (std::size_t i = 0; i <= buckets; ++i) counts[i] += o.counts[i];
        n += o.n;
        negative += o.negative;
        max_us = std::max(max_us, o.max_us);
    }
    // The upper edge of the bucket holding the q-quantile, in ms (never above the max).
    double quantile_ms(double q) const {
        if (n == 0) return 0;
        const auto rank = static_cast<std::uint64_t>(std::max(1.0, std::ceil(q * static_cast<double>(n))));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i <= buckets; ++i) {
            seen += counts[i];
            if (seen >= rank) {
                const auto edge = static_cast<std::int64_t>(i + 1) * bucket_us;
                return static_cast<double>(std::min(edge, max_us)) / 1000.0;
            }
        }
        return static_cast<double>(max_us) / 1000.0;
    }
};

// ---------------------------------------------------------------------------------------------
// Subscribers

// Frames with seq <= this are stale (sync events and older); UINT64_MAX until the sync is done.
std::atomic<std::uint64_t> g_base_seq{UINT64_MAX};
std::atomic<std::size_t> g_connecting{0};
std::atomic<bool> g_stopping{false};

struct Worker {
    asio::io_context ioc{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(ioc);
    std::thread thread;
    Histogram hist;                              // touched only by this worker's thread
    std::atomic<std::uint64_t> measured{0};      // frames after the sync, all subscribers
    std::atomic<std::int64_t> last_frame_us{0};  // wall time of the newest measured frame
};

struct Sub {
    Sub(Worker& w, std::size_t i) : worker(w), index(i), sock(w.ioc) {}
    Worker& worker;
    std::size_t index;
    tcp::socket sock;
    std::unique_ptr<unsigned char[]> buf;
    std::size_t have = 0;
    std::string fragments;  // a fragmented message in progress
    bool in_fragment = false;
    // Seq accounting, after the sync: frames counted, gaps (seq jumped ahead), frames missing in
    // those gaps, frames older than the previous one (out of order or duplicated).
    std::uint64_t next_seq = 0;
    std::uint64_t frames = 0, gaps = 0, missing = 0, out_of_order = 0, stale = 0, unparsed = 0, masked = 0;
    std::string first_disorder;              // the first gap or out-of-order frame, for the report
    std::atomic<std::uint64_t> last_seq{0};  // newest seq seen, sync included; read by main
    std::atomic<bool> connected{false};
    std::atomic<bool> failed{false};
    std::atomic<bool> ended{false};  // the read loop stopped (server closed, error)
    std::string error;               // why it ended or failed (read after the threads joined)
    std::uint16_t close_code = 0;    // from the server's close frame
    // Outbound control frames (pong, close), masked as clients must.
    std::string out, inflight;
    bool writing = false;
    std::mt19937 rng{static_cast<std::uint32_t>(index * 2654435761u + 12345)};
};

void start_write(Sub& s) {
    if (s.writing || s.out.empty()) return;
    s.writing = true;
    s.inflight.swap(s.out);
    s.out.clear();
    asio::async_write(s.sock, asio::buffer(s.inflight), [&s](error_code ec, std::size_t) {
        s.writing = false;
        s.inflight.clear();
        if (!ec) start_write(s);
    });
}

void queue_control(Sub& s, std::uint8_t opcode, std::string_view payload) {
    payload = payload.substr(0, 125);
    s.out += static_cast<char>(0x80 | opcode);
    s.out += static_cast<char>(0x80 | payload.size());
    const std::uint32_t key = s.rng();
    unsigned char mask[4];
    std::memcpy(mask, &key, 4);
    s.out.append(reinterpret_cast<const char*>(mask), 4);
    for (std::size_t i = 0; i < payload.size(); ++i) s.out += static_cast<char>(payload[i] ^ mask[i % 4]);
    start_write(s);
}

bool parse_number_at(std::string_view text, std::size_t pos, std::uint64_t& out) {
    while (pos < text.size() && text[pos] == ' ') ++pos;
    const auto [p, ec] = std::from_chars(text.data() + pos, text.data() + text.size(), out);
    return ec == std::errc() && p != text.data() + pos;
}

// One complete text message. Returns true when it counts (seq after the sync).
bool on_message(Sub& s, std::string_view msg, std::uint64_t base, std::int64_t now_us, std::uint64_t& newest) {
    // "ts" is the first field and "seq" the last: find the first "ts" and the last "seq", so that
    // the same names inside the payload do not matter.
    const auto ts_at = msg.starts_with(R"({"ts":)") ? std::size_t{1} : msg.find(R"("ts":)");
    const auto seq_at = msg.rfind(R"("seq":)");
    std::uint64_t ts = 0, seq = 0;
    if (ts_at == std::string_view::npos || seq_at == std::string_view::npos || !parse_number_at(msg, ts_at + 5, ts) ||
        !parse_number_at(msg, seq_at + 6, seq)) {
        ++s.unparsed;
        return false;
    }
    newest = std::max(newest, seq);
    if (seq <= base) {
        ++s.stale;
        return false;
    }
    ++s.frames;
    s.worker.hist.add(now_us - static_cast<std::int64_t>(ts) * 1000);
    if (s.next_seq == 0) s.next_seq = base + 1;
    if (seq == s.next_seq) {
        ++s.next_seq;
    } else if (seq > s.next_seq) {
        if (s.first_disorder.empty())
            s.first_disorder = "seq " + std::to_string(seq) + " when " + std::to_string(s.next_seq) + " was due";
        ++s.gaps;
        s.missing += seq - s.next_seq;
        s.next_seq = seq + 1;
    } else {
        if (s.first_disorder.empty())
            s.first_disorder = "seq " + std::to_string(seq) + " after " + std::to_string(s.next_seq - 1);
        ++s.out_of_order;
    }
    return true;
}

// Parses every complete frame in s.buf[0, s.have); returns the bytes consumed. Sets `stop` when
// the server closed or sent something unusable.
std::size_t parse_frames(Sub& s, std::int64_t now_us, bool& stop) {
    unsigned char* const p = s.buf.get();
    const std::size_t have = s.have;
    const std::uint64_t base = g_base_seq.load(std::memory_order_relaxed);
    std::uint64_t counted = 0, newest = 0;
    std::size_t off = 0;
    while (have - off >= 2) {
        unsigned char* f = p + off;
        const std::size_t avail = have - off;
        const bool fin = (f[0] & 0x80) != 0;
        const std::uint8_t opcode = f[0] & 0x0f;
        const bool is_masked = (f[1] & 0x80) != 0;
        std::uint64_t len = f[1] & 0x7f;
        std::size_t header = 2;
        if (len == 126) {
            if (avail < 4) break;
            len = (std::uint64_t(f[2]) << 8) | f[3];
            header = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; ++i) len = (len << 8) | f[2 + i];
            header = 10;
        }
        if (is_masked) header += 4;
        if (avail < header) break;
        if (len > opt.read_buffer - header) {
            s.error = "a frame larger than the read buffer (" + std::to_string(len) + " bytes)";
            stop = true;
            break;
        }
        if (avail - header < len) break;
        unsigned char* payload = f + header;
        const auto size = static_cast<std::size_t>(len);
        if (is_masked) {  // servers must not mask; unmask anyway and count it
            ++s.masked;
            for (std::size_t i = 0; i < size; ++i) payload[i] ^= f[header - 4 + i % 4];
        }
        off += header + size;
        const std::string_view data(reinterpret_cast<const char*>(payload), size);
        switch (opcode) {
            case 1:
            case 2:
                if (fin) {
                    counted += on_message(s, data, base, now_us, newest);
                } else {
                    s.fragments.assign(data);
                    s.in_fragment = true;
                }
                break;
            case 0:
                if (!s.in_fragment) break;
                s.fragments.append(data);
                if (fin) {
                    counted += on_message(s, s.fragments, base, now_us, newest);
                    s.in_fragment = false;
                }
                break;
            case 9: queue_control(s, 10, data); break;
            case 10: break;
            case 8:
                s.close_code = size >= 2 ? static_cast<std::uint16_t>((payload[0] << 8) | payload[1]) : 1005;
                s.error = "the server closed with " + std::to_string(s.close_code) +
                          (size > 2 ? " (" + std::string(data.substr(2)) + ")" : std::string());
                queue_control(s, 8, data.substr(0, 2));
                stop = true;
                break;
            default: break;
        }
        if (stop) break;
    }
    if (newest > s.last_seq.load(std::memory_order_relaxed)) s.last_seq.store(newest, std::memory_order_relaxed);
    if (counted > 0) {
        s.worker.measured.fetch_add(counted, std::memory_order_relaxed);
        s.worker.last_frame_us.store(now_us, std::memory_order_relaxed);
    }
    return off;
}

asio::awaitable<void> read_loop(Sub& s) {
    const std::size_t cap = opt.read_buffer;
    for (;;) {
        auto [ec, n] = co_await s.sock.async_read_some(asio::buffer(s.buf.get() + s.have, cap - s.have), use_nothrow);
        if (ec) {
            if (s.error.empty() && !g_stopping.load(std::memory_order_relaxed))
                s.error = ec == asio::error::eof ? "the server closed the connection" : ec.message();
            break;
        }
        s.have += n;
        bool stop = false;
        const std::size_t used = parse_frames(s, wall_us(), stop);
        if (stop) break;
        if (used > 0 && used < s.have) std::memmove(s.buf.get(), s.buf.get() + used, s.have - used);
        s.have -= used;
    }
    s.ended = true;
}

asio::awaitable<void> connect_sub(Sub& s, tcp::endpoint endpoint, std::string host_header) {
    auto [ec] = co_await s.sock.async_connect(endpoint, use_nothrow);
    if (!ec) {
        // Beast validates the 101. Nothing is sent to a subscriber before the sync POSTs, which
        // start after every handshake is done, so no frame bytes can be left in Beast's buffer.
        websocket::stream<tcp::socket&> ws(s.sock);
        ws.set_option(websocket::stream_base::decorator(
            [](websocket::request_type& req) { req.set(http::field::user_agent, "crudcast-fanout-client"); }));
        std::tie(ec) = co_await ws.async_handshake(host_header, opt.ws_path, use_nothrow);
    }
    if (ec) {
        s.error = ec.message();
        s.failed = true;
        g_connecting.fetch_sub(1);
        co_return;
    }
    s.buf.reset(new unsigned char[opt.read_buffer]);  // uninitialised: pages are touched only when used
    s.connected = true;
    g_connecting.fetch_sub(1);
    co_await read_loop(s);
}

// ---------------------------------------------------------------------------------------------
// Triggering POSTs

// One instance of the front: where to connect and the Host header that names it.
struct Target {
    tcp::endpoint endpoint;
    std::string host_header;
};

struct Poster {
    explicit Poster(std::vector<Target> t) : targets(std::move(t)) {}
    asio::io_context ioc{1};
    std::vector<Target> targets;  // connection k posts to targets[k mod n]
    Clock::time_point start, stop_at, done_at;
    bool stopped = false;
    std::uint64_t tokens = 0, generated = 0, behind = 0;
    std::uint64_t max_behind = 0;              // most POSTs due at once with no free connection to take them
    std::vector<asio::steady_timer*> waiters;  // idle connections waiting for a due POST
    std::size_t conns = 0, opened = 0, busy = 0, peak_busy = 0;
    std::uint64_t sent = 0, ok = 0, non2xx = 0, errors = 0;
    std::string first_error;
    Histogram post_latency;  // request written .. response read, for 2xx answers
};

asio::awaitable<void> http_conn(Poster& P, const Target& target);

void spawn_conn(Poster& P) {
    const Target& target = P.targets[P.opened % P.targets.size()];
    ++P.conns;
    ++P.opened;
    asio::co_spawn(P.ioc, http_conn(P, target), asio::detached);
}

void wake(Poster& P, std::size_t n) {
    while (n-- > 0 && !P.waiters.empty()) {
        P.waiters.back()->cancel();
        P.waiters.pop_back();
    }
}

// Waits for permission to send one POST; false once the duration is over.
asio::awaitable<bool> acquire(Poster& P, asio::steady_timer& wakeup) {
    for (;;) {
        if (P.stopped) co_return false;
        if (opt.rate == 0) co_return true;
        if (P.tokens > 0) {
            --P.tokens;
            co_return true;
        }
        wakeup.expires_at(Clock::time_point::max());
        P.waiters.push_back(&wakeup);
        co_await wakeup.async_wait(use_nothrow);
    }
}

// Every ms, releases the POSTs due by then (rate x elapsed time, on absolute deadlines so timer
// lateness does not lose any); stops everything at stop_at.
asio::awaitable<void> pacer(Poster& P) {
    asio::steady_timer timer(P.ioc);
    for (std::uint64_t k = 1;; ++k) {
        timer.expires_at(opt.rate == 0 ? P.stop_at : P.start + std::chrono::milliseconds(k));
        co_await timer.async_wait(use_nothrow);
        const auto now = Clock::now();
        if (now >= P.stop_at) break;
        const auto due = static_cast<std::uint64_t>(seconds_between(P.start, now) * opt.rate);
        if (due > P.generated) {
            P.tokens += due - P.generated;
            P.generated = due;
            P.max_behind = std::max(P.max_behind, P.tokens - std::min<std::uint64_t>(P.tokens, P.waiters.size()));
            wake(P, static_cast<std::size_t>(std::min<std::uint64_t>(P.tokens, P.waiters.size())));
            // POSTs due beyond the idle connections: open more (they take a token when they start).
            for (auto idle = P.conns - P.busy; P.tokens > idle && P.conns < opt.http_conns_max; ++idle) spawn_conn(P);
        }
    }
    P.stopped = true;
    P.behind = P.tokens;  // due but not sent: every connection was busy
    wake(P, P.waiters.size());
}

asio::awaitable<void> http_conn(Poster& P, const Target& target) {
    const auto& endpoint = target.endpoint;
    const auto& host_header = target.host_header;
    tcp::socket sock(P.ioc);
    asio::steady_timer wakeup(P.ioc);
    beast::flat_buffer buffer;
    http::request<http::string_body> req{http::verb::post, opt.post_path, 11};
    req.set(http::field::host, host_header);
    req.set(http::field::user_agent, "crudcast-fanout-client");
    req.set(http::field::content_type, "application/json");
    req.keep_alive(true);
    req.body() = opt.post_body;
    req.prepare_payload();
    auto fail = [&](const error_code& ec, const char* what) {
        ++P.errors;
        if (P.first_error.empty()) P.first_error = std::string(what) + ": " + ec.message();
        error_code ignored;
        sock.close(ignored);
        buffer.clear();
    };
    // One POST; false on a socket error (the connection is closed then and reopened next time).
    auto post_one = [&]() -> asio::awaitable<bool> {
        if (!sock.is_open()) {
            auto [ec] = co_await sock.async_connect(endpoint, use_nothrow);
            if (ec) {
                fail(ec, "connect");
                wakeup.expires_after(10ms);  // do not spin against a dead front
                co_await wakeup.async_wait(use_nothrow);
                co_return false;
            }
            sock.set_option(tcp::no_delay(true), ec);
        }
        ++P.sent;
        const auto sent_at = Clock::now();
        auto [wec, wn] = co_await http::async_write(sock, req, use_nothrow);
        if (wec) {
            fail(wec, "write");
            co_return false;
        }
        http::response<http::string_body> res;
        auto [rec, rn] = co_await http::async_read(sock, buffer, res, use_nothrow);
        if (rec) {
            fail(rec, "read");
            co_return false;
        }
        if (res.result_int() >= 200 && res.result_int() < 300) {
            ++P.ok;
            P.post_latency.add(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent_at).count());
        } else {
            ++P.non2xx;
            if (P.first_error.empty()) P.first_error = "HTTP " + std::to_string(res.result_int());
        }
        if (!res.keep_alive()) {
            error_code ignored;
            sock.close(ignored);
            buffer.clear();
        }
        co_return true;
    };
    while (co_await acquire(P, wakeup)) {
        P.peak_busy = std::max(P.peak_busy, ++P.busy);
        co_await post_one();
        --P.busy;
    }
    if (--P.conns == 0) P.done_at = Clock::now();
}

// One blocking POST on its own connection (the sync events); the status, or 0 on a socket error.
unsigned sync_post(const tcp::endpoint& endpoint, const std::string& host_header, std::string& error) {
    asio::io_context ioc;
    tcp::socket sock(ioc);
    error_code ec;
    sock.connect(endpoint, ec);
    http::request<http::string_body> req{http::verb::post, opt.post_path, 11};
    req.set(http::field::host, host_header);
    req.set(http::field::content_type, "application/json");
    req.keep_alive(false);
    req.body() = opt.post_body;
    req.prepare_payload();
    if (!ec) http::write(sock, req, ec);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    if (!ec) http::read(sock, buffer, res, ec);
    if (ec) {
        error = ec.message();
        return 0;
    }
    return res.result_int();
}

// ---------------------------------------------------------------------------------------------

std::string fmt(double v, int decimals = 1) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", decimals, v);
    return b;
}

int run() {
    {  // One descriptor per subscriber and HTTP connection, plus slack.
        rlimit rl{};
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < opt.subs + opt.http_conns + 64)
            std::fprintf(stderr,
                         "crudcast-fanout-client: WARNING: open-file limit %llu is below %zu subscribers + %zu "
                         "HTTP connections (raise ulimit -n)\n",
                         static_cast<unsigned long long>(rl.rlim_cur), opt.subs, opt.http_conns);
    }
    error_code ec;
    const auto address = asio::ip::make_address(opt.host, ec);
    if (ec) usage_error("--host must be an IP address, got '" + opt.host + "'");
    std::vector<Target> targets;
    std::string addresses;  // for the first line: host:port[,port...]
    for (const auto port : opt.ports) {
        targets.push_back({tcp::endpoint(address, port), opt.host + ":" + std::to_string(port)});
        addresses += (addresses.empty() ? targets.back().host_header : "," + std::to_string(port));
    }
    const std::string rate_text = opt.rate == 0 ? std::string("as fast as possible") : fmt(opt.rate, 0) + " events/s";
    std::printf("[%s] %zu subscribers at ws://%s%s on %zu thread(s); POST %s at %s for %s s on %s HTTP connection(s)\n",
                opt.label.c_str(), opt.subs, addresses.c_str(), opt.ws_path.c_str(), opt.threads, opt.post_path.c_str(),
                rate_text.c_str(), fmt(opt.duration).c_str(),
                (opt.rate == 0 || opt.http_conns_max == opt.http_conns
                     ? std::to_string(opt.http_conns)
                     : std::to_string(opt.http_conns) + ".." + std::to_string(opt.http_conns_max))
                    .c_str());
    std::fflush(stdout);

    std::vector<std::unique_ptr<Worker>> workers;
    for (std::size_t i = 0; i < opt.threads; ++i) workers.push_back(std::make_unique<Worker>());
    for (auto& w : workers) {
        w->thread = std::thread([w = w.get()] {
            if (opt.poll_us == 0) {
                w->ioc.run();
                return;
            }
            // Poll mode: take whatever is readable, then sleep a fixed time when nothing was. The
            // thread is rarely blocked in epoll_wait, so the server's sendmsg on loopback seldom
            // has to wake it (which a real network spares a server); the sleep counts in latency.
            while (!w->ioc.stopped()) {
                if (w->ioc.poll() == 0) std::this_thread::sleep_for(std::chrono::microseconds(opt.poll_us));
            }
        });
    }
    std::vector<std::unique_ptr<Sub>> subs;
    for (std::size_t i = 0; i < opt.subs; ++i) subs.push_back(std::make_unique<Sub>(*workers[i % workers.size()], i));

    auto shutdown = [&] {
        g_stopping = true;
        for (auto& s : subs)
            asio::post(s->worker.ioc, [s = s.get()] {
                error_code ignored;
                s->sock.close(ignored);
            });
        for (auto& w : workers) {
            w->guard.reset();
            w->thread.join();
        }
    };
    auto give_up = [&](const std::string& why) {
        std::fprintf(stderr, "crudcast-fanout-client [%s]: %s\n", opt.label.c_str(), why.c_str());
        shutdown();
        return 1;
    };

    // Connect, at most connect_parallel handshakes at once.
    const auto connect_start = Clock::now();
    const auto connect_deadline = connect_start + std::chrono::duration<double>(opt.connect_timeout);
    for (auto& s : subs) {
        while (g_connecting.load() >= opt.connect_parallel && Clock::now() < connect_deadline)
            std::this_thread::sleep_for(200us);
        g_connecting.fetch_add(1);
        const Target& target = targets[s->index % targets.size()];
        asio::co_spawn(s->worker.ioc, connect_sub(*s, target.endpoint, target.host_header), asio::detached);
    }
    while (g_connecting.load() > 0 && Clock::now() < connect_deadline) std::this_thread::sleep_for(1ms);
    std::size_t failed = 0;
    std::string first_failure;
    for (auto& s : subs) {
        if (s->failed) {
            if (failed++ == 0) first_failure = s->error;
        }
    }
    if (g_connecting.load() > 0)
        return give_up("subscribers still connecting after " + fmt(opt.connect_timeout) + " s");
    if (failed > 0)
        return give_up(std::to_string(failed) + " of " + std::to_string(opt.subs) +
                       " subscribers failed to connect; first: " + first_failure);
    std::printf("  connected %zu subscribers in %s s\n", opt.subs,
                fmt(seconds_between(connect_start, Clock::now()), 2).c_str());

    // Sync: one POST at a time until every subscriber got an event, then wait for the newest one
    // everywhere. Frames up to there do not count.
    const auto sync_deadline = Clock::now() + std::chrono::duration<double>(opt.sync_timeout);
    auto count_if_subs = [&](auto pred) {
        std::size_t n = 0;
        for (auto& s : subs) n += pred(*s) ? 1 : 0;
        return n;
    };
    std::size_t sync_posts = 0;
    for (;;) {
        std::string error;
        const Target& target = targets[sync_posts % targets.size()];
        const unsigned status = sync_post(target.endpoint, target.host_header, error);
        ++sync_posts;
        if (status < 200 || status >= 300)
            return give_up("sync POST " + opt.post_path +
                           " failed: " + (status == 0 ? error : "HTTP " + std::to_string(status)));
        bool all = false;
        for (int i = 0; i < 20 && !all; ++i) {
            std::this_thread::sleep_for(10ms);
            all = count_if_subs([](const Sub& s) { return s.last_seq.load() > 0; }) == subs.size();
        }
        if (all) break;
        if (Clock::now() > sync_deadline) {
            const auto got = count_if_subs([](const Sub& s) { return s.last_seq.load() > 0; });
            return give_up("only " + std::to_string(got) + " of " + std::to_string(opt.subs) +
                           " subscribers received a sync event within " + fmt(opt.sync_timeout) + " s");
        }
    }
    std::this_thread::sleep_for(300ms);  // let any late publication of the last sync POST land
    std::uint64_t base = 0;
    for (auto& s : subs) base = std::max(base, s->last_seq.load());
    while (count_if_subs([base](const Sub& s) { return s.last_seq.load() >= base; }) < subs.size()) {
        if (Clock::now() > sync_deadline + 5s)
            return give_up("subscribers did not all reach sync seq " + std::to_string(base));
        std::this_thread::sleep_for(5ms);
    }
    g_base_seq.store(base);
    if (auto ended = count_if_subs([](const Sub& s) { return s.ended.load(); }); ended > 0)
        return give_up(std::to_string(ended) + " subscribers were closed before the measurement");
    std::printf("  synced after %zu POST(s): frames with seq > %llu count\n", sync_posts,
                static_cast<unsigned long long>(base));
    std::fflush(stdout);

    // Measure.
    Poster P(targets);
    const double cpu0 = self_cpu_seconds();
    const double server0 = servers_cpu_seconds();
    const auto machine0 = machine_jiffies();
    const std::int64_t start_us = wall_us();
    P.start = Clock::now();
    P.stop_at = P.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.duration));
    asio::co_spawn(P.ioc, pacer(P), asio::detached);
    for (std::size_t i = 0; i < opt.http_conns; ++i) spawn_conn(P);
    std::thread poster([&P] { P.ioc.run(); });
    poster.join();
    const double trigger_s = seconds_between(P.start, P.done_at);

    // Drain.
    const std::uint64_t expected = P.ok * opt.subs;
    auto measured = [&] {
        std::uint64_t n = 0;
        for (auto& w : workers) n += w->measured.load(std::memory_order_relaxed);
        return n;
    };
    std::uint64_t seen = measured();
    auto last_progress = Clock::now();
    const auto drain_deadline =
        P.done_at + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.drain_max));
    while (seen < expected) {
        const auto now = Clock::now();
        if (now > drain_deadline || seconds_between(last_progress, now) > opt.drain_idle) break;
        std::this_thread::sleep_for(2ms);
        if (const auto n = measured(); n != seen) {
            seen = n;
            last_progress = Clock::now();
        }
    }
    const auto end = Clock::now();
    const double wall = seconds_between(P.start, end);
    const double client_cpu = 100.0 * (self_cpu_seconds() - cpu0) / wall;
    const double server1 = servers_cpu_seconds();
    const double server_cpu =
        server0 >= 0 && server1 >= 0 && !opt.server_pids.empty() ? 100.0 * (server1 - server0) / wall : -1;
    const auto machine1 = machine_jiffies();
    const double machine_cpu = machine1.second > machine0.second
                                   ? 100.0 * static_cast<double>(std::thread::hardware_concurrency()) *
                                         (machine1.first - machine0.first) / (machine1.second - machine0.second)
                                   : -1;
    const double drain_s = seconds_between(P.done_at, end);

    shutdown();

    // Aggregate (the worker threads are joined: their state is ours now).
    Histogram hist;
    std::int64_t last_frame_us = 0;
    for (auto& w : workers) {
        hist.merge(w->hist);
        last_frame_us = std::max(last_frame_us, w->last_frame_us.load());
    }
    std::uint64_t frames = 0, gaps = 0, missing = 0, ooo = 0, unparsed = 0, masked = 0, min_frames = UINT64_MAX,
                  max_frames = 0;
    std::size_t short_subs = 0, closed = 0;
    std::string first_close, first_disorder;
    for (auto& s : subs) {
        frames += s->frames;
        gaps += s->gaps;
        missing += s->missing;
        ooo += s->out_of_order;
        unparsed += s->unparsed;
        masked += s->masked;
        min_frames = std::min(min_frames, s->frames);
        max_frames = std::max(max_frames, s->frames);
        if (s->frames < P.ok) ++short_subs;
        if (first_disorder.empty() && !s->first_disorder.empty())
            first_disorder = "subscriber " + std::to_string(s->index) + " got " + s->first_disorder;
        if (!s->error.empty()) {
            if (closed++ == 0) first_close = s->error;
        }
    }
    const std::uint64_t lost = expected > frames ? expected - frames : 0;
    const double deliver_s = last_frame_us > start_us ? static_cast<double>(last_frame_us - start_us) / 1e6 : wall;
    const double frames_per_s = deliver_s > 0 ? static_cast<double>(frames) / deliver_s : 0;
    const double events_per_s = trigger_s > 0 ? static_cast<double>(P.ok) / trigger_s : 0;
    const std::string rate_field = opt.rate == 0 ? std::string("max") : fmt(opt.rate, 0);

    std::printf(
        "  POSTs: %llu sent, %llu 2xx, %llu non-2xx, %llu errors, %llu behind the pace (at most %llu at once); %s "
        "events/s over %s s; "
        "%zu connection(s), at most %zu POSTs in flight; POST latency p50 %s ms, p99 %s ms%s%s\n",
        static_cast<unsigned long long>(P.sent), static_cast<unsigned long long>(P.ok),
        static_cast<unsigned long long>(P.non2xx), static_cast<unsigned long long>(P.errors),
        static_cast<unsigned long long>(P.behind), static_cast<unsigned long long>(P.max_behind),
        fmt(events_per_s).c_str(), fmt(trigger_s, 2).c_str(), P.opened, P.peak_busy,
        fmt(P.post_latency.quantile_ms(0.5)).c_str(), fmt(P.post_latency.quantile_ms(0.99)).c_str(),
        P.first_error.empty() ? "" : "; first problem: ", P.first_error.c_str());
    std::printf(
        "  frames: %llu of %llu expected, %llu lost; per subscriber %llu..%llu, %zu short; seq gaps %llu "
        "(%llu frames skipped), out of order %llu, unparsable %llu%s\n",
        static_cast<unsigned long long>(frames), static_cast<unsigned long long>(expected),
        static_cast<unsigned long long>(lost), static_cast<unsigned long long>(min_frames),
        static_cast<unsigned long long>(max_frames), short_subs, static_cast<unsigned long long>(gaps),
        static_cast<unsigned long long>(missing), static_cast<unsigned long long>(ooo),
        static_cast<unsigned long long>(unparsed), masked ? " (some server frames were masked)" : "");
    if (!first_disorder.empty())
        std::printf(
            "  seq order broken (a frame skipped and delivered later counts as a gap and as out of order, "
            "not as lost); first: %s\n",
            first_disorder.c_str());
    if (closed > 0) std::printf("  %zu subscribers ended early; first: %s\n", closed, first_close.c_str());
    std::printf("  latency (receive - ts, ms; ts has 1 ms resolution): p50 %s  p90 %s  p99 %s  p99.9 %s  max %s%s\n",
                fmt(hist.quantile_ms(0.5)).c_str(), fmt(hist.quantile_ms(0.9)).c_str(),
                fmt(hist.quantile_ms(0.99)).c_str(), fmt(hist.quantile_ms(0.999)).c_str(),
                fmt(static_cast<double>(hist.max_us) / 1000.0).c_str(),
                hist.negative ? " (some negative: clock stepped?)" : "");
    std::printf("  delivery: %s frames/s (frames / time from the first POST to the last frame, %s s); drain %s s\n",
                fmt(frames_per_s, 0).c_str(), fmt(deliver_s, 2).c_str(), fmt(drain_s, 2).c_str());
    std::printf(
        "  CPU over %s s: this client %s%% (100%% = one core, %zu subscriber thread(s) + 1 HTTP thread), "
        "front %s, machine %s%% of %u cores\n",
        fmt(wall, 2).c_str(), fmt(client_cpu, 0).c_str(), opt.threads,
        server_cpu < 0 ? "n/a" : (fmt(server_cpu, 0) + "%").c_str(), fmt(machine_cpu, 0).c_str(),
        std::thread::hardware_concurrency());
    std::printf(
        "RESULT front=%s subs=%zu rate=%s duration_s=%s http_conns=%zu max_in_flight=%zu sent=%llu ok=%llu failed=%llu "
        "behind=%llu max_behind=%llu "
        "events_per_s=%s frames=%llu expected=%llu lost=%llu gaps=%llu missing=%llu out_of_order=%llu "
        "closed=%zu p50_ms=%s p90_ms=%s p99_ms=%s max_ms=%s frames_per_s=%s drain_s=%s post_p50_ms=%s post_p99_ms=%s "
        "client_cpu=%s%% "
        "server_cpu=%s%% machine_cpu=%s%%\n",
        opt.label.c_str(), opt.subs, rate_field.c_str(), fmt(opt.duration).c_str(), P.opened, P.peak_busy,
        static_cast<unsigned long long>(P.sent), static_cast<unsigned long long>(P.ok),
        static_cast<unsigned long long>(P.non2xx + P.errors), static_cast<unsigned long long>(P.behind),
        static_cast<unsigned long long>(P.max_behind), fmt(events_per_s).c_str(),
        static_cast<unsigned long long>(frames), static_cast<unsigned long long>(expected),
        static_cast<unsigned long long>(lost), static_cast<unsigned long long>(gaps),
        static_cast<unsigned long long>(missing), static_cast<unsigned long long>(ooo), closed,
        fmt(hist.quantile_ms(0.5)).c_str(), fmt(hist.quantile_ms(0.9)).c_str(), fmt(hist.quantile_ms(0.99)).c_str(),
        fmt(static_cast<double>(hist.max_us) / 1000.0).c_str(), fmt(frames_per_s, 0).c_str(), fmt(drain_s, 2).c_str(),
        fmt(P.post_latency.quantile_ms(0.5)).c_str(), fmt(P.post_latency.quantile_ms(0.99)).c_str(),
        fmt(client_cpu, 0).c_str(), server_cpu < 0 ? "-1" : fmt(server_cpu, 0).c_str(), fmt(machine_cpu, 0).c_str());
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    parse_options(argc, argv);
    try {
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "crudcast-fanout-client: %s\n", e.what());
        return 1;
    }
}
