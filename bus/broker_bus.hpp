// broker_bus.hpp: the bus of several crudcast instances. Events are appended to a broker's stream
// (bus/broker.hpp: NATS JetStream, Redis Streams), and every instance, this one included, delivers
// only what it reads back from the stream, in the stream's order, through its InMemoryBus (shards,
// subscribers, history). So every subscriber of every instance gets the same events in the same
// order with the same seq, and a resume works on any instance and across restarts: at start the
// stream's retained entries fill the local history.
//
// Read-your-writes: publish_async completes once this instance delivered the event (or the broker
// could not take it). While the broker is unreachable, appends fail at once and their events are
// lost: counted, logged once per state change; when it is back, every subscriber here is told with
// one `bus` gap message.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "bus/broker.hpp"
#include "bus/bus.hpp"
#include "bus/in_memory_bus.hpp"

namespace crudcast::bus {

class BrokerBus : public Bus, private BrokerListener {
public:
    BrokerBus(InMemoryBus& local, std::unique_ptr<BrokerClient> client);
    ~BrokerBus() override;

    // Connects and reads the stream's retained entries into the local history, waiting up to
    // `catch_up` for that (a broker that is down does not hold the start: the bus is then down and
    // catches up when it comes).
    void start(std::chrono::milliseconds catch_up);
    void stop();

    bool asynchronous() const override { return true; }
    void publish_async(Event event, PublishDone done) override;
    // Appends without waiting for the delivery (seq unknown here: 0).
    PublishResult publish(Event event) override;
    // The seq of the last event delivered here; nullopt until the stream was first read.
    std::optional<std::uint64_t> position() const override;

    void count_late() override { late_.fetch_add(1, std::memory_order_relaxed); }
    BusStatus status() const;

private:
    void on_connected(const StreamInfo& info) override;
    void on_entry(std::uint64_t seq, std::string_view model, std::string_view event) override;
    void on_down(std::string_view why) override;
    void on_append(std::optional<std::uint64_t> seq, std::string_view error, std::size_t subscribers,
                   const PublishDone& done);
    void complete_waiters(std::uint64_t delivered);
    void note_known(std::uint64_t seq);  // known_ = max(known_, seq)
    // The reader passed `seq`: once that reaches the stream's last entry at the first connection,
    // the stream was read (position() is known, start() returns).
    void mark_read(std::uint64_t seq);
    void tell_gap(std::uint64_t since, std::optional<std::uint64_t> next);

    InMemoryBus& local_;
    std::unique_ptr<BrokerClient> client_;
    std::atomic<BusState> state_{BusState::connecting};
    std::atomic<bool> read_once_{false};   // the stream was read (position() is known)
    std::atomic<std::uint64_t> known_{0};  // the newest seq known to be in the stream
    std::atomic<std::uint64_t> lost_{0};
    std::atomic<std::uint64_t> late_{0};
    std::atomic<std::uint64_t> reconnects_{0};
    std::atomic<std::uint64_t> invalid_{0};
    std::atomic<bool> losing_{false};  // events lost since the last state change (logged once)

    mutable std::mutex mutex_;  // guards what follows
    std::condition_variable caught_up_;
    std::uint64_t catch_up_to_ = 0;  // the stream's last seq at the first connection
    bool connected_once_ = false;
    std::uint64_t offset_ = 0;                           // the stream's, as last connected
    bool gap_told_ = false;                              // a gap went out since the last delivered event
    std::multimap<std::uint64_t, PublishDone> waiters_;  // appended, not yet delivered here
    bool stopped_ = false;
};

}  // namespace crudcast::bus
