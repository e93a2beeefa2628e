// nats_broker_link.hpp: one connection of the NATS JetStream client (bus/nats_broker.cpp) and what is
// done on it: the connect options from BrokerOptions, making sure the deployment's stream exists
// with the configured retention, and publishing appends. Only nats_broker.cpp includes it.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "bus/broker.hpp"

namespace crudcast::bus::nats {

// BrokerOptions resolved once, at start-up: the URL without its credentials, which are passed to
// libnats as options so that a password overrides the URL's and never sits in a URL a message
// could quote.
struct Settings {
    std::string url;  // nats://host[:port]
    std::string user;
    std::string password;
    std::string token;
    std::string credentials_file;
    std::string tls_ca_file;
    std::string tls_cert_file;
    std::string tls_key_file;
    bool secure = false;         // tls:// or a CA file
    std::string stream;          // nats::stream_name(prefix)
    std::string subject_prefix;  // "<prefix>."
    std::int64_t max_msgs = 1;
    std::int64_t max_bytes = -1;
    std::int64_t append_ms = 250;    // options.timeout
    std::int64_t request_ms = 1000;  // stream management: at least 1 s (a file store may be slow to create one)
    std::int64_t connect_ms = 2000;  // bounds how long stop() can wait for a connect attempt
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{5'000};
};

// Throws std::invalid_argument naming the problem (bad URL, a prefix no subject can start with).
Settings resolve(const BrokerOptions& options);

// A connected client and its JetStream context; destroying it closes the connection. Shared by the
// session thread and the appender, so the last one using it frees it.
struct Link {
    natsConnection* connection = nullptr;
    jsCtx* js = nullptr;
    std::uint64_t offset = 0;
    // The highest stream sequence this link has seen (read or acknowledged). An acknowledgement
    // at or below what was seen when its append was sent comes from a stream created again under
    // the same name, which the reader has not noticed yet: that sequence would repeat a seq.
    std::atomic<std::uint64_t> high{0};
    // Set when an append's answer suggests the stream is gone or new: the reader looks at once.
    std::atomic<bool> suspect{false};

    Link();
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;
    ~Link();

    // Publishes without waiting for the acknowledgement: `done` runs on a libnats thread with it (or
    // the error, at the latest after `max_wait_ms`), or here when the library refuses the message.
    void append(const Settings& settings, const std::string& subject, std::string_view event, std::int64_t max_wait_ms,
                BrokerClient::AppendDone done);
    // Answers every append still waiting with `why` (the connection is closed or closing).
    void fail_appends(std::string_view why);

    // The key libnats' acknowledgement handler finds this link by (never a pointer: a late
    // acknowledgement for a link already gone finds nothing).
    const std::uintptr_t id;
};

// "nats: <what>: <libnats status text>" plus the JetStream error code when there is one. Never the
// library's last-error text, which can quote a URL or the server's words.
std::string failure(std::string_view what, natsStatus status, jsErrCode code = static_cast<jsErrCode>(0));

// Connects with reconnects off (the client's session loop reconnects, with its own backoff); sets
// `why` and returns null on failure.
std::shared_ptr<Link> connect(const Settings& settings, std::string& why);

// Makes sure the stream exists with the configured retention (creates it, or updates a differing
// retention) and returns what the client reports in on_connected.
std::optional<StreamInfo> ensure_stream(Link& link, const Settings& settings, std::string& why);

// Why the link's stream is no longer the one it read (deleted, or created again), or nullopt while it
// is. A request that fails for another reason is no answer: the connection's own checks catch a dead one.
std::optional<std::string> stream_changed(Link& link, const Settings& settings);

}  // namespace crudcast::bus::nats
