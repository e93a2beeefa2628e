// broker.hpp: what a broker-backed bus (NATS JetStream, Redis Streams) needs from its broker
// client. The client owns the connection and its threads; the bus (bus/broker_bus.hpp) numbers
// nothing itself: the broker's append order is the one order every crudcast instance delivers.
//
// A stream holds one entry per event: the event's model and its JSON text without the seq (the
// numbered text is built by each reader, event.hpp's number_event). An entry's seq is
// `offset + the broker's position of it`, where the offset is fixed when the stream is created
// (its creation time in microseconds), so a seq never repeats, also when the stream is deleted
// and created again, and stays below 2^53 (JavaScript reads it exactly).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace crudcast::bus {

struct BrokerOptions {
    // nats://[user[:password]@]host:port (tls://host:port for TLS) or redis://[[user]:password@]host:port[/db].
    std::string url;
    // Names the deployment's stream (NATS: stream `<PREFIX>` upper-cased, subjects `<prefix>.<model>`;
    // Redis: keys `<prefix>:events`, `<prefix>:seq`, ...), so several deployments share one broker.
    std::string prefix = "crudcast";
    std::string password;          // overrides a password in the URL (from bus-password-file)
    std::string token;             // NATS token authentication (bus-token-file)
    std::string credentials_file;  // NATS .creds file (user JWT + nkey seed)
    std::string tls_ca_file;       // NATS only: hiredis 0.14 has no TLS
    std::string tls_cert_file;
    std::string tls_key_file;
    // The stream's retention: the history every instance resumes subscribers from.
    std::size_t history_events = 10'000;
    std::size_t history_bytes = 32 * 1024 * 1024;  // NATS MaxBytes; Redis bounds entries only
    // How long one append or one broker request may take before it counts as failed.
    std::chrono::milliseconds timeout{250};
    // Reconnect backoff: doubles from min to max between attempts.
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{5'000};
};

// The stream as a client found it when it (re)connected.
struct StreamInfo {
    std::uint64_t offset = 0;  // seq = offset + broker position; fixed for the stream's life
    std::uint64_t first = 0;   // seq of the oldest retained entry; 0 when the stream is empty
    std::uint64_t last = 0;    // seq of the newest entry; offset when the stream is empty
};

// What a client reports. Called on the client's threads, never two calls at once, in this order
// per connection: on_connected, then on_entry for every entry after the one the reader last got
// (from the first retained one on the first connection, or when the stream is new), then on_down.
class BrokerListener {
public:
    virtual ~BrokerListener() = default;
    virtual void on_connected(const StreamInfo& info) = 0;
    // One entry, in stream order, each seq once (a seq lower than one already given is never given).
    virtual void on_entry(std::uint64_t seq, std::string_view model, std::string_view event) = 0;
    // The connection or the stream's reading broke; the client reconnects with backoff by itself.
    // `why` is for one log line: it never holds a password or token.
    virtual void on_down(std::string_view why) = 0;
};

class BrokerClient {
public:
    virtual ~BrokerClient() = default;
    // Starts the client's threads and connects (returns at once). The reader starts after seq `after`
    // (0: from the oldest retained entry) and, after a reconnect, after the last entry it gave.
    virtual void start(BrokerListener& listener, std::uint64_t after) = 0;
    // Appends one event. `done` runs once, on a client thread, with the entry's seq, or with nullopt
    // and why (no password or token in it) when it could not be appended within options.timeout;
    // while disconnected at once. Never blocks the caller. Thread-safe.
    using AppendDone = std::function<void(std::optional<std::uint64_t> seq, std::string_view error)>;
    virtual void append(std::string_view model, std::string event, AppendDone done) = 0;
    // Stops and joins the client's threads; pending appends get done(nullopt, "stopping"); no
    // callback runs after it returns.
    virtual void stop() = 0;
    // "nats" or "redis", for logs and metrics.
    virtual std::string_view kind() const = 0;
};

// nats://, tls:// -> NATS JetStream; redis:// -> Redis Streams. Throws std::invalid_argument naming
// the problem for any other scheme.
std::unique_ptr<BrokerClient> make_broker_client(const BrokerOptions& options);
std::unique_ptr<BrokerClient> make_nats_client(const BrokerOptions& options);
std::unique_ptr<BrokerClient> make_redis_client(const BrokerOptions& options);

}  // namespace crudcast::bus
