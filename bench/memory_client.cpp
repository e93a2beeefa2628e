// bench/memory_client.cpp: the load and meter of bench/memory.sh (memory per idle WebSocket
// subscriber).
//
// Opens idle WebSocket subscribers at ws://HOST:PORT<path> in steps (--steps 1000,5000,10000) and,
// after each step, reads the front's memory (--server-pid): VmRSS from /proc/PID/status, Pss and
// Private_Clean + Private_Dirty from /proc/PID/smaps_rollup; once before the first subscriber too.
// Every handshake is a real one (Beast sends the upgrade and checks the 101); subscriber i asks
// for ?topic=author when i is even and for every model when it is odd.
//
// One process may hold at most the hard open-file limit of descriptors (20,000 on the machine this
// was written for), so the subscribers are split over --per-process sized child processes, forked
// before any Asio object exists. The parent sends each child "open K" and "check" on a pipe; a
// child answers one line for each and exits when the pipe closes, closing its sockets.
//
// After the handshake a child keeps only the descriptor and reads nothing: the front is run with a
// ping interval longer than the run, so no ping waits for an answer. "check" polls every descriptor
// without waiting: anything readable or hung up means the front closed or wrote to an idle
// subscriber, and the run fails.
//
// Output: readable lines on stderr, one `STEP n=... rss_kib=... pss_kib=... private_kib=...` line
// per step on stdout (n=0 first). Exit status: 0 when every step was measured with every subscriber
// open, 1 otherwise.
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

struct Options {
    std::string host = "127.0.0.1";
    unsigned short port = 0;
    std::string path = "/ws";
    std::vector<std::size_t> steps;
    std::size_t per_process = 5000;
    std::size_t parallel = 32;
    int server_pid = 0;
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "crudcast-memory-client: %s\n"
                 "usage: crudcast-memory-client --port P --server-pid PID --steps N1,N2,... "
                 "[--host H] [--path /ws] [--per-process N] [--parallel N]\n",
                 why.c_str());
    std::exit(1);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (i + 1 >= argc) usage("missing value for " + std::string(arg));
        const std::string value = argv[++i];
        if (arg == "--host") o.host = value;
        else if (arg == "--port") o.port = static_cast<unsigned short>(std::stoul(value));
        else if (arg == "--path") o.path = value;
        else if (arg == "--per-process") o.per_process = std::stoul(value);
        else if (arg == "--parallel") o.parallel = std::stoul(value);
        else if (arg == "--server-pid") o.server_pid = std::stoi(value);
        else if (arg == "--steps") {
            std::stringstream in(value);
            for (std::string n; std::getline(in, n, ',');) o.steps.push_back(std::stoul(n));
        } else usage("unknown option " + std::string(arg));
    }
    if (o.port == 0 || o.server_pid <= 0 || o.steps.empty() || o.per_process == 0 || o.parallel == 0)
        usage("--port, --server-pid and --steps are required");
    for (std::size_t i = 1; i < o.steps.size(); ++i)
        if (o.steps[i] <= o.steps[i - 1]) usage("--steps must grow");
    return o;
}

// ---- child: holds its share of the subscribers ----

struct Child {
    const Options& options;
    std::vector<int> fds;
    std::size_t failed = 0;
    std::string first_error;
};

asio::awaitable<void> open_one(Child& child, tcp::endpoint endpoint, std::size_t index) {
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    stream.expires_after(std::chrono::seconds(30));  // a front that never answers fails the run
    websocket::stream<beast::tcp_stream> ws(std::move(stream));
    auto [ec] = co_await beast::get_lowest_layer(ws).async_connect(endpoint, use_nothrow);
    if (!ec) {
        const std::string target = index % 2 == 0 ? child.options.path + "?topic=author" : child.options.path;
        std::tie(ec) = co_await ws.async_handshake(child.options.host, target, use_nothrow);
    }
    if (ec) {  // a refused upgrade (not 101) lands here too
        if (child.failed++ == 0) child.first_error = ec.message();
        co_return;
    }
    auto socket = beast::get_lowest_layer(ws).release_socket();
    child.fds.push_back(socket.release(ec));  // the descriptor stays open, unknown to Asio from here on
}

// Opens `count` subscribers, `parallel` handshakes at a time; `first` numbers them across children.
void open_many(Child& child, std::size_t first, std::size_t count) {
    asio::io_context io(1);
    const tcp::endpoint endpoint(asio::ip::make_address(child.options.host), child.options.port);
    std::size_t next = 0;
    auto worker = [&]() -> asio::awaitable<void> {
        while (next < count) co_await open_one(child, endpoint, first + next++);
    };
    for (std::size_t i = 0; i < child.options.parallel; ++i) asio::co_spawn(io, worker(), asio::detached);
    io.run();
}

// Subscribers the front has neither closed nor written to.
std::size_t count_open(const std::vector<int>& fds) {
    std::vector<pollfd> polled(fds.size());
    for (std::size_t i = 0; i < fds.size(); ++i) polled[i] = {fds[i], POLLIN | POLLRDHUP, 0};
    if (::poll(polled.data(), polled.size(), 0) < 0) return 0;
    std::size_t open = 0;
    for (const auto& p : polled) open += p.revents == 0 ? 1 : 0;
    return open;
}

[[noreturn]] void child_main(const Options& options, int commands, int answers) {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    Child child{options, {}, 0, {}};
    FILE* in = ::fdopen(commands, "r");
    FILE* out = ::fdopen(answers, "w");
    char line[128];
    while (in != nullptr && std::fgets(line, sizeof line, in) != nullptr) {
        std::size_t first = 0, count = 0;
        if (std::sscanf(line, "open %zu %zu", &first, &count) == 2) {
            child.failed = 0;
            open_many(child, first, count);
            std::fprintf(out, "opened %zu failed %zu %s\n", count - child.failed, child.failed,
                         child.first_error.empty() ? "-" : child.first_error.c_str());
        } else {
            std::fprintf(out, "open %zu of %zu\n", count_open(child.fds), child.fds.size());
        }
        std::fflush(out);
    }
    for (int fd : child.fds) ::close(fd);
    std::_Exit(0);
}

// ---- parent: steps, memory readings ----

struct Memory {
    long rss_kib = -1, pss_kib = -1, private_kib = -1;
};

long field_kib(const std::string& file, std::string_view name) {
    std::ifstream in(file);
    long total = -1;
    for (std::string line; std::getline(in, line);) {
        if (line.compare(0, name.size(), name) != 0 || line.size() <= name.size() || line[name.size()] != ':') continue;
        total = (total < 0 ? 0 : total) + std::atol(line.c_str() + name.size() + 1);
    }
    return total;
}

Memory read_memory(int pid) {
    const std::string base = "/proc/" + std::to_string(pid) + "/";
    Memory m;
    m.rss_kib = field_kib(base + "status", "VmRSS");
    m.pss_kib = field_kib(base + "smaps_rollup", "Pss");
    const long clean = field_kib(base + "smaps_rollup", "Private_Clean");
    const long dirty = field_kib(base + "smaps_rollup", "Private_Dirty");
    if (clean >= 0 && dirty >= 0) m.private_kib = clean + dirty;
    return m;
}

// The front has finished with the handshakes when its RSS stops moving: two readings 250 ms apart
// within 64 KiB, or 5 s.
Memory settled_memory(int pid) {
    Memory last = read_memory(pid);
    for (int i = 0; i < 20; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        const Memory now = read_memory(pid);
        const bool still = std::labs(now.rss_kib - last.rss_kib) <= 64;
        last = now;
        if (still) break;
    }
    return last;
}

struct ChildLink {
    pid_t pid;
    FILE* commands;
    FILE* answers;
    std::size_t held = 0;
};

std::string ask(ChildLink& c) {
    char line[256];
    if (std::fgets(line, sizeof line, c.answers) == nullptr) return "no answer (child died)";
    std::string s(line);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

// Opens subscribers up to `n` (split evenly over the children); false when one failed or closed.
bool grow_to(std::vector<ChildLink>& children, std::size_t n, std::size_t& opened) {
    const std::size_t k = children.size();
    for (std::size_t i = 0; i < k; ++i) {
        const std::size_t target = n / k + (i < n % k ? 1 : 0);
        std::fprintf(children[i].commands, "open %zu %zu\n", opened, target - children[i].held);
        std::fflush(children[i].commands);
        opened += target - children[i].held;
        children[i].held = target;
    }
    bool ok = true;
    for (auto& c : children) {
        const std::string answer = ask(c);
        if (answer.find("failed 0 ") == std::string::npos) {
            std::fprintf(stderr, "memory-client: child %d: %s\n", static_cast<int>(c.pid), answer.c_str());
            ok = false;
        }
    }
    return ok;
}

bool all_open(std::vector<ChildLink>& children, std::size_t n) {
    std::size_t open = 0;
    for (auto& c : children) {
        std::fputs("check\n", c.commands);
        std::fflush(c.commands);
        const std::string answer = ask(c);
        open += std::strtoul(answer.c_str() + 5, nullptr, 10);
    }
    if (open != n) std::fprintf(stderr, "memory-client: only %zu of %zu subscribers still open\n", open, n);
    return open == n;
}

void print_step(std::size_t n, const Memory& m, const Memory& zero) {
    const double per = n == 0 ? 0.0 : static_cast<double>(m.rss_kib - zero.rss_kib) / static_cast<double>(n);
    std::printf("STEP n=%zu rss_kib=%ld pss_kib=%ld private_kib=%ld per_sub_kib=%.2f\n", n, m.rss_kib, m.pss_kib,
                m.private_kib, per);
    std::fflush(stdout);
    std::fprintf(stderr, "memory-client: %6zu subscribers open: VmRSS %ld KiB, Pss %ld KiB, private %ld KiB\n", n,
                 m.rss_kib, m.pss_kib, m.private_kib);
}

int run(int argc, char** argv) {
    const Options options = parse(argc, argv);
    const std::size_t most = options.steps.back();
    const std::size_t k = (most + options.per_process - 1) / options.per_process;
    std::vector<ChildLink> children;
    for (std::size_t i = 0; i < k; ++i) {
        int down[2], up[2];
        if (::pipe(down) != 0 || ::pipe(up) != 0) usage("pipe failed");
        const pid_t pid = ::fork();
        if (pid < 0) usage("fork failed");
        if (pid == 0) {
            for (auto& c : children) std::fclose(c.commands), std::fclose(c.answers);
            ::close(down[1]);
            ::close(up[0]);
            child_main(options, down[0], up[1]);
        }
        ::close(down[0]);
        ::close(up[1]);
        children.push_back({pid, ::fdopen(down[1], "w"), ::fdopen(up[0], "r")});
    }
    const Memory zero = settled_memory(options.server_pid);
    print_step(0, zero, zero);
    bool ok = zero.rss_kib > 0;
    std::size_t opened = 0;
    for (const std::size_t n : options.steps) {
        if (!ok) break;
        const auto began = std::chrono::steady_clock::now();
        ok = grow_to(children, n, opened);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
        std::fprintf(stderr, "memory-client: opened up to %zu in %.1f s\n", n, s);
        if (!ok) break;
        const Memory m = settled_memory(options.server_pid);
        ok = all_open(children, n) && m.rss_kib > 0;
        if (ok) print_step(n, m, zero);
    }
    for (auto& c : children) {
        std::fclose(c.commands);
        std::fclose(c.answers);
    }
    for (auto& c : children) ::waitpid(c.pid, nullptr, 0);
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {  // a bad number in an option, a failed fork
        std::fprintf(stderr, "crudcast-memory-client: %s\n", e.what());
        return 1;
    }
}
