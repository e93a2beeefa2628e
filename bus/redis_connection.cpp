// redis_connection.cpp: the Redis client's thread-free parts: the bus URL, connecting with AUTH and
// SELECT, the numbering script and the strict reading of entry ids. See redis_broker.hpp.
#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <charconv>
#include <stdexcept>
#include <vector>

#include "bus/redis_broker.hpp"

namespace crudcast::bus::redis {

namespace {

// Lua 5.1 numbers are doubles: every seq is below 2^53, so it is exact, but tostring() would print
// 1.7e+15; '%.0f' prints every digit. The seq goes back as a string for the same reason.
//
// When the counter is absent (a new deployment, FLUSHALL, a restarted server without persistence,
// or the counter deleted alone) it starts at the server time in microseconds, or above the stream's
// newest id if that is higher: a seq never repeats. If XADD still refuses the id (an entry at or
// above the counter added by hand), numbering continues above the stream's newest id.
//
// MAXLEN '=' (exact): the retention is exactly --history-size on every bus, as on the memory bus,
// so resume and gap reasoning do not depend on the bus; the cost is trimming one entry per append,
// which redis-benchmark put at 240-360k XADD/s against 300-390k for '~' (300-byte entries, 10,000
// kept, a loaded 2-core machine): far above the rate one script call per event can reach.
constexpr std::string_view script_text = R"lua(
local stream, counter_key, offset_key = KEYS[1], KEYS[2], KEYS[3]
local function fmt(n) return string.format('%.0f', n) end
local function stream_top()
  if redis.call('EXISTS', stream) == 0 then return 0 end
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return tonumber(string.match(info[i + 1], '^(%d+)')) or 0
    end
  end
  return 0
end
local function ensure()
  local counter = redis.call('GET', counter_key)
  if counter then
    if not redis.call('GET', offset_key) then redis.call('SET', offset_key, counter) end
    return
  end
  local now = redis.call('TIME')
  local base = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local top = stream_top()
  if top > base then base = top end
  redis.call('SET', counter_key, fmt(base))
  redis.call('SET', offset_key, fmt(base))
end
local function edge(order)
  local entries = redis.call(order, stream, order == 'XRANGE' and '-' or '+',
                             order == 'XRANGE' and '+' or '-', 'COUNT', 1)
  if #entries == 0 then return '' end
  return entries[1][1]
end
ensure()
if ARGV[1] == 'info' then
  -- ARGV[2]: the last seq this reader gave. A stream created again while the server's clock was
  -- set back would number below it, and the reader would pass over those entries: number above.
  if tonumber(ARGV[2]) > tonumber(redis.call('GET', counter_key)) then
    redis.call('SET', counter_key, ARGV[2])
  end
  return {redis.call('GET', offset_key), edge('XRANGE'), edge('XREVRANGE')}
end
local seq = redis.call('INCR', counter_key)
local function add(n)
  return redis.pcall('XADD', stream, 'MAXLEN', '=', ARGV[2], fmt(n) .. '-0', 'm', ARGV[3], 'e', ARGV[4])
end
local added = add(seq)
if type(added) == 'table' and added.err then
  local top = stream_top()
  if top < seq then
    redis.call('SET', counter_key, fmt(seq - 1))
    return added
  end
  seq = top + 1
  redis.call('SET', counter_key, fmt(seq))
  added = add(seq)
  if type(added) == 'table' and added.err then return added end
end
return fmt(seq)
)lua";

constexpr std::uint64_t max_seq = std::uint64_t{1} << 53;

std::optional<std::uint64_t> parse_digits(std::string_view text) {
    // from_chars takes no sign, space or prefix; the whole text must be consumed.
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::optional<int> parse_small(std::string_view text, int max) {
    auto value = parse_digits(text);
    if (!value || *value > static_cast<std::uint64_t>(max)) return std::nullopt;
    return static_cast<int>(*value);
}

timeval to_timeval(std::chrono::milliseconds ms) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
    return tv;
}

// A reply that should be +OK; `why` gets the server's error text otherwise.
bool ok_reply(const ReplyPtr& reply, std::string_view what, std::string& why) {
    if (!reply) return false;
    if (reply->type == REDIS_REPLY_ERROR) {
        why = std::string("redis: ") + std::string(what) + " refused: " + std::string(reply->str, reply->len);
        return false;
    }
    return true;
}

std::string reply_text(const redisReply* reply) {
    if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS) return {reply->str, reply->len};
    return {};
}

}  // namespace

void ContextFree::operator()(redisContext* context) const { redisFree(context); }
void ReplyFree::operator()(redisReply* reply) const { freeReplyObject(reply); }

Endpoint parse_endpoint(const BrokerOptions& options) {
    // hiredis 0.14.1 (Debian 12) has no TLS support; a TLS option with redis:// is a mistake, not a
    // request to send credentials in clear, so it is refused.
    if (!options.tls_ca_file.empty() || !options.tls_cert_file.empty() || !options.tls_key_file.empty())
        throw std::invalid_argument("redis:// has no TLS (hiredis 0.14); drop the bus TLS options or use NATS");
    auto parsed = boost::urls::parse_uri(options.url);
    if (!parsed || parsed->scheme() != "redis" || !parsed->has_authority())
        throw std::invalid_argument("is not redis://[[user]:password@]host:port[/db]");
    const auto& url = *parsed;
    Endpoint endpoint;
    endpoint.host = url.host_address();
    if (endpoint.host.empty()) throw std::invalid_argument("redis:// URL has no host");
    if (url.has_port()) {
        auto port = parse_small(url.port(), 65535);
        if (!port || *port == 0) throw std::invalid_argument("redis:// URL has a bad port");
        endpoint.port = *port;
    }
    if (url.has_userinfo()) {
        endpoint.user = url.user();
        if (url.has_password()) endpoint.password = url.password();
    }
    if (!options.password.empty()) endpoint.password = options.password;
    if (!endpoint.user.empty() && endpoint.password.empty())
        throw std::invalid_argument("redis:// URL names a user but no password");
    std::string_view path = url.encoded_path();
    if (!path.empty() && path != "/") {
        auto db = parse_small(path.substr(1), 1'000'000);
        if (path.front() != '/' || !db) throw std::invalid_argument("redis:// URL path is not /<database number>");
        endpoint.db = *db;
    }
    if (url.has_query() || url.has_fragment()) throw std::invalid_argument("redis:// URL takes no query or fragment");
    return endpoint;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_entry_id(std::string_view id) {
    auto dash = id.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    auto ms = parse_digits(id.substr(0, dash));
    auto sub = parse_digits(id.substr(dash + 1));
    if (!ms || !sub) return std::nullopt;
    return std::pair{*ms, *sub};
}

std::optional<std::uint64_t> entry_seq(std::string_view id) {
    auto parts = parse_entry_id(id);
    if (!parts || parts->second != 0 || parts->first == 0 || parts->first >= max_seq) return std::nullopt;
    return parts->first;
}

ContextPtr connect(const Endpoint& endpoint, std::chrono::milliseconds connect_timeout,
                   std::chrono::milliseconds io_timeout, std::string& why) {
    ContextPtr context(redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, to_timeval(connect_timeout)));
    if (!context || context->err) {
        why = context ? std::string("redis: connect: ") + context->errstr : "redis: connect: out of memory";
        return nullptr;
    }
    if (redisSetTimeout(context.get(), to_timeval(io_timeout)) != REDIS_OK) {
        why = "redis: cannot set the socket timeout";
        return nullptr;
    }
    if (!endpoint.password.empty()) {
        auto reply = endpoint.user.empty() ? command(context.get(), {"AUTH", endpoint.password}, why)
                                           : command(context.get(), {"AUTH", endpoint.user, endpoint.password}, why);
        if (!ok_reply(reply, "AUTH", why)) return nullptr;
    }
    if (endpoint.db != 0) {
        auto reply = command(context.get(), {"SELECT", std::to_string(endpoint.db)}, why);
        if (!ok_reply(reply, "SELECT", why)) return nullptr;
    }
    return context;
}

ReplyPtr command(redisContext* context, std::initializer_list<std::string_view> args, std::string& why) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (auto arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
    }
    ReplyPtr reply(static_cast<redisReply*>(
        redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data())));
    if (!reply) why = std::string("redis: ") + (context->err ? context->errstr : "no reply");
    return reply;
}

std::string_view numbering_script() { return script_text; }

Keys keys_for(std::string_view prefix) {
    std::string p(prefix);
    return {p + ":events", p + ":seq", p + ":offset"};
}

std::optional<StreamInfo> read_stream_info(redisContext* context, const Keys& keys, std::uint64_t floor,
                                           std::string& why) {
    auto reply = command(
        context,
        {"EVAL", numbering_script(), "3", keys.stream, keys.counter, keys.offset, "info", std::to_string(floor)}, why);
    if (!reply) return std::nullopt;
    if (reply->type == REDIS_REPLY_ERROR) {
        why = "redis: reading the stream: " + std::string(reply->str, reply->len);
        return std::nullopt;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        why = "redis: reading the stream: unexpected reply";
        return std::nullopt;
    }
    StreamInfo info;
    auto offset = parse_digits(reply_text(reply->element[0]));
    if (!offset || *offset >= max_seq) {
        why = "redis: the stream's offset is not a number below 2^53";
        return std::nullopt;
    }
    info.offset = *offset;
    auto first = parse_entry_id(reply_text(reply->element[1]));
    auto last = parse_entry_id(reply_text(reply->element[2]));
    info.first = first ? first->first : 0;
    info.last = last ? last->first : info.offset;
    return info;
}

}  // namespace crudcast::bus::redis
