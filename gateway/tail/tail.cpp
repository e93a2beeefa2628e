// tail.cpp: `crudcast tail [ws://host:port/path] [--topic a,b] [--json] [--since SEQ]` (see
// tail.hpp). A plain blocking Beast WebSocket client: one connection at a time, so synchronous calls
// are the simplest correct shape; signals end the process directly (see install_signal_handlers).
#include "gateway/tail/tail.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <thread>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include "gateway/tail/tail_options.hpp"
#include "gateway/tail/tail_resume.hpp"

namespace crudcast::gateway {
namespace {

namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;
using tail::Message;
using tail::Options;

constexpr std::string_view usage =
    "usage: crudcast tail [ws://HOST:PORT/PATH] [--topic MODEL[,MODEL...]]... [--json]\n"
    "                     [--since SEQ] [--token-file FILE] [--header \"NAME: VALUE\"]...\n"
    "\n"
    "Subscribes to a crudcast event WebSocket and prints one line per event:\n"
    "  12:03:04.123 author POST id=42 {\"id\":42,\"name\":\"Ada\"}\n"
    "\n"
    "  URL            default ws://127.0.0.1:8080/ws (the local crudcast)\n"
    "  --topic MODEL  only these models; repeatable or comma-separated\n"
    "  --json         print each event's JSON as received (terminal controls escaped as \\u00XX)\n"
    "  --since SEQ    first the retained events after position SEQ (an event's \"seq\", or a\n"
    "                 response's X-Crudcast-Seq), then live ones\n"
    "  --token-file FILE\n"
    "                 send the token in FILE as \"Authorization: Bearer ...\" (one trailing newline\n"
    "                 removed; read again on every reconnect, so a renewed token is picked up)\n"
    "  --header \"NAME: VALUE\"\n"
    "                 one more handshake header, e.g. --header \"X-Tenant: blue\"; repeatable\n"
    "  -h, --help     this text\n"
    "\n"
    "Reconnects with backoff (0.5s doubling to 10s) when the connection drops or cannot be made,\n"
    "resuming after the last event printed, so a blip loses nothing. Events crudcast no longer\n"
    "has are reported on stderr as one line, \"gap: events after 17 and before 25 were lost (history)\"\n"
    "(with --json, also the gap message itself on stdout).\n"
    "A subscription the server refuses (401, 403 or another 4xx but 408 and 429) ends the tail with\n"
    "status 1 after one line with the status and the server's reason; 2 is bad arguments or token file.\n";

// The default dispositions would kill the process with a signal status; a tail stopped by the
// user has done its job, so it exits 0. Every printed line is already flushed, so _exit (the
// async-signal-safe exit) loses nothing.
void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = [](int) { ::_exit(0); };
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

std::string compact(const rapidjson::Value& v) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    v.Accept(writer);
    return {buffer.GetString(), buffer.GetSize()};
}

// `text` with every terminal control escaped as \u00XX (a JSON escape, so --json output stays the
// same JSON): C0 (ESC included) and DEL, and C1 (U+0080..U+009F, UTF-8 C2 80..C2 9F: CSI is
// U+009B), so an event's model, id or payload, which come from request paths and bodies, cannot
// move the cursor, recolour, retitle or clear the operator's terminal. Other text is unchanged.
std::string escape_controls(std::string_view text) {
    constexpr std::string_view hex = "0123456789abcdef";
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        const bool c1 = c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                        static_cast<unsigned char>(text[i + 1]) <= 0x9f;
        if (c1) c = static_cast<unsigned char>(text[++i]);
        if (c1 || c < 0x20 || c == 0x7f) {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

const char* method_colour(std::string_view method) {
    if (method == "POST") return "\033[32m";                      // creates: green
    if (method == "PUT" || method == "PATCH") return "\033[33m";  // updates: yellow
    if (method == "DELETE") return "\033[31m";                    // deletes: red
    return "\033[36m";
}

void print(std::FILE* to, std::string line) {
    line += '\n';
    // Flushed line by line: a pipe into grep or jq must see each event as it happens.
    std::fwrite(line.data(), 1, line.size(), to);
    std::fflush(to);
}

// Prints one frame: an event on stdout; a gap as a status line on stderr (and with --json as
// received on stdout too, so a pipeline sees it); any other message with a "type" key on stdout
// with --json, else on stderr, never as an event line. Then moves the resume position on.
void show(std::string_view frame, const Options& o, bool colour, tail::Position& position) {
    const Message m = tail::classify(frame);
    if (m.kind == Message::Kind::gap) print(stderr, "crudcast tail: " + escape_controls(tail::gap_line(m)));
    if (o.json) print(stdout, escape_controls(frame));
    else if (m.kind == Message::Kind::event) print(stdout, format_event(frame, colour));
    else if (m.kind == Message::Kind::other)
        print(stderr, "crudcast tail: message from the server: " + escape_controls(frame));
    position.saw(m);
}

// Reads frames until the connection ends; returns why it ended.
std::string stream_events(websocket::stream<tcp::socket>& ws, const Options& o, bool colour, tail::Position& position) {
    boost::beast::flat_buffer buffer;
    for (;;) {
        boost::system::error_code ec;
        ws.read(buffer, ec);
        // A close frame from the server carries the why, e.g. 1008 "token expired" when a
        // subscriber's token runs out: show that rather than Beast's generic message.
        if (ec == websocket::error::closed)
            return "closed by the server: " + std::to_string(ws.reason().code) +
                   (ws.reason().reason.empty() ? "" : " " + escape_controls(ws.reason().reason.c_str()));
        if (ec) return "lost (" + ec.message() + ")";
        show(boost::beast::buffers_to_string(buffer.data()), o, colour, position);
        buffer.consume(buffer.size());
    }
}

// "401 Unauthorized: ERROR: DETAIL" from a refused handshake: the status, then the error and detail
// members of crudcast's small JSON body (or the first line of any other body), with terminal controls
// escaped as in events, since a proxy in between may answer anything.
std::string refusal(const websocket::response_type& res) {
    constexpr std::size_t max_part = 200;
    std::string line = std::to_string(res.result_int()) + " " + std::string(res.reason());
    rapidjson::Document doc;
    doc.Parse(res.body().data(), res.body().size());
    if (!doc.HasParseError() && doc.IsObject()) {
        for (const char* name : {"error", "detail"})
            if (auto it = doc.FindMember(name); it != doc.MemberEnd() && it->value.IsString())
                line += ": " + std::string(it->value.GetString(),
                                           std::min<std::size_t>(it->value.GetStringLength(), max_part));
    } else if (!res.body().empty()) {
        line += ": " + res.body().substr(0, std::min(res.body().find('\n'), max_part));
    }
    return escape_controls(line);
}

// How one connection attempt ended.
struct Attempt {
    std::string what;        // why it ended, for the stderr line
    bool connected = false;  // the handshake succeeded (the backoff starts over)
    bool give_up = false;    // refused in a way the same request would meet again
};

Attempt connect_and_stream(boost::asio::io_context& io, const Options& o, const std::string& token, bool colour,
                           tail::Position& position) {
    websocket::stream<tcp::socket> ws(io);
    // Copied into the stream. It replaces Beast's default decorator, so it names the client itself;
    // --header lines replace a header of the same name (User-Agent too), and the token goes last.
    ws.set_option(websocket::stream_base::decorator([headers = o.headers, token](websocket::request_type& req) {
        req.set(http::field::user_agent, "crudcast-tail/" CRUDCAST_VERSION);
        for (const auto& [name, value] : headers) req.erase(name);
        for (const auto& [name, value] : headers) req.insert(name, value);
        if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    }));
    try {
        tcp::resolver resolver(io);
        boost::asio::connect(ws.next_layer(), resolver.resolve(o.host, o.port));
        // Without keep-alive a peer that vanishes (no FIN, e.g. a killed VM) would leave the
        // read blocked forever instead of reconnecting.
        ws.next_layer().set_option(boost::asio::socket_base::keep_alive(true));
        websocket::response_type res;
        boost::system::error_code ec;
        ws.handshake(res, o.host.find(':') == std::string::npos ? o.host + ":" + o.port : "[" + o.host + "]:" + o.port,
                     position.target(o.target), ec);
        if (ec == websocket::error::upgrade_declined) {
            const unsigned status = res.result_int();
            // 4xx is about this request (its token, topics or path): asking again cannot help. A
            // timeout (408) or rate limit (429) can pass, and so can a 5xx such as an auth
            // endpoint that is down (503).
            const bool final = status >= 400 && status < 500 && status != 408 && status != 429;
            return {o.url + " refused the subscription: " + refusal(res), false, final};
        }
        if (ec) throw boost::system::system_error(ec);
    } catch (const boost::system::system_error& e) {
        return {"cannot connect to " + o.url + " (" + e.code().message() + ")", false, false};
    }
    if (const auto after = position.after())
        std::fprintf(stderr, "crudcast tail: connected to %s, resuming after %llu\n", o.url.c_str(),
                     static_cast<unsigned long long>(*after));
    else std::fprintf(stderr, "crudcast tail: connected to %s\n", o.url.c_str());
    std::fflush(stderr);
    return {"connection to " + o.url + " " + stream_events(ws, o, colour, position), true, false};
}

}  // namespace

std::string format_event(std::string_view frame, bool colour) {
    rapidjson::Document doc;
    doc.Parse(frame.data(), frame.size());
    if (doc.HasParseError() || !doc.IsObject()) return escape_controls(frame);
    auto text = [&](const char* name) {
        auto it = doc.FindMember(name);
        return it != doc.MemberEnd() && it->value.IsString()
                   ? escape_controls({it->value.GetString(), it->value.GetStringLength()})
                   : std::string("?");
    };
    char time_text[32] = "--:--:--.---";
    if (auto ts = doc.FindMember("ts"); ts != doc.MemberEnd() && ts->value.IsInt64()) {
        const std::int64_t ms = ts->value.GetInt64();
        const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
        std::tm local{};
        if (::localtime_r(&seconds, &local))
            std::snprintf(time_text, sizeof time_text, "%02d:%02d:%02d.%03d", local.tm_hour, local.tm_min, local.tm_sec,
                          static_cast<int>(ms % 1000));
    }
    const std::string model = text("model"), method = text("method");
    std::string line;
    line += colour ? "\033[2m" + std::string(time_text) + "\033[0m" : std::string(time_text);
    line += ' ';
    line += colour ? "\033[1m" + model + "\033[0m" : model;
    line += ' ';
    line += colour ? method_colour(method) + method + "\033[0m" : method;
    // A bulk write (many:true) has no single id; the line then goes straight to the payload.
    if (auto id = doc.FindMember("id"); id != doc.MemberEnd() && !id->value.IsNull())
        line += " id=" + escape_controls(id->value.IsString()
                                             ? std::string_view(id->value.GetString(), id->value.GetStringLength())
                                             : compact(id->value));
    // A DELETE's payload is null: nothing worth printing.
    if (auto payload = doc.FindMember("payload"); payload != doc.MemberEnd() && !payload->value.IsNull())
        line += ' ' + escape_controls(compact(payload->value));
    return line;
}

int run_tail(const std::vector<std::string>& args) {
    if (std::find(args.begin(), args.end(), "--help") != args.end() ||
        std::find(args.begin(), args.end(), "-h") != args.end()) {
        std::fwrite(usage.data(), 1, usage.size(), stdout);
        return 0;
    }
    Options o;
    if (const auto problem = tail::parse_args(args, o); !problem.empty()) {
        std::fprintf(stderr, "crudcast tail: %s\n", problem.c_str());
        return 2;
    }
    install_signal_handlers();
    const bool colour = !o.json && ::isatty(STDOUT_FILENO);

    using namespace std::chrono_literals;
    constexpr std::chrono::milliseconds first_delay = 500ms, max_delay = 10s;
    auto delay = first_delay;
    boost::asio::io_context io;
    tail::Position position(o.since);
    for (;;) {
        std::string token;
        // Read for every attempt: a token renewed in the file after a 1008 "token expired" is
        // what the next handshake sends.
        if (!o.token_file.empty())
            if (const auto problem = tail::read_token_file(o.token_file, token); !problem.empty()) {
                std::fprintf(stderr, "crudcast tail: %s\n", problem.c_str());
                return 2;
            }
        const Attempt attempt = connect_and_stream(io, o, token, colour, position);
        if (attempt.give_up) {
            std::fprintf(stderr, "crudcast tail: %s\n", attempt.what.c_str());
            return 1;
        }
        if (attempt.connected) delay = first_delay;  // a connection that worked resets the backoff
        std::fprintf(stderr, "crudcast tail: %s; retrying in %.1fs\n", attempt.what.c_str(), delay.count() / 1000.0);
        std::fflush(stderr);
        std::this_thread::sleep_for(delay);
        delay = std::min(delay * 2, max_delay);
    }
}

}  // namespace crudcast::gateway
