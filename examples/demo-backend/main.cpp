// crudcast-demo-backend: a tiny in-memory REST API to put behind crudcast.
//
//   /api/authors, /api/books         GET (list), POST (create -> 201 + Location)
//   /api/{collection}/{id}           GET, PUT (replace), PATCH (shallow merge), DELETE (204)
//   /api/authors/{id}/books          GET (books whose author_id equals id)
//
// Usage: crudcast-demo-backend [--listen HOST:PORT]   (default 127.0.0.1:3000; port 0 = any)
// Prints one "demo-backend listening on http://HOST:PORT ..." line to stdout, exits 0 on
// SIGINT/SIGTERM. One thread per connection (HTTP/1.1 keep-alive), one mutex for the data.
// Built on cpp-httplib (the requirements' library for demo and test backends; Debian ships it as
// a shared library, linked through pkg-config) and RapidJSON.
#include <httplib.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <netdb.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>  // <chrono>, <functional>, <map>, <mutex>, <string>, <thread>, <vector>: httplib.h

namespace {

using httplib::Request;
using httplib::Response;

struct Collection {
    std::int64_t next_id = 1;
    std::map<std::int64_t, rapidjson::Document> items;
};

struct Store {
    std::mutex mu;
    std::map<std::string, Collection, std::less<>> collections;
    Store() {
        collections["authors"];
        collections["books"];
    }
};

// httplib's default queue is a fixed pool that idle keep-alive connections (crudcast's upstream
// pool) would starve: give every connection its own thread instead.
struct ThreadPerConnection : httplib::TaskQueue {
    void enqueue(std::function<void()> fn) override { std::thread(std::move(fn)).detach(); }
    void shutdown() override {}  // connection threads are detached; main() _Exit()s after stop()
};

std::string to_json(const rapidjson::Value& v) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    v.Accept(w);
    return {sb.GetString(), sb.GetSize()};
}

// The items of `c` that satisfy `keep`, as a JSON array.
template <class Pred>
std::string list_json(const Collection& c, Pred keep) {
    std::string out = "[";
    for (const auto& [id, item] : c.items) {
        if (!keep(item)) continue;
        if (out.size() > 1) out += ',';
        out += to_json(item);
    }
    out += ']';
    return out;
}

void reply(Response& res, int status, const std::string& body) {
    res.status = status;
    if (!body.empty()) res.set_content(body, "application/json");
}

void error(Response& res, int status, std::string_view msg, std::string_view detail = {}) {
    rapidjson::Document doc(rapidjson::kObjectType);
    auto& a = doc.GetAllocator();
    doc.AddMember("error", rapidjson::Value(msg.data(), static_cast<rapidjson::SizeType>(msg.size()), a), a);
    if (!detail.empty())
        doc.AddMember("detail", rapidjson::Value(detail.data(), static_cast<rapidjson::SizeType>(detail.size()), a), a);
    reply(res, status, to_json(doc));
}

void not_allowed(Response& res, const char* allow) {
    error(res, 405, "method not allowed");
    res.set_header("Allow", allow);
}

// A stored object: the body's fields with "id" forced to `id` (and listed first).
rapidjson::Document make_item(std::int64_t id, const rapidjson::Value& body) {
    rapidjson::Document item(rapidjson::kObjectType);
    auto& a = item.GetAllocator();
    item.AddMember("id", id, a);
    for (const auto& m : body.GetObject())
        if (m.name != "id") item.AddMember(rapidjson::Value(m.name, a), rapidjson::Value(m.value, a), a);
    return item;
}

void handle(const Request& req, Response& res, Store& store) {
    std::string_view target = req.target;  // raw (undecoded) request target, like the path router sees it
    target = target.substr(0, target.find('?'));
    std::vector<std::string_view> seg;
    for (std::size_t pos = 0; pos < target.size();) {
        std::size_t next = target.find('/', pos);
        if (next == std::string_view::npos) next = target.size();
        if (next > pos) seg.push_back(target.substr(pos, next - pos));
        pos = next + 1;
    }
    std::lock_guard lock(store.mu);
    auto coll_it = seg.size() >= 2 && seg[0] == "api" ? store.collections.find(seg[1]) : store.collections.end();
    if (coll_it == store.collections.end() || seg.size() > 4) return error(res, 404, "not found");
    Collection& coll = coll_it->second;
    const std::string name(seg[1]);
    const std::string& method = req.method;

    rapidjson::Document body;
    const bool wants_body =
        seg.size() == 2 ? method == "POST" : seg.size() == 3 && (method == "PUT" || method == "PATCH");
    if (wants_body) {
        body.Parse(req.body.data(), req.body.size());
        if (body.HasParseError())
            return error(res, 400, "invalid JSON body",
                         std::string(GetParseError_En(body.GetParseError())) + " (at offset " +
                             std::to_string(body.GetErrorOffset()) + ")");
        if (!body.IsObject()) return error(res, 400, "invalid JSON body", "expected a JSON object");
    }

    if (seg.size() == 2) {  // the collection itself
        if (method == "GET") return reply(res, 200, list_json(coll, [](const auto&) { return true; }));
        if (method == "POST") {
            const std::int64_t id = coll.next_id++;
            auto& item = coll.items[id] = make_item(id, body);
            reply(res, 201, to_json(item));
            return res.set_header("Location", "/api/" + name + "/" + std::to_string(id));
        }
        return not_allowed(res, "GET, POST");
    }

    std::int64_t id = 0;
    const auto [end, ec] = std::from_chars(seg[2].data(), seg[2].data() + seg[2].size(), id);
    if (ec != std::errc{} || end != seg[2].data() + seg[2].size())
        return error(res, 404, "not found", name + " id must be an integer");
    auto item_it = coll.items.find(id);
    if (item_it == coll.items.end())
        return error(res, 404, "not found", name + " " + std::to_string(id) + " does not exist");

    if (seg.size() == 4) {  // /api/authors/{id}/books
        if (name != "authors" || seg[3] != "books") return error(res, 404, "not found");
        if (method != "GET") return not_allowed(res, "GET");
        return reply(res, 200, list_json(store.collections.find("books")->second, [id](const auto& book) {
                         auto author = book.FindMember("author_id");
                         return author != book.MemberEnd() && author->value.IsInt64() && author->value.GetInt64() == id;
                     }));
    }

    rapidjson::Document& item = item_it->second;
    if (method == "GET") return reply(res, 200, to_json(item));
    if (method == "PUT") {
        item = make_item(id, body);
        return reply(res, 200, to_json(item));
    }
    if (method == "PATCH") {
        for (auto& m : body.GetObject()) {
            if (m.name == "id") continue;
            auto& a = item.GetAllocator();
            if (auto old = item.FindMember(m.name); old != item.MemberEnd()) old->value.CopyFrom(m.value, a);
            else item.AddMember(rapidjson::Value(m.name, a), rapidjson::Value(m.value, a), a);
        }
        return reply(res, 200, to_json(item));
    }
    if (method == "DELETE") {
        coll.items.erase(item_it);
        return reply(res, 204, {});
    }
    return not_allowed(res, "GET, PUT, PATCH, DELETE");
}

}  // namespace

int main(int argc, char** argv) {
    std::string listen = "127.0.0.1:3000";
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--listen" && i + 1 < argc) {
            listen = argv[++i];
        } else if (arg.starts_with("--listen=")) {
            listen = arg.substr(9);
        } else {
            std::fprintf(stderr, "usage: %s [--listen HOST:PORT]   (default 127.0.0.1:3000)\n", argv[0]);
            return arg == "--help" || arg == "-h" ? 0 : 2;
        }
    }
    const auto colon = listen.rfind(':');
    std::string host = listen.substr(0, colon == std::string::npos ? 0 : colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    int port = 0;
    const std::string_view port_text = colon == std::string::npos ? "" : std::string_view(listen).substr(colon + 1);
    const auto [port_end, port_err] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (host.empty() || port_text.empty() || port_err != std::errc{} ||
        port_end != port_text.data() + port_text.size() || port < 0 || port > 65535) {
        std::fprintf(stderr, "demo-backend: --listen expects HOST:PORT, got '%s'\n", listen.c_str());
        return 2;
    }

    // Blocked before any thread starts, so every thread inherits the mask; one thread sigwait()s.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    static Store store;  // static: outlive detached connection threads at exit
    static httplib::Server server;
    static std::atomic<int> listen_fd{-1};
    server.new_task_queue = [] { return new ThreadPerConnection; };
    // Only SO_REUSEADDR: httplib's default adds SO_REUSEPORT, which lets a second server share a taken port.
    server.set_socket_options([](int fd) {
        const int yes = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        listen_fd = fd;
    });
    server.set_tcp_nodelay(true).set_payload_max_length(1 << 20).set_read_timeout(300).set_write_timeout(300);
    server.set_default_headers({{"Server", "crudcast-demo-backend"}});
    server.set_keep_alive_max_count(1'000'000).set_keep_alive_timeout(75);  // > crudcast pool idle (30 s)
    const httplib::Server::Handler api = [](const Request& req, Response& res) { handle(req, res, store); };
    server.Get(".*", api).Post(".*", api).Put(".*", api).Patch(".*", api).Delete(".*", api).Options(".*", api);
    // A request without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3), but httplib
    // would read a POST/PUT/PATCH body until the peer closes: answer those before it tries.
    using Outcome = httplib::Server::HandlerResponse;
    server.set_pre_routing_handler([](const Request& req, Response& res) {
        const_cast<Request&>(req).ranges.clear();  // no Range support: always the whole JSON document
        if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) return Outcome::Unhandled;
        handle(req, res, store);
        return Outcome::Handled;
    });
    // httplib's own errors (unparsable request, body too large) get JSON bodies too, and end the connection.
    server.set_error_handler(httplib::Server::HandlerWithResponse([](const Request&, Response& res) {
        if (!res.body.empty()) return Outcome::Unhandled;  // one of ours, JSON already
        res.set_header("Connection", "close");             // the stream may be out of step: have the peer close
        error(res, res.status, res.status == 404 ? "not found" : "bad request",
              res.status == 413 ? "body limit exceeded" : "");
        return Outcome::Handled;
    }));

    errno = 0;
    const int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
    if (bound < 0 || listen_fd < 0) {
        std::fprintf(stderr, "demo-backend: cannot listen on %s: %s\n", listen.c_str(),
                     errno != 0 ? std::strerror(errno) : "cannot bind");
        return 1;
    }
    ::listen(listen_fd, SOMAXCONN);  // httplib listens with a backlog of 5

    sockaddr_storage local{};  // print the address actually bound, as resolved
    socklen_t len = sizeof local;
    getsockname(listen_fd, reinterpret_cast<sockaddr*>(&local), &len);
    const bool v6 = local.ss_family == AF_INET6;
    char addr[NI_MAXHOST] = "?";
    getnameinfo(reinterpret_cast<sockaddr*>(&local), len, addr, sizeof addr, nullptr, 0, NI_NUMERICHOST);
    std::printf("demo-backend listening on http://%s%s%s:%d (authors, books under /api)\n", v6 ? "[" : "", addr,
                v6 ? "]" : "", bound);
    std::fflush(stdout);

    std::thread([stop_signals] {
        int sig = 0;
        sigwait(&stop_signals, &sig);
        while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        server.stop();
    }).detach();

    const bool ok = server.listen_after_bind();  // returns once stop() closed the listening socket
    std::fflush(nullptr);
    std::_Exit(ok ? 0 : 1);  // connection threads are detached and may block: skip static destructors
}
