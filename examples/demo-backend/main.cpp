// crudcast-demo-backend: a tiny in-memory REST API to put behind crudcast.
//
//   /api/authors, /api/books         GET (list), POST (create -> 201 + Location)
//   /api/{collection}/{id}           GET, PUT (replace), PATCH (shallow merge), DELETE (204)
//   /api/authors/{id}/books          GET (books whose author_id equals id)
//
// Usage: crudcast-demo-backend [--listen HOST:PORT]   (default 127.0.0.1:3000; port 0 = any)
// Prints one "demo-backend listening on http://HOST:PORT ..." line to stdout, exits 0 on
// SIGINT/SIGTERM. One thread per connection (HTTP/1.1 keep-alive), one mutex for the data.
//
// Built on Boost.Beast (sync) + RapidJSON: the Debian cpp-httplib is not header-only (it needs
// -lcpp-httplib), and this target links only Threads.
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

// The project build compiles Asio/Beast in "separate compilation" mode; this program is a single
// translation unit, so it carries those sources itself (a no-op in a plain header-only build).
#ifdef BOOST_ASIO_SEPARATE_COMPILATION
#include <boost/asio/impl/src.hpp>
#endif
#ifdef BOOST_BEAST_SEPARATE_COMPILATION
#include <boost/beast/src.hpp>
#endif

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

struct Collection {
    std::int64_t next_id = 1;
    std::map<std::int64_t, rapidjson::Document> items;
};

struct Store {
    std::mutex mu;
    std::map<std::string, Collection, std::less<>> collections;
    Store() { collections["authors"]; collections["books"]; }
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
    for (const auto& [id, item] : c.items)
        if (keep(item)) out += (out.size() > 1 ? "," : "") + to_json(item);
    return out + "]";
}

Response reply(const Request& req, http::status status, std::string body) {
    Response res{status, req.version()};
    res.set(http::field::server, "crudcast-demo-backend");
    if (!body.empty()) res.set(http::field::content_type, "application/json");
    res.body() = std::move(body);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    if (status == http::status::no_content) res.erase(http::field::content_length);
    return res;
}

Response error(const Request& req, http::status status, std::string_view msg, std::string_view detail = {}) {
    rapidjson::Document doc(rapidjson::kObjectType);
    auto& a = doc.GetAllocator();
    doc.AddMember("error", rapidjson::Value(msg.data(), static_cast<rapidjson::SizeType>(msg.size()), a), a);
    if (!detail.empty())
        doc.AddMember("detail", rapidjson::Value(detail.data(), static_cast<rapidjson::SizeType>(detail.size()), a), a);
    return reply(req, status, to_json(doc));
}

Response not_allowed(const Request& req, const char* allow) {
    auto res = error(req, http::status::method_not_allowed, "method not allowed");
    res.set(http::field::allow, allow);
    return res;
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

Response handle(const Request& req, Store& store) {
    std::string_view target = req.target();
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
    if (coll_it == store.collections.end() || seg.size() > 4) return error(req, http::status::not_found, "not found");
    Collection& coll = coll_it->second;
    const std::string name(seg[1]);
    const auto method = req.method();

    rapidjson::Document body;
    const bool wants_body = seg.size() == 2 ? method == http::verb::post
                                            : seg.size() == 3 && (method == http::verb::put || method == http::verb::patch);
    if (wants_body) {
        body.Parse(req.body().data(), req.body().size());
        if (body.HasParseError())
            return error(req, http::status::bad_request, "invalid JSON body",
                         std::string(GetParseError_En(body.GetParseError())) + " (at offset " +
                             std::to_string(body.GetErrorOffset()) + ")");
        if (!body.IsObject()) return error(req, http::status::bad_request, "invalid JSON body", "expected a JSON object");
    }

    if (seg.size() == 2) {  // the collection itself
        if (method == http::verb::get) return reply(req, http::status::ok, list_json(coll, [](const auto&) { return true; }));
        if (method == http::verb::post) {
            const std::int64_t id = coll.next_id++;
            auto& item = coll.items[id] = make_item(id, body);
            auto res = reply(req, http::status::created, to_json(item));
            res.set(http::field::location, "/api/" + name + "/" + std::to_string(id));
            return res;
        }
        return not_allowed(req, "GET, POST");
    }

    std::int64_t id = 0;
    const auto [end, ec] = std::from_chars(seg[2].data(), seg[2].data() + seg[2].size(), id);
    if (ec != std::errc{} || end != seg[2].data() + seg[2].size())
        return error(req, http::status::not_found, "not found", name + " id must be an integer");
    auto item_it = coll.items.find(id);
    if (item_it == coll.items.end())
        return error(req, http::status::not_found, "not found", name + " " + std::to_string(id) + " does not exist");

    if (seg.size() == 4) {  // /api/authors/{id}/books
        if (name != "authors" || seg[3] != "books") return error(req, http::status::not_found, "not found");
        if (method != http::verb::get) return not_allowed(req, "GET");
        return reply(req, http::status::ok, list_json(store.collections.find("books")->second, [id](const auto& book) {
                         auto author = book.FindMember("author_id");
                         return author != book.MemberEnd() && author->value.IsInt64() && author->value.GetInt64() == id;
                     }));
    }

    rapidjson::Document& item = item_it->second;
    switch (method) {
        case http::verb::get:
            return reply(req, http::status::ok, to_json(item));
        case http::verb::put:
            item = make_item(id, body);
            return reply(req, http::status::ok, to_json(item));
        case http::verb::patch:
            for (auto& m : body.GetObject()) {
                if (m.name == "id") continue;
                auto& a = item.GetAllocator();
                if (auto old = item.FindMember(m.name); old != item.MemberEnd())
                    old->value.CopyFrom(m.value, a);
                else
                    item.AddMember(rapidjson::Value(m.name, a), rapidjson::Value(m.value, a), a);
            }
            return reply(req, http::status::ok, to_json(item));
        case http::verb::delete_:
            coll.items.erase(item_it);
            return reply(req, http::status::no_content, {});
        default:
            return not_allowed(req, "GET, PUT, PATCH, DELETE");
    }
}

void serve(tcp::socket sock, Store& store) {
    boost::beast::error_code ec;
    boost::beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(1 << 20);
        http::read(sock, buffer, parser, ec);
        if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset) break;
        if (ec) {  // malformed or oversized request: answer once, then close
            Request dummy;
            const bool too_big = ec == http::error::body_limit;
            auto res = error(dummy, too_big ? http::status::payload_too_large : http::status::bad_request,
                             "bad request", ec.message());
            res.keep_alive(false);
            http::write(sock, res, ec);
            break;
        }
        auto res = handle(parser.get(), store);
        http::write(sock, res, ec);
        if (ec || !res.keep_alive()) break;
    }
    sock.shutdown(tcp::socket::shutdown_send, ec);
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
    unsigned port = 0;
    const std::string_view port_text = colon == std::string::npos ? "" : std::string_view(listen).substr(colon + 1);
    const auto [port_end, port_err] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (host.empty() || port_text.empty() || port_err != std::errc{} ||
        port_end != port_text.data() + port_text.size() || port > 65535) {
        std::fprintf(stderr, "demo-backend: --listen expects HOST:PORT, got '%s'\n", listen.c_str());
        return 2;
    }

    sigset_t stop_signals;  // blocked in every thread; the main thread sigwait()s for them
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    asio::io_context io;
    tcp::acceptor acceptor(io);
    try {
        const tcp::endpoint ep =
            *tcp::resolver(io).resolve(host, std::to_string(port), tcp::resolver::numeric_service).begin();
        acceptor.open(ep.protocol());
        acceptor.set_option(tcp::acceptor::reuse_address(true));
        acceptor.bind(ep);
        acceptor.listen(asio::socket_base::max_listen_connections);
    } catch (const boost::system::system_error& e) {
        std::fprintf(stderr, "demo-backend: cannot listen on %s: %s\n", listen.c_str(), e.code().message().c_str());
        return 1;
    }
    const auto local = acceptor.local_endpoint();
    const std::string addr = local.address().to_string(), shown = local.address().is_v6() ? "[" + addr + "]" : addr;
    std::printf("demo-backend listening on http://%s:%u (authors, books under /api)\n", shown.c_str(), local.port());
    std::fflush(stdout);

    static Store store;  // static: outlives detached connection threads at exit
    std::thread([&acceptor] {
        for (;;) {
            boost::beast::error_code ec;
            tcp::socket sock = acceptor.accept(ec);
            if (ec) {  // e.g. out of file descriptors: back off instead of spinning
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            sock.set_option(tcp::no_delay(true), ec);
            std::thread(serve, std::move(sock), std::ref(store)).detach();
        }
    }).detach();

    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fflush(nullptr);
    std::_Exit(0);  // connection threads are detached and blocking: skip static destructors
}
