// hostile_rows.hpp: what the hostile tables (tests/hostile_test.cpp, tests/hostile_rows_*.cpp) share:
// a crudcast with its admin listener in front of a RawUpstream, the access records it kept (the
// admin API's recent requests: one per access line), and ways to deliver bytes over a raw socket.
#pragma once

#include <rapidjson/document.h>

#include <string>
#include <thread>
#include <vector>

#include "tests/testkit.hpp"

namespace crudcast::hostile {

using namespace testkit;
using namespace std::chrono_literals;

// One access record: what the access line said about a request.
struct AccessRecord {
    std::string method, path, error;
    unsigned status = 0;
};

// The access records of the gateway behind `admin_port`, oldest first.
inline std::vector<AccessRecord> access_records(std::uint16_t admin_port) {
    const auto body = exchange(admin_port, admin_request("/api/requests")).body;
    rapidjson::Document doc;
    doc.Parse(body.c_str(), body.size());
    std::vector<AccessRecord> out;
    if (!doc.IsObject() || !doc.HasMember("requests")) return out;
    for (const auto& r : doc["requests"].GetArray())
        out.insert(out.begin(),
                   {r["method"].GetString(), r["path"].GetString(), r["error"].GetString(), r["status"].GetUint()});
    return out;
}

// The statuses of the records not made by `sentinel`.
inline std::vector<unsigned> statuses_except(const std::vector<AccessRecord>& records, std::string_view sentinel) {
    std::vector<unsigned> out;
    for (const auto& r : records)
        if (r.path != sentinel) out.push_back(r.status);
    return out;
}

// How a row's bytes go out: in one write, one byte per write, in three writes 50 ms apart, or one
// byte every 50 ms (a slow-header client).
enum class Delivery { at_once, byte_by_byte, three_parts, trickle };
// What the client does once its bytes are out.
enum class Then { stay, half_close, close, reset };

inline const char* to_string(Delivery d) {
    switch (d) {
        case Delivery::at_once: return "at once";
        case Delivery::byte_by_byte: return "byte by byte";
        case Delivery::three_parts: return "three writes 50 ms apart";
        case Delivery::trickle: return "one byte every 50 ms";
    }
    return "?";
}

// Sends `bytes` as `how` says; false once a write fails (crudcast closed the connection: fine for
// a refused request, whose answer is already on its way).
inline bool deliver(Socket& socket, std::string_view bytes, Delivery how) {
    switch (how) {
        case Delivery::at_once: return socket.send_all(bytes);
        case Delivery::byte_by_byte:
            for (std::size_t i = 0; i < bytes.size(); ++i)
                if (!socket.send_all(bytes.substr(i, 1))) return false;
            return true;
        case Delivery::three_parts: {
            const auto third = bytes.size() / 3;
            for (std::size_t i = 0; i < 3; ++i) {
                if (i > 0) std::this_thread::sleep_for(50ms);  // the pause is the behaviour under test
                if (!socket.send_all(bytes.substr(i * third, i == 2 ? std::string_view::npos : third))) return false;
            }
            return true;
        }
        case Delivery::trickle:
            for (std::size_t i = 0; i < bytes.size(); ++i) {
                if (i > 0) std::this_thread::sleep_for(50ms);  // the slowness is the behaviour under test
                if (!socket.send_all(bytes.substr(i, 1))) return false;
            }
            return true;
    }
    return false;
}

// A crudcast (one worker thread, so one upstream pool; the admin listener on for the access
// records) in front of a RawUpstream.
struct Stack {
    explicit Stack(RawUpstream::Handler handler, const std::function<void(config::Config&)>& tweak = {},
                   std::optional<std::uint16_t> upstream_port = std::nullopt)
        : upstream(std::move(handler)) {
        auto cfg = test_config(upstream_port.value_or(upstream.port()));
        cfg.threads = 1;
        cfg.admin_listen = config::Endpoint{"127.0.0.1", 0};
        if (tweak) tweak(cfg);
        gateway = start_gateway(std::move(cfg));
    }
    std::uint16_t port() const { return gateway->port(); }
    // Waits (bounded) until the access records, apart from those of `except` (when given), number at
    // least `n`.
    std::vector<AccessRecord> records_when(std::size_t n, std::optional<std::string_view> except) const {
        const auto deadline = std::chrono::steady_clock::now() + default_timeout;
        for (;;) {
            auto records = access_records(gateway->admin_port());
            const auto counted = except ? statuses_except(records, *except).size() : records.size();
            if (counted >= n || std::chrono::steady_clock::now() > deadline) return records;
            std::this_thread::sleep_for(20ms);  // a polling interval: records are written after the answer
        }
    }

    RawUpstream upstream;
    std::unique_ptr<gateway::Gateway> gateway;  // declared last: stopped before the upstream
};

}  // namespace crudcast::hostile
