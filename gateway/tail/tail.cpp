// tail.cpp: `crudcast tail [ws://host:port/path] [--topic a,b] [--json]` (see tail.hpp). A plain
// blocking Beast WebSocket client: one connection at a time, so synchronous calls are the simplest
// correct shape; signals end the process directly (see install_signal_handlers).
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

#include "common/url.hpp"

namespace crudcast::gateway {
namespace {

namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;

constexpr std::string_view usage =
    "usage: crudcast tail [ws://HOST:PORT/PATH] [--topic MODEL[,MODEL...]]... [--json]\n"
    "\n"
    "Subscribes to a crudcast event WebSocket and prints one line per event:\n"
    "  12:03:04.123 author POST id=42 {\"id\":42,\"name\":\"Ada\"}\n"
    "\n"
    "  URL            default ws://127.0.0.1:8080/ws (the local crudcast)\n"
    "  --topic MODEL  only these models; repeatable or comma-separated\n"
    "  --json         print each event's JSON as received (terminal controls escaped as \\u00XX)\n"
    "  -h, --help     this text\n"
    "\n"
    "Reconnects with backoff (0.5s doubling to 10s) when the connection drops or cannot be made.\n";

struct Options {
    std::string host, port, target;  // target: path + query sent in the handshake
    std::string url;                 // for messages, with the topic query
    bool json = false;
};

// Fills `o` from the arguments; returns the problem as one line, or "" when they are fine.
std::string parse_args(const std::vector<std::string>& args, Options& o) {
    std::string address;
    std::vector<std::string> topics;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        std::string value;
        if (a == "--json") {
            o.json = true;
            continue;
        } else if (a == "--topic") {
            if (i + 1 == args.size()) return "--topic needs a value";
            value = args[++i];
        } else if (a.starts_with("--topic=")) {
            value = a.substr(8);
        } else if (a.starts_with("-")) {
            return "unknown option " + a + " (see crudcast tail --help)";
        } else if (address.empty()) {
            address = a;
            continue;
        } else {
            return "unexpected argument " + a + " (one URL only)";
        }
        for (std::size_t start = 0; start <= value.size();) {
            const auto comma = std::min(value.find(',', start), value.size());
            std::string topic = value.substr(start, comma - start);
            if (topic.empty()) return "--topic needs model names, got \"" + value + "\"";
            topics.push_back(std::move(topic));
            start = comma + 1;
        }
    }
    if (address.empty()) address = "ws://127.0.0.1:8080/ws";
    if (!address.starts_with("ws://")) return "URL must start with ws:// (wss is not supported): " + address;
    const auto parts = url::parse_url(address);
    if (!parts) return "bad URL " + address + " (expected ws://HOST[:PORT][/PATH])";
    if (parts->has_userinfo) return "bad host in URL " + address + " (user credentials are not supported)";
    if (parts->has_fragment) return "bad URL " + address + " (a #fragment has no meaning here)";
    const std::string port = parts->port.value_or("80");
    if (parts->host.empty() || port.empty() || port.size() > 5 || std::stoul(port) == 0 || std::stoul(port) > 65535)
        return "bad host or port in URL " + address;
    o.host = parts->host;
    o.port = port;
    o.target = parts->target;
    if (o.target.empty() || o.target.front() == '?') o.target.insert(0, "/");
    if (!topics.empty()) {
        // Escaped to unreserved characters, so a model name can never change the meaning of the URL.
        std::string query = "topic=";
        for (std::size_t i = 0; i < topics.size(); ++i) query += (i ? "," : "") + url::encode_query_value(topics[i]);
        o.target += (o.target.find('?') == std::string::npos ? "?" : "&") + query;
    }
    o.url = "ws://" + parts->authority + o.target;
    return {};
}

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

// Reads frames until the connection ends; returns why it ended.
std::string stream_events(websocket::stream<tcp::socket>& ws, const Options& o, bool colour) {
    boost::beast::flat_buffer buffer;
    for (;;) {
        boost::system::error_code ec;
        ws.read(buffer, ec);
        if (ec) return ec.message();
        std::string line = o.json ? escape_controls(boost::beast::buffers_to_string(buffer.data()))
                                  : format_event(boost::beast::buffers_to_string(buffer.data()), colour);
        buffer.consume(buffer.size());
        line += '\n';
        // Flushed line by line: a pipe into grep or jq must see each event as it happens.
        std::fwrite(line.data(), 1, line.size(), stdout);
        std::fflush(stdout);
    }
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
    if (const auto problem = parse_args(args, o); !problem.empty()) {
        std::fprintf(stderr, "crudcast tail: %s\n", problem.c_str());
        return 2;
    }
    install_signal_handlers();
    const bool colour = !o.json && ::isatty(STDOUT_FILENO);

    using namespace std::chrono_literals;
    constexpr std::chrono::milliseconds first_delay = 500ms, max_delay = 10s;
    auto delay = first_delay;
    boost::asio::io_context io;
    for (;;) {
        std::string what;
        websocket::stream<tcp::socket> ws(io);
        try {
            tcp::resolver resolver(io);
            boost::asio::connect(ws.next_layer(), resolver.resolve(o.host, o.port));
            // Without keep-alive a peer that vanishes (no FIN, e.g. a killed VM) would leave the
            // read blocked forever instead of reconnecting.
            ws.next_layer().set_option(boost::asio::socket_base::keep_alive(true));
            ws.handshake(o.host.find(':') == std::string::npos ? o.host + ":" + o.port : "[" + o.host + "]:" + o.port,
                         o.target);
            std::fprintf(stderr, "crudcast tail: connected to %s\n", o.url.c_str());
            std::fflush(stderr);
            delay = first_delay;  // a connection that worked resets the backoff
            what = "connection to " + o.url + " lost (" + stream_events(ws, o, colour) + ")";
        } catch (const boost::system::system_error& e) {
            what = "cannot connect to " + o.url + " (" + e.code().message() + ")";
        }
        std::fprintf(stderr, "crudcast tail: %s; retrying in %.1fs\n", what.c_str(), delay.count() / 1000.0);
        std::fflush(stderr);
        std::this_thread::sleep_for(delay);
        delay = std::min(delay * 2, max_delay);
    }
}

}  // namespace crudcast::gateway
