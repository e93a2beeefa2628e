// redis_broker.hpp: the pieces of the Redis Streams broker client (make_redis_client in
// bus/broker.hpp) that hold no thread: reading the bus URL, connecting (AUTH, SELECT), the one Lua
// script that numbers and appends, and the strict reading of stream entry ids. Kept apart from the
// client's threads (redis_broker.cpp) so they can be tested table-driven.
//
// Keys, for a prefix P: `P:events` (the stream, entry ids `<seq>-0`, fields `m` model and `e` the
// event text without its seq), `P:seq` (the last seq given) and `P:offset` (the stream's offset:
// the server time in microseconds when the counter was created).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "bus/broker.hpp"

struct redisContext;
struct redisReply;

namespace crudcast::bus::redis {

// redis://[[user]:password@]host:port[/db], read once at construction.
struct Endpoint {
    std::string host;
    int port = 6379;
    std::string user;      // "" : AUTH with the password alone (the `default` user)
    std::string password;  // "" : no AUTH
    int db = 0;
};

// Throws std::invalid_argument naming the problem (never quoting the password). options.password
// overrides the URL's; TLS options are refused: hiredis 0.14 speaks plain TCP only.
Endpoint parse_endpoint(const BrokerOptions& options);

// "<n>-<m>" with decimal digits only and no overflow; nullopt for anything else.
std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_entry_id(std::string_view id);

// The seq of one of crudcast's entries: an id `<seq>-0` with 0 < seq < 2^53; nullopt otherwise.
std::optional<std::uint64_t> entry_seq(std::string_view id);

struct ContextFree {
    void operator()(redisContext* context) const;
};
struct ReplyFree {
    void operator()(redisReply* reply) const;
};
using ContextPtr = std::unique_ptr<redisContext, ContextFree>;
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

// Connects within `connect_timeout`, sets `io_timeout` on every later read and write, sends AUTH
// and SELECT. nullptr and `why` (for a log line: no password) when any of it fails.
ContextPtr connect(const Endpoint& endpoint, std::chrono::milliseconds connect_timeout,
                   std::chrono::milliseconds io_timeout, std::string& why);

// One command, arguments binary-safe. nullptr when the connection broke (why: its error).
ReplyPtr command(redisContext* context, std::initializer_list<std::string_view> args, std::string& why);

// The Lua script that numbers and appends (ARGV: "append", maxlen, model, event; returns the seq as
// a decimal string) or describes the stream (ARGV: "info", floor; returns {offset, first id, last id}).
// KEYS: the stream, the counter, the offset.
std::string_view numbering_script();

struct Keys {
    std::string stream, counter, offset;
};
Keys keys_for(std::string_view prefix);

// Runs the script in "info" mode: the stream as it is now (the counter is created if absent, so
// the offset is fixed from the first connection on, and raised to `floor`, the last seq the reader
// gave, so that nothing is numbered below what a reader already passed). nullopt and why on failure.
std::optional<StreamInfo> read_stream_info(redisContext* context, const Keys& keys, std::uint64_t floor,
                                           std::string& why);

}  // namespace crudcast::bus::redis
