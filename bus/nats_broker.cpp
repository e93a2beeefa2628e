// nats_broker.cpp: the NATS JetStream broker client (broker.hpp) on the C client libnats.
//
// One session thread owns the connection and every listener call: connect, make sure of the stream,
// on_connected, then read the stream with an ordered consumer (in order, no acks; libnats recreates
// it past a message the server skipped, this client past one libnats' queue dropped) and give each
// entry once; on any break (connection closed, stream deleted or created again) close, on_down once,
// and start over with a doubling backoff. libnats' own reconnect is off: its fixed wait does not
// double, and a connection it restored would deliver before the stream is checked again. One
// appender thread takes appends from a bounded queue and hands each to libnats' asynchronous
// publish on the current connection (nats_broker_link.cpp), so the caller never waits.
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "bus/broker.hpp"
#include "bus/nats_broker.hpp"
#include "bus/nats_broker_link.hpp"

namespace crudcast::bus {

namespace {

// Appends waiting for a thread; past it append fails at once rather than hold more memory.
constexpr std::size_t kAppendQueueLimit = 10'000;
// One thread hands appends to libnats, which publishes without waiting for each acknowledgement
// (nats_broker_link.cpp): one is enough, and appends leave in the order append() was called.
constexpr int kAppendThreads = 1;
// How long the reader waits for a message before it looks at the stop flag and the stream.
constexpr std::int64_t kReadWaitMs = 50;
// How often the reader asks whether the stream is still the one it reads (deleted, created again).
constexpr auto kStreamCheckEvery = std::chrono::seconds(1);

struct PendingAppend {
    std::string subject;
    std::string event;
    BrokerClient::AppendDone done;
    std::chrono::steady_clock::time_point deadline;
};

class NatsClient final : public BrokerClient {
public:
    explicit NatsClient(nats::Settings settings) : settings_(std::move(settings)) {}
    ~NatsClient() override { stop(); }

    void start(BrokerListener& listener, std::uint64_t after) override;
    void append(std::string_view model, std::string event, AppendDone done) override;
    void stop() override;
    std::string_view kind() const override { return "nats"; }

private:
    void run_session();
    using SubscriptionPtr = std::unique_ptr<natsSubscription, decltype(&natsSubscription_Destroy)>;
    SubscriptionPtr subscribe(nats::Link& link, std::string& why);
    std::string read_stream(nats::Link& link);
    void give(nats::Link& link, natsMsg* message);
    bool wait_for(std::chrono::milliseconds delay);
    bool stopping() const;
    void run_appender();
    void publish(nats::Link& link, PendingAppend& item);

    const nats::Settings settings_;
    BrokerListener* listener_ = nullptr;
    std::uint64_t last_given_ = 0;  // session thread only

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool started_ = false;
    bool stopping_ = false;
    std::shared_ptr<nats::Link> link_;  // while connected and the stream is ensured
    std::deque<PendingAppend> queue_;

    std::thread session_;
    std::vector<std::thread> appenders_;
};

void NatsClient::start(BrokerListener& listener, std::uint64_t after) {
    std::lock_guard lock(mutex_);
    if (started_) return;
    started_ = true;
    listener_ = &listener;
    last_given_ = after;
    session_ = std::thread([this] { run_session(); });
    for (int i = 0; i < kAppendThreads; ++i) appenders_.emplace_back([this] { run_appender(); });
}

bool NatsClient::stopping() const {
    std::lock_guard lock(mutex_);
    return stopping_;
}

// Sleeps for `delay` unless stop() comes first; false when stopping.
bool NatsClient::wait_for(std::chrono::milliseconds delay) {
    std::unique_lock lock(mutex_);
    return !wake_.wait_for(lock, delay, [this] { return stopping_; });
}

void NatsClient::run_session() {
    auto backoff = settings_.reconnect_min;
    bool down_told = false;
    while (!stopping()) {
        std::string why;
        auto link = nats::connect(settings_, why);
        std::optional<StreamInfo> info;
        if (link) info = nats::ensure_stream(*link, settings_, why);
        if (info) {
            {
                std::lock_guard lock(mutex_);
                link_ = link;
            }
            listener_->on_connected(*info);
            down_told = false;
            backoff = settings_.reconnect_min;
            why = read_stream(*link);
            {
                std::lock_guard lock(mutex_);
                link_.reset();
            }
        }
        // Appends still in flight on it fail now instead of at their timeout.
        if (link) {
            natsConnection_Close(link->connection);
            link->fail_appends("nats: connection lost");
        }
        link.reset();
        if (stopping()) break;
        if (!down_told) listener_->on_down(why);
        down_told = true;
        if (!wait_for(backoff)) break;
        backoff = std::min(backoff * 2, settings_.reconnect_max);
    }
}

// An ordered consumer from after the last entry given, or from the first retained one when the
// stream is new to this client; null with `why` when the server refuses it.
NatsClient::SubscriptionPtr NatsClient::subscribe(nats::Link& link, std::string& why) {
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = settings_.stream.c_str();
    options.Ordered = true;
    if (last_given_ >= link.offset && last_given_ > 0) {
        options.Config.DeliverPolicy = js_DeliverByStartSequence;
        options.Config.OptStartSeq = last_given_ - link.offset + 1;
    } else {
        options.Config.DeliverPolicy = js_DeliverAll;
    }
    const auto subjects = settings_.subject_prefix + ">";
    natsSubscription* subscription = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const auto status = js_SubscribeSync(&subscription, link.js, subjects.c_str(), nullptr, &options, &code);
    if (status != NATS_OK) why = nats::failure("subscribe", status, code);
    return SubscriptionPtr(status == NATS_OK ? subscription : nullptr, &natsSubscription_Destroy);
}

// Gives entries until the connection or the stream breaks; returns why.
std::string NatsClient::read_stream(nats::Link& link) {
    std::string why;
    auto subscription = subscribe(link, why);
    if (!subscription) return why;
    auto next_check = std::chrono::steady_clock::now() + kStreamCheckEvery;
    while (!stopping()) {
        natsMsg* message = nullptr;
        const auto status = natsSubscription_NextMsg(&message, subscription.get(), kReadWaitMs);
        if (status == NATS_OK) {
            give(link, message);
            natsMsg_Destroy(message);
        } else if (status == NATS_SLOW_CONSUMER) {
            // libnats dropped messages its queue had no room for, after the ordered consumer had
            // counted them: only a new consumer from the last entry given gets them again.
            subscription.reset();
            subscription = subscribe(link, why);
            if (!subscription) return why;
        } else if (status != NATS_TIMEOUT) {
            return nats::failure("reading the stream", status);
        }
        const auto now = std::chrono::steady_clock::now();
        if (now < next_check && !link.suspect.exchange(false)) continue;
        next_check = now + kStreamCheckEvery;
        if (auto changed = nats::stream_changed(link, settings_)) return *changed;
    }
    return "stopping";
}

void NatsClient::give(nats::Link& link, natsMsg* message) {
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, message) != NATS_OK) return;  // not a stream message
    const auto position = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    auto high = link.high.load();
    while (high < position && !link.high.compare_exchange_weak(high, position)) {}
    const auto seq = link.offset + position;
    if (seq <= last_given_) return;  // given before this connection: a redelivery
    std::string_view subject = natsMsg_GetSubject(message);
    std::string_view token = subject;
    if (subject.starts_with(settings_.subject_prefix)) token.remove_prefix(settings_.subject_prefix.size());
    // A subject crudcast did not write keeps its raw token: the bus decides what the entry is worth.
    const auto model = nats::model_from_token(token);
    const std::string_view event(natsMsg_GetData(message), static_cast<std::size_t>(natsMsg_GetDataLength(message)));
    last_given_ = seq;
    listener_->on_entry(seq, model ? std::string_view(*model) : token, event);
}

void NatsClient::append(std::string_view model, std::string event, AppendDone done) {
    PendingAppend item{settings_.subject_prefix + nats::subject_token(model), std::move(event), std::move(done),
                       std::chrono::steady_clock::now() + std::chrono::milliseconds(settings_.append_ms)};
    std::unique_lock lock(mutex_);
    const char* refused = nullptr;
    if (stopping_) {
        refused = "stopping";
    } else if (!started_) {
        refused = "nats: not started";
    } else if (queue_.size() >= kAppendQueueLimit) {
        refused = "nats: append queue full";
    } else {
        queue_.push_back(std::move(item));
        lock.unlock();
        wake_.notify_all();
        return;
    }
    lock.unlock();
    // No room to hand it to a client thread: refused here, without waiting for anything.
    item.done(std::nullopt, refused);
}

void NatsClient::run_appender() {
    for (;;) {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;  // stop() fails what is left
        auto item = std::move(queue_.front());
        queue_.pop_front();
        auto link = link_;
        lock.unlock();
        if (!link) {
            item.done(std::nullopt, "nats: not connected");
            continue;
        }
        publish(*link, item);
    }
}

void NatsClient::publish(nats::Link& link, PendingAppend& item) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(item.deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return item.done(std::nullopt, "nats: append timed out in the queue");
    link.append(settings_, item.subject, item.event, left.count(), std::move(item.done));
}

void NatsClient::stop() {
    std::deque<PendingAppend> left;
    std::shared_ptr<nats::Link> link;
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        stopping_ = true;
        link = link_;
    }
    // In-flight publishes and the reader's wait end now, not at their timeouts.
    if (link) natsConnection_Close(link->connection);
    link.reset();
    wake_.notify_all();
    if (session_.joinable()) session_.join();
    for (auto& t : appenders_) t.join();
    appenders_.clear();
    {
        std::lock_guard lock(mutex_);
        left.swap(queue_);
        link_.reset();
    }
    for (auto& item : left) item.done(std::nullopt, "stopping");
}
}  // namespace

std::unique_ptr<BrokerClient> make_nats_client(const BrokerOptions& options) {
    return std::make_unique<NatsClient>(nats::resolve(options));
}

}  // namespace crudcast::bus
