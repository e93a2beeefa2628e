// redis_broker.cpp: the Redis Streams broker client (bus/broker.hpp). Two threads, each with its own
// connection: the writer numbers and appends events (the script in redis_connection.cpp), pipelining
// whatever is queued into one round trip; the reader follows the stream with XREAD and reports
// entries, connections and losses to the listener. Blocking hiredis calls on plain threads keep the
// code short; the price is that stop() waits for the reader's current XREAD (at most read_block).
#include <hiredis/hiredis.h>

#include <bit>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "bus/redis_broker.hpp"
#include "common/log.hpp"

namespace crudcast::bus {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How long one XREAD waits for new entries: what stop() may wait for the reader.
constexpr auto read_block = 200ms;
constexpr std::string_view read_count = "512";
// Appends waiting for the writer; past this append fails at once (memory stays bounded while
// the broker is slow).
constexpr std::size_t max_queued = 10'000;
// A writer idle this long checks its connection (servers may close idle clients: `timeout`).
constexpr auto idle_ping = 15s;
// Appends sent in one round trip.
constexpr std::size_t max_batch = 64;

// hiredis writes with write(2): a write to a connection the server closed would raise SIGPIPE,
// which kills a process that did not ignore it. Blocked on the client's own threads, the write
// fails with EPIPE instead and the connection counts as lost.
void block_sigpipe() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

struct PendingAppend {
    std::string model;
    std::string event;
    BrokerClient::AppendDone done;
    Clock::time_point deadline;
};

// An append failed before it was sent; its text is dropped at once.
struct Refusal {
    BrokerClient::AppendDone done;
    std::string_view why;
};

class RedisClient final : public BrokerClient {
public:
    explicit RedisClient(const BrokerOptions& options)
        : options_(options),
          endpoint_(redis::parse_endpoint(options)),
          keys_(redis::keys_for(options.prefix)),
          maxlen_(std::to_string(std::max<std::size_t>(options.history_events, 1))) {}
    ~RedisClient() override { stop(); }

    void start(BrokerListener& listener, std::uint64_t after) override {
        listener_ = &listener;
        writer_ = std::thread([this] {
            block_sigpipe();
            write_loop();
        });
        reader_ = std::thread([this, after] {
            block_sigpipe();
            read_loop(after);
        });
    }

    void append(std::string_view model, std::string event, AppendDone done) override {
        std::unique_lock lock(mutex_);
        if (stopping_) {
            // The writer may be gone: nothing would run `done` later.
            lock.unlock();
            done(std::nullopt, "stopping");
            return;
        }
        if (!writer_up_) refused_.push_back({std::move(done), "redis: not connected"});
        else if (queue_.size() >= max_queued) refused_.push_back({std::move(done), "redis: append queue full"});
        else queue_.push_back({std::string(model), std::move(event), std::move(done), Clock::now() + options_.timeout});
        wake_.notify_all();
    }

    void stop() override {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
            wake_.notify_all();
        }
        if (writer_.joinable()) writer_.join();
        if (reader_.joinable()) reader_.join();
    }

    std::string_view kind() const override { return "redis"; }

private:
    void write_loop();
    void fail_refused(std::unique_lock<std::mutex>& lock);
    bool run_batch(redisContext* context, std::vector<PendingAppend>& batch, std::string& why);
    void read_loop(std::uint64_t after);
    bool follow(redisContext* context, std::string& cursor, std::uint64_t& last_given, std::string& why);
    void deliver(const redisReply* entry, std::string& cursor, std::uint64_t& last_given);
    // Waits until `until` or stop(); false when stopping.
    bool pause(Clock::time_point until) {
        std::unique_lock lock(mutex_);
        wake_.wait_until(lock, until, [this] { return stopping_; });
        return !stopping_;
    }
    // The bus appends as soon as it hears on_connected: give the writer (connecting beside the
    // reader) up to two timeouts (its connect and its SCRIPT LOAD) to be ready, so that those
    // appends are not refused.
    void wait_for_writer() {
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, options_.timeout * 2, [this] { return stopping_ || writer_up_; });
    }
    std::chrono::milliseconds next_backoff(std::chrono::milliseconds current) const {
        return std::min(current * 2, options_.reconnect_max);
    }

    const BrokerOptions options_;
    const redis::Endpoint endpoint_;
    const redis::Keys keys_;
    const std::string maxlen_;
    std::string sha_;  // the script's SHA1 on the writer's connection (writer thread only)
    BrokerListener* listener_ = nullptr;
    std::thread writer_, reader_;

    std::mutex mutex_;  // guards what follows
    std::condition_variable wake_;
    bool stopping_ = false;
    std::uint64_t passed_over_ = 0;  // the reader thread's: bad entries seen
    bool writer_up_ = false;
    bool drop_writer_ = false;  // set by the reader when it lost the connection
    std::deque<PendingAppend> queue_;
    std::vector<Refusal> refused_;
};

void RedisClient::fail_refused(std::unique_lock<std::mutex>& lock) {
    while (!refused_.empty()) {
        auto refused = std::move(refused_);
        refused_.clear();
        lock.unlock();
        for (auto& r : refused) r.done(std::nullopt, r.why);
        lock.lock();
    }
}

void RedisClient::write_loop() {
    redis::ContextPtr context;
    auto backoff = options_.reconnect_min;
    auto next_attempt = Clock::now();
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        fail_refused(lock);
        if (!context) {
            if (Clock::now() < next_attempt) {
                wake_.wait_until(lock, next_attempt, [this] { return stopping_ || !refused_.empty(); });
                continue;
            }
            lock.unlock();
            std::string why;
            context = redis::connect(endpoint_, options_.timeout, options_.timeout, why);
            if (context) {
                auto reply = redis::command(context.get(), {"SCRIPT", "LOAD", redis::numbering_script()}, why);
                if (reply && reply->type == REDIS_REPLY_STRING) sha_.assign(reply->str, reply->len);
                else context.reset();
            }
            lock.lock();
            writer_up_ = context != nullptr;
            drop_writer_ = false;
            wake_.notify_all();
            backoff = context ? options_.reconnect_min : next_backoff(backoff);
            next_attempt = Clock::now() + backoff;
            continue;
        }
        bool woken = wake_.wait_for(
            lock, idle_ping, [this] { return stopping_ || !queue_.empty() || !refused_.empty() || drop_writer_; });
        if (!woken) {
            // An idle connection a server `timeout` closed would otherwise fail the next append.
            lock.unlock();
            std::string why;
            auto pong = redis::command(context.get(), {"PING"}, why);
            lock.lock();
            if (!pong) drop_writer_ = true;
            continue;
        }
        if (drop_writer_) {
            // The reader lost the server: this connection is most likely dead too, and an append
            // must not be the one to find out.
            drop_writer_ = false;
            context.reset();
            writer_up_ = false;
            next_attempt = Clock::now() + options_.reconnect_min;
            continue;
        }
        if (stopping_ || queue_.empty()) continue;
        std::vector<PendingAppend> batch;
        while (!queue_.empty() && batch.size() < max_batch) {
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
        }
        lock.unlock();
        std::string why;
        bool alive = run_batch(context.get(), batch, why);
        lock.lock();
        if (!alive) {
            // Whatever was queued behind a broken connection fails now rather than after a reconnect.
            context.reset();
            writer_up_ = false;
            for (auto& pending : queue_) refused_.push_back({std::move(pending.done), "redis: not connected"});
            queue_.clear();
            next_attempt = Clock::now() + backoff;
        }
    }
    for (auto& pending : queue_) refused_.push_back({std::move(pending.done), "stopping"});
    queue_.clear();
    fail_refused(lock);
}

// Sends the batch as one pipeline and completes each append from its reply. False when the
// connection broke (every append of the batch not yet answered then fails with `why`).
bool RedisClient::run_batch(redisContext* context, std::vector<PendingAppend>& batch, std::string& why) {
    std::vector<PendingAppend*> sent;
    auto now = Clock::now();
    for (auto& pending : batch) {
        if (now > pending.deadline) {
            pending.done(std::nullopt, "redis: append timed out in the queue");
            continue;
        }
        const char* argv[] = {"EVALSHA",
                              sha_.c_str(),
                              "3",
                              keys_.stream.c_str(),
                              keys_.counter.c_str(),
                              keys_.offset.c_str(),
                              "append",
                              maxlen_.c_str(),
                              pending.model.data(),
                              pending.event.data()};
        const std::size_t lengths[] = {7,
                                       sha_.size(),
                                       1,
                                       keys_.stream.size(),
                                       keys_.counter.size(),
                                       keys_.offset.size(),
                                       6,
                                       maxlen_.size(),
                                       pending.model.size(),
                                       pending.event.size()};
        redisAppendCommandArgv(context, 10, argv, lengths);
        sent.push_back(&pending);
    }
    std::vector<PendingAppend*> unknown_script;
    for (std::size_t i = 0; i < sent.size(); ++i) {
        void* raw = nullptr;
        if (redisGetReply(context, &raw) != REDIS_OK) {
            why = std::string("redis: ") + (context->err ? context->errstr : "no reply");
            for (std::size_t j = i; j < sent.size(); ++j) sent[j]->done(std::nullopt, why);
            for (auto* pending : unknown_script) pending->done(std::nullopt, why);
            return false;
        }
        redis::ReplyPtr reply(static_cast<redisReply*>(raw));
        std::string_view text(reply->str ? reply->str : "", reply->str ? reply->len : 0);
        if (reply->type == REDIS_REPLY_ERROR && text.starts_with("NOSCRIPT")) {
            unknown_script.push_back(sent[i]);
        } else if (reply->type == REDIS_REPLY_STRING) {
            auto seq = redis::entry_seq(std::string(text) + "-0");
            if (seq) sent[i]->done(*seq, "");
            else sent[i]->done(std::nullopt, "redis: append answered with a bad seq");
        } else {
            std::string error = "redis: append refused: " + std::string(text);
            sent[i]->done(std::nullopt, error);
        }
    }
    // The server lost its script cache (SCRIPT FLUSH, a restart between two batches): EVAL sends
    // the text once more and caches it again under the same SHA1.
    for (std::size_t i = 0; i < unknown_script.size(); ++i) {
        auto* pending = unknown_script[i];
        auto reply = redis::command(context,
                                    {"EVAL", redis::numbering_script(), "3", keys_.stream, keys_.counter, keys_.offset,
                                     "append", maxlen_, pending->model, pending->event},
                                    why);
        if (!reply) {
            for (std::size_t j = i; j < unknown_script.size(); ++j) unknown_script[j]->done(std::nullopt, why);
            return false;
        }
        auto seq = reply->type == REDIS_REPLY_STRING ? redis::entry_seq(std::string(reply->str, reply->len) + "-0")
                                                     : std::nullopt;
        if (seq) pending->done(*seq, "");
        else pending->done(std::nullopt, "redis: append refused");
    }
    return true;
}

// Connects, reports, follows the stream until the connection breaks, and again with backoff until
// stop(). on_down once per loss: also when the very first attempt fails, so the bus does not wait
// for a broker that is not there.
void RedisClient::read_loop(std::uint64_t after) {
    std::uint64_t last_given = after;
    std::string cursor = std::to_string(after) + "-0";
    std::optional<std::uint64_t> known_offset;
    bool down_told = false;
    auto backoff = options_.reconnect_min;
    while (pause(Clock::now())) {
        std::string why;
        auto context = redis::connect(endpoint_, options_.timeout, read_block + options_.timeout, why);
        auto info = context ? redis::read_stream_info(context.get(), keys_, last_given, why) : std::nullopt;
        if (!info) {
            if (!down_told) listener_->on_down(why);
            down_told = true;
            if (!pause(Clock::now() + backoff)) return;
            backoff = next_backoff(backoff);
            continue;
        }
        if (known_offset && *known_offset != info->offset)
            log::write(log::LogLevel::info, "redis: the stream was created again",
                       {{"old_offset", *known_offset}, {"offset", info->offset}});
        known_offset = info->offset;
        down_told = false;
        backoff = options_.reconnect_min;
        wait_for_writer();
        listener_->on_connected(*info);
        if (follow(context.get(), cursor, last_given, why)) return;  // stopping
        {
            std::lock_guard lock(mutex_);
            drop_writer_ = true;
            writer_up_ = false;  // appends fail at once from now on
            wake_.notify_all();
        }
        listener_->on_down(why);
        down_told = true;
    }
}

// XREAD after `cursor` until the connection breaks (false, why) or stop() (true).
bool RedisClient::follow(redisContext* context, std::string& cursor, std::uint64_t& last_given, std::string& why) {
    const auto block = std::to_string(read_block.count());
    for (;;) {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return true;
        }
        auto reply = redis::command(
            context, {"XREAD", "COUNT", read_count, "BLOCK", block, "STREAMS", keys_.stream, cursor}, why);
        if (!reply) return false;
        if (reply->type == REDIS_REPLY_NIL) continue;  // nothing new within read_block
        if (reply->type == REDIS_REPLY_ERROR) {
            why = "redis: XREAD refused: " + std::string(reply->str, reply->len);
            return false;
        }
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 || reply->element[0]->type != REDIS_REPLY_ARRAY ||
            reply->element[0]->elements != 2 || reply->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
            why = "redis: XREAD answered in an unexpected shape";
            return false;
        }
        const redisReply* entries = reply->element[0]->element[1];
        for (std::size_t i = 0; i < entries->elements; ++i) deliver(entries->element[i], cursor, last_given);
    }
}

// One stream entry: given to the listener if it is one of crudcast's, else passed over with a
// warning (a shared broker is not trusted to hold only well-formed entries).
void RedisClient::deliver(const redisReply* entry, std::string& cursor, std::uint64_t& last_given) {
    // The 1st, 2nd, 4th, 8th... bad entry is logged: a foreign writer cannot flood the log.
    const auto passed_over = [this](std::string_view id, std::string_view why) {
        const auto n = ++passed_over_;
        if (std::has_single_bit(n))
            log::write(log::LogLevel::warn, "redis: stream entry passed over",
                       {{"id", id.substr(0, 64)}, {"why", why}, {"passed_over_total", n}});
    };
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 || entry->element[0]->type != REDIS_REPLY_STRING) {
        passed_over("-", "unexpected shape");
        return;
    }
    std::string_view id(entry->element[0]->str, entry->element[0]->len);
    cursor.assign(id);  // the next XREAD starts after it, whatever it holds
    auto seq = redis::entry_seq(id);
    std::optional<std::string_view> model, event;
    const redisReply* fields = entry->element[1];
    if (fields->type == REDIS_REPLY_ARRAY) {
        for (std::size_t i = 0; i + 1 < fields->elements; i += 2) {
            const redisReply* key = fields->element[i];
            const redisReply* value = fields->element[i + 1];
            if (key->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING) continue;
            std::string_view name(key->str, key->len);
            if (name == "m") model = std::string_view(value->str, value->len);
            if (name == "e") event = std::string_view(value->str, value->len);
        }
    }
    const char* problem = !seq                 ? "id is not <seq>-0"
                          : !model || !event   ? "no m or e field"
                          : *seq <= last_given ? "seq not above the last one given"
                                               : nullptr;
    if (problem) {
        passed_over(id, problem);
        return;
    }
    last_given = *seq;
    listener_->on_entry(*seq, *model, *event);
}

}  // namespace

std::unique_ptr<BrokerClient> make_redis_client(const BrokerOptions& options) {
    return std::make_unique<RedisClient>(options);
}

}  // namespace crudcast::bus
