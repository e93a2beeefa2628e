// gateway.cpp: the worker threads (one single-threaded io_context each, owning its sessions, its
// upstream pool and its shard of subscribers: nothing on the request path takes a lock), the
// listener, the event bus, and graceful drain.
#include "gateway/gateway.hpp"

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "bus/broker_bus.hpp"
#include "bus/in_memory_bus.hpp"
#include "common/log.hpp"
#include "gateway/admin/admin_api.hpp"
#include "gateway/admin/admin_server.hpp"
#include "gateway/admin/metrics.hpp"
#include "gateway/auth/jwt_keys.hpp"
#include "gateway/events/event_publisher.hpp"
#include "gateway/listener.hpp"
#include "gateway/subscriber_admission.hpp"
#include "gateway/ws/websocket_session.hpp"
#include "proxy/downstream_session.hpp"

namespace crudcast::gateway {

using config::LogLevel;

namespace {

// A credential file's bytes, one trailing newline stripped (config::ConfigError naming the setting).
std::string read_credential(const char* setting, const std::string& path) {
    if (path.empty()) return {};
    auto text = auth::read_key_file(setting, path);
    if (text.ends_with('\n')) text.pop_back();
    if (text.ends_with('\r')) text.pop_back();
    if (text.empty()) throw config::ConfigError(setting, config::quoted(path) + " is empty");
    return text;
}

std::unique_ptr<bus::BrokerClient> make_broker_client(const config::Config& c) {
    bus::BrokerOptions o;
    o.url = c.bus;
    o.prefix = c.bus_prefix;
    o.password = read_credential("bus-password-file", c.bus_password_file);
    o.token = read_credential("bus-token-file", c.bus_token_file);
    o.credentials_file = c.bus_credentials_file;
    o.tls_ca_file = c.bus_tls_ca_file;
    o.tls_cert_file = c.bus_tls_cert_file;
    o.tls_key_file = c.bus_tls_key_file;
    // The broker's retention is the history every instance resumes subscribers from.
    o.history_events = c.history_size;
    o.history_bytes = c.history_bytes;
    o.timeout = c.bus_publish_timeout;
    try {
        return bus::make_broker_client(o);
    } catch (const std::invalid_argument& e) {
        throw config::ConfigError("bus", e.what());
    }
}

struct Worker {
    Worker(std::size_t index, const config::Config& config, proxy::ProxyCounters& counters, std::atomic<bool>& draining,
           bus::InMemoryBus& bus, WebSocketCounters& ws_counters)
        : context(1),
          guard(asio::make_work_guard(context)),
          proxy(std::make_shared<proxy::ProxyContext>(context.get_executor(), config, counters, draining)),
          ws(std::make_shared<SubscriberShard>(context.get_executor(), config, bus, index, ws_counters)) {}

    asio::io_context context;  // concurrency hint 1: one thread runs it (Asio keeps its locks)
    asio::executor_work_guard<asio::io_context::executor_type> guard;
    // Shared with the sessions: whichever goes last (this worker or a session destroyed by the
    // io_context's shutdown) frees them, so no session ever points at a dead context.
    std::shared_ptr<proxy::ProxyContext> proxy;
    std::shared_ptr<SubscriberShard> ws;
    std::thread thread;
    bool drained = false;
};

}  // namespace

struct Gateway::Impl {
    explicit Impl(config::Config cfg) : config(std::move(cfg)) {}

    config::Config config;
    proxy::ProxyCounters counters;
    WebSocketCounters ws_counters;
    EventCounters event_counters;
    std::atomic<bool> draining{false};
    std::unique_ptr<bus::InMemoryBus> bus;   // outlives the workers (posted deliveries point at it)
    std::unique_ptr<bus::BrokerBus> broker;  // --bus nats:// or redis://: feeds `bus`; stopped in wait()
    std::unique_ptr<EventPublisher> publisher;
    std::unique_ptr<SubscriberAdmission> admission;  // who may subscribe (shared by the workers)
    std::vector<std::unique_ptr<Worker>> workers;
    std::unique_ptr<Listener> listener;
    std::unique_ptr<AdminServer> admin;  // on worker 0; destroyed before the workers
    std::atomic<unsigned> busy_workers{0};
    std::once_flag shutdown_once;
    std::unique_ptr<asio::steady_timer> drain_deadline;
    bool started = false;

    void worker_drained(Worker& w) {
        if (w.drained) return;
        w.drained = true;
        w.proxy->pool.close_idle();
        w.guard.reset();
        if (busy_workers.fetch_sub(1) == 1) stop_all();
    }

    void stop_all() {
        for (auto& w : workers) w->context.stop();
    }

    // One worker per thread, each with its proxy context and subscriber shard, wired to the bus.
    void make_workers(unsigned n) {
        bus = std::make_unique<bus::InMemoryBus>(
            n,
            [this](std::size_t shard, std::function<void()> fn) { asio::post(workers[shard]->context, std::move(fn)); },
            config.history_size, config.history_bytes);
        if (config.bus != "memory") broker = std::make_unique<bus::BrokerBus>(*bus, make_broker_client(config));
        publisher =
            std::make_unique<EventPublisher>(config, broker ? static_cast<bus::Bus&>(*broker) : *bus, event_counters);
        for (unsigned i = 0; i < n; ++i) {
            auto w = std::make_unique<Worker>(i, config, counters, draining, *bus, ws_counters);
            w->proxy->observer = publisher.get();
            bus->attach(i, w->ws.get());
            w->proxy->websocket_handoff = [ws = w->ws](tcp::socket socket, http::request<http::buffer_body> request,
                                                       beast::flat_buffer leftover, std::string client, std::string rid,
                                                       proxy::ProxyContext::SubscriberGrant grant) {
                WebSocketSession::Grant session_grant{std::move(grant.topics), grant.expires, grant.sse};
                std::make_shared<WebSocketSession>(std::move(socket), ws, std::move(client), std::move(rid),
                                                   std::move(session_grant))
                    ->start(std::move(request), std::move(leftover));
            };
            w->proxy->websocket_admission = [this](const http::request<http::buffer_body>& request,
                                                   proxy::ProxyContext::HandshakeInfo info) {
                return admission->admit(request, std::move(info));
            };
            workers.push_back(std::move(w));
        }
    }

    // The listener (on worker 0: accepting is cheap next to serving) hands each connection to a
    // worker in turn; binding throws on "address in use".
    void make_listener() {
        std::vector<asio::io_context*> contexts;
        for (auto& w : workers) contexts.push_back(&w->context);
        listener = std::make_unique<Listener>(
            workers[0]->context, contexts, config,
            // HTTP connections only: once upgraded, a subscriber counts toward ws-max-subscribers.
            [this] { return counters.open_client_connections.load(); },
            [this](std::size_t i, tcp::socket socket) {
                Worker& w = *workers[i];
                asio::post(w.context, [&w, s = std::move(socket)]() mutable {
                    std::make_shared<proxy::DownstreamSession>(std::move(s), w.proxy)->start();
                });
            });
        listener->bind(config.listen);
        // The authorities a client may use for crudcast itself (absolute-form targets naming them
        // are served, not proxied to another host).
        const auto host =
            config.listen.host.find(':') != std::string::npos ? "[" + config.listen.host + "]" : config.listen.host;
        const auto port = std::to_string(listener->port());
        for (auto& w : workers) {
            w->proxy->own_authorities = {host + ":" + port, "localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port,
                                         config.upstream.host_header};
        }
    }

    bus::BusStatus bus_status() const {
        if (broker) return broker->status();
        bus::BusStatus memory;
        memory.kind = "memory";
        return memory;
    }

    AdminContent admin_content() {
        AdminContent content;
        content.metrics = [this] { return render_metrics(counters, ws_counters, event_counters, *bus, bus_status()); };
        content.stats = [this] { return render_stats_json(counters, ws_counters, event_counters, *bus, bus_status()); };
        content.bus = [this] {
            const auto s = bus_status();
            return s.kind + " " + std::string(bus::bus_state_name(s.state));
        };
        content.requests = [this] {
            std::vector<proxy::RequestRecord> records;
            for (auto& w : workers) w->proxy->recent.append_to(records);
            return render_requests_json(
                proxy::newest_first(std::move(records), proxy::RecentRequests::default_capacity));
        };
        content.info = [this, info = ServiceInfo{CRUDCAST_VERSION, config.upstream.text, config.listen.host,
                                                 listener->port(), config.ws_path}] { return render_info_json(info); };
        return content;
    }

    void start_admin() {
        admin = std::make_unique<AdminServer>(workers[0]->context, config, admin_content(), draining);
        try {
            admin->bind(*config.admin_listen);
        } catch (const boost::system::system_error& e) {
            throw std::runtime_error("cannot listen on admin address " + config.admin_listen->host + ":" +
                                     std::to_string(config.admin_listen->port) +
                                     " (--admin-listen): " + e.code().message());
        }
        admin->start();
    }

    void run_threads() {
        busy_workers = static_cast<unsigned>(workers.size());
        for (auto& w : workers) {
            w->thread = std::thread([&ctx = w->context] {
                for (;;) {
                    try {
                        ctx.run();
                        return;
                    } catch (const std::exception& e) {
                        // A bug must not take every connection of the process down with it: log, go on.
                        log::write(LogLevel::error, "unexpected exception in a worker thread", {{"error", e.what()}});
                    }
                }
            });
        }
    }

    // Every 100 ms, each thread closes the overdue side of its sessions whose timeout has passed
    // (see proxy/deadline.hpp: one timer per thread instead of one per socket operation), and
    // during a drain notices when its last session has gone.
    asio::awaitable<void> sweep(Worker& w) {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        for (;;) {
            timer.expires_after(std::chrono::milliseconds(100));
            auto [ec] = co_await timer.async_wait(use_nothrow);
            if (ec) co_return;
            const auto now = std::chrono::steady_clock::now();
            for (auto* session : w.proxy->sessions) session->check_deadline(now);
            w.proxy->pool.close_expired(now);
            counters.failure_warnings.flush();  // a burst's count that no later failure carried
            if (draining.load() && w.proxy->sessions.empty() && !w.ws->has_sessions()) {
                worker_drained(w);
                co_return;
            }
        }
    }
};

Gateway::Gateway(config::Config config) : impl_(std::make_unique<Impl>(std::move(config))) {}

Gateway::~Gateway() {
    if (impl_->started) {
        shutdown();
        wait();
    }
}

void Gateway::start() {
    auto& im = *impl_;
    // First: a key file that cannot be used is a configuration error (exit 2), before any socket.
    im.admission = std::make_unique<SubscriberAdmission>(im.config, im.ws_counters);
    im.make_workers(std::max(1u, im.config.threads));
    im.make_listener();
    // The stream's retained entries fill the history before anyone can resume from it.
    if (im.broker) im.broker->start(im.config.connect_timeout);
    if (im.config.admin_listen) im.start_admin();
    im.listener->start();
    for (auto& w : im.workers) asio::co_spawn(w->context, im.sweep(*w), asio::detached);
    im.run_threads();
    im.started = true;
}

std::uint16_t Gateway::port() const { return impl_->listener ? impl_->listener->port() : 0; }

std::string Gateway::subscriber_auth() const { return impl_->admission ? impl_->admission->describe() : "none"; }

std::uint64_t Gateway::stream_position() const { return impl_->bus ? impl_->bus->position().value_or(0) : 0; }

std::uint16_t Gateway::admin_port() const { return impl_->admin ? impl_->admin->port() : 0; }

void Gateway::shutdown() {
    auto& im = *impl_;
    if (!im.started) return;
    std::call_once(im.shutdown_once, [&im] {
        im.draining = true;
        im.listener->close();
        log::write(LogLevel::info, "draining: no new connections; finishing in-flight requests",
                   {{"drain_timeout_ms", static_cast<std::int64_t>(im.config.drain_timeout.count())}});
        // The deadline runs on worker 0; past it, whatever is still open is cut.
        im.drain_deadline = std::make_unique<asio::steady_timer>(im.workers[0]->context, im.config.drain_timeout);
        im.drain_deadline->async_wait([&im](error_code ec) {
            if (ec) return;
            std::int64_t open = im.counters.open_client_connections.load();
            log::write(LogLevel::warn, "drain timeout reached; closing remaining connections",
                       {{"open_connections", open}});
            im.stop_all();
        });
        for (auto& w : im.workers) {
            asio::post(w->context, [raw = w.get()] {
                // Copy: drain() may end a session, which unregisters itself from the list.
                std::vector<proxy::DownstreamSession*> sessions(raw->proxy->sessions.begin(),
                                                                raw->proxy->sessions.end());
                for (auto* s : sessions) s->drain();
                raw->ws->drain();
                raw->proxy->pool.close_idle();
            });
        }
    });
}

void Gateway::wait() {
    for (auto& w : impl_->workers) {
        if (w->thread.joinable()) w->thread.join();
    }
    impl_->counters.failure_warnings.flush(/*all=*/true);  // no failure count is lost at exit
    // Every in-flight request is done: no more appends. The broker's threads post into the
    // workers' contexts, so they stop before those go.
    if (impl_->broker) impl_->broker->stop();
    impl_->drain_deadline.reset();
    impl_->started = false;
}

}  // namespace crudcast::gateway
