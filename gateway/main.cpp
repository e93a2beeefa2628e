// main.cpp: parses the configuration, starts the gateway, turns SIGTERM/SIGINT into a graceful
// drain (a second signal stops at once), and maps failures to exit codes: 2 bad config, 1 cannot run.
#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/system/system_error.hpp>

#if defined(CRUDCAST_WITH_MIMALLOC)
#include <mimalloc.h>
#endif

#include "common/log.hpp"
#include "config/config.hpp"
#include "gateway/gateway.hpp"
#include "gateway/tail/tail.hpp"

namespace {

using namespace crudcast;

int cannot_listen(const config::Config& cfg, const std::string& reason) {
    const auto& host = cfg.listen.host;
    const bool v6 = host.find(':') != std::string::npos;
    std::fprintf(stderr, "crudcast: cannot listen on %s%s%s:%u: %s\n", v6 ? "[" : "", host.c_str(), v6 ? "]" : "",
                 static_cast<unsigned>(cfg.listen.port), reason.c_str());
    return 1;
}

// Every connection is a file descriptor: the soft RLIMIT_NOFILE (often 1024) would refuse accepts
// long before max-connections. Raises it to the hard limit and says so, with how many subscribers
// fit beside a full HTTP side. Warns only when max-connections clients alone do not fit: ws-max-subscribers'
// default (100k) is above many hosts' hard limit, and a warning at every start that the operator
// did not ask for would be noise; the info line tells the real subscriber capacity instead.
void raise_file_limit(const config::Config& cfg) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    const auto before = limit.rlim_cur;
    if (limit.rlim_cur != limit.rlim_max) {
        rlimit raised{limit.rlim_max, limit.rlim_max};
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit.rlim_cur = limit.rlim_max;
    }
    const auto show = [](rlim_t n) { return n == RLIM_INFINITY ? std::string("unlimited") : std::to_string(n); };
    // Every max-connections client connected (one descriptor each), the idle pool of each thread, and a
    // few for listeners and logs. Requests in flight hold an upstream connection too, which this
    // leaves out: subscribers_fit is the room beside a full but quiet HTTP side.
    const std::uint64_t threads = std::max(1u, cfg.threads);
    const std::uint64_t floor = std::uint64_t{cfg.max_connections} + threads * cfg.upstream_max_idle + 16;
    const std::uint64_t room = limit.rlim_cur == RLIM_INFINITY ? cfg.ws_max_subscribers
                               : limit.rlim_cur > floor        ? limit.rlim_cur - floor
                                                               : 0;
    log::write(config::LogLevel::info, "file descriptor limit",
               {{"nofile", show(limit.rlim_cur)},
                {"was", show(before)},
                {"hard", show(limit.rlim_max)},
                {"subscribers_fit", std::min<std::uint64_t>(room, cfg.ws_max_subscribers)}});
    // The warning is for a limit that cannot even hold max-connections clients: a configuration
    // that fails at a load it invites.
    if (limit.rlim_cur != RLIM_INFINITY && floor > limit.rlim_cur) {
        log::write(config::LogLevel::warn, "file descriptor limit below what max-connections may need",
                   {{"needed", floor},
                    {"nofile", show(limit.rlim_cur)},
                    {"hint", "raise LimitNOFILE / ulimit -n, or lower max-connections"}});
    }
}

// Events carry the API's response bodies: say once when anyone who can reach the port may read them.
void warn_if_open(const config::Config& cfg) {
    if (cfg.ws_auth != config::WsAuth::none) return;
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(cfg.listen.host, ec);
    if ((!ec && address.is_loopback()) || cfg.listen.host == "localhost") return;
    log::write(config::LogLevel::warn, "events are readable by anyone who can reach this port (ws-auth none)",
               {{"listen", cfg.listen.host},
                {"hint", "set ws-auth jwt or forward, or bind listen to an address only your subscribers reach"}});
}

// Which malloc serves the process (CMakeLists.txt says why crudcast links mimalloc): at debug level,
// for whoever compares a build with another.
void log_allocator() {
#if defined(CRUDCAST_WITH_MIMALLOC)
    const int v = mi_version();  // 209 is 2.0.9
    const std::string version =
        "mimalloc " + std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) + "." + std::to_string(v % 10);
#else
    const std::string version = "system malloc";
#endif
    log::write(config::LogLevel::debug, "memory allocator", {{"allocator", version}});
}

int run(const config::Config& cfg) {
    log::configure(cfg.log_level, cfg.log_format);
    if (log::enabled(config::LogLevel::debug)) log_allocator();
    raise_file_limit(cfg);
    // Some settings name files that are read as the gateway is built or started (the admin token,
    // key files): a bad one is a bad setting like any other, exit 2 with the same one line.
    std::optional<gateway::Gateway> built;
    try {
        built.emplace(cfg);
        built->start();
    } catch (const config::ConfigError& e) {
        std::fprintf(stderr, "crudcast: invalid setting %s: %s\n", e.setting.c_str(), e.problem.c_str());
        return 2;
    } catch (const boost::system::system_error& e) {
        return cannot_listen(cfg, e.code().message());
    } catch (const std::system_error& e) {
        return cannot_listen(cfg, e.code().message());
    } catch (const std::runtime_error& e) {
        std::fprintf(stderr, "crudcast: %s\n", e.what());
        return 1;
    }
    gateway::Gateway& gw = *built;
    log::write(
        config::LogLevel::info, "crudcast started",
        {{"version", CRUDCAST_VERSION},
         {"listen", cfg.listen.host + ":" + std::to_string(gw.port())},
         {"upstream", cfg.upstream.text},
         {"ws_path", cfg.ws_path},
         {"threads", std::max(1u, cfg.threads)},
         {"admin",
          cfg.admin_listen ? cfg.admin_listen->host + ":" + std::to_string(gw.admin_port()) : std::string("off")},
         {"ws_auth", gw.subscriber_auth()},
         {"bus", cfg.bus == "memory" ? cfg.bus : config::mask_url_password(cfg.bus) + " prefix=" + cfg.bus_prefix},
         {"history", std::to_string(cfg.history_size) + " events/" + config::format_size(cfg.history_bytes)},
         {"first_seq", gw.stream_position() + 1}});
    warn_if_open(cfg);

    boost::asio::io_context signals_context(1);
    boost::asio::signal_set signals(signals_context, SIGINT, SIGTERM);
    int received = 0;
    std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec,
                                                                               int signo) {
        if (ec) return;
        if (++received == 1) {
            log::write(config::LogLevel::info, "signal received, shutting down gracefully",
                       {{"signal", signo == SIGTERM ? "SIGTERM" : "SIGINT"}});
            gw.shutdown();
            signals.async_wait(on_signal);
        } else {
            log::write(config::LogLevel::warn, "second signal: exiting without waiting for the drain");
            std::_Exit(1);
        }
    };
    signals.async_wait(on_signal);
    std::thread signal_thread([&] { signals_context.run(); });
    gw.wait();
    signals_context.stop();
    signal_thread.join();
    log::write(config::LogLevel::info, "crudcast stopped");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::string_view(argv[1]) == "tail")
        return crudcast::gateway::run_tail(std::vector<std::string>(argv + 2, argv + argc));
    std::vector<std::string> args(argv + 1, argv + argc);
    config::ParseResult parsed;
    try {
        parsed = config::parse(args, config::environment());
    } catch (const config::ConfigError& e) {
        std::fprintf(stderr, "crudcast: invalid setting %s: %s\n", e.setting.c_str(), e.problem.c_str());
        return 2;
    }
    switch (parsed.action) {
        case config::Action::help: std::cout << config::help_text(); return 0;
        case config::Action::version: std::cout << "crudcast " << CRUDCAST_VERSION << "\n"; return 0;
        case config::Action::check_config: std::cout << config::describe(parsed.config); return 0;
        case config::Action::run: break;
    }
    // A client that disconnects mid-write must not kill the process.
    std::signal(SIGPIPE, SIG_IGN);
    return run(parsed.config);
}
