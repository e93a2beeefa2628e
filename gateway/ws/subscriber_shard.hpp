// subscriber_shard.hpp: what the WebSocket sessions of one worker thread share, touched only by that
// thread: its sessions (for drain), its subscribers by topic, and the FrameLog their frames wait in.
// The bus delivers each event once per thread; the shard appends it to the log once, if anyone here
// wants it, then lets every subscriber write what it has not sent in one pass, run in slices
// (pass_slicing.hpp).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "bus/in_memory_bus.hpp"
#include "common/asio.hpp"
#include "config/config.hpp"
#include "gateway/ws/frame_log.hpp"
#include "gateway/ws/ws_counters.hpp"

namespace crudcast::gateway {

class WebSocketSession;

class SubscriberShard : public bus::ShardSink, public std::enable_shared_from_this<SubscriberShard> {
public:
    using Registration = std::list<WebSocketSession*>::iterator;

    SubscriberShard(asio::any_io_executor executor, const config::Config& config, bus::InMemoryBus& bus,
                    std::size_t index, WebSocketCounters& counters);

    // A session is registered from its construction to its destruction, subscribed or not.
    Registration add_session(WebSocketSession* session);
    void remove_session(Registration registration);
    bool has_sessions() const { return !sessions_.empty(); }
    // Drain: every session of this thread closes with 1001 (going away).
    void drain();

    // `session` receives the entries of its topics appended from now on (its subscription starts
    // at the log's end), and the bus delivers those topics to this thread from its next publish on.
    // Returns the bus's position then: later events reach the log; earlier ones only the history.
    std::uint64_t subscribe(WebSocketSession* session);
    void unsubscribe(WebSocketSession* session);

    // Appends the events some subscriber here wants to the log, then lets every subscriber
    // write what it has not sent yet (or closes it with 1013 when it is too far behind).
    void on_events(const std::vector<bus::Delivery>& events) override;

    const FrameLog& log() const { return log_; }
    const config::Config& config() const { return config_; }
    bus::InMemoryBus& bus() { return bus_; }
    WebSocketCounters& counters() { return counters_; }

private:
    static constexpr std::uint32_t no_topic = UINT32_MAX;  // a model nobody here subscribed to by name

    std::uint32_t acquire_topic(const std::string& topic);
    void release_topic(std::uint32_t id, WebSocketSession* session);
    void begin_pass();
    void run_pass();
    void end_pass();

    asio::any_io_executor executor_;
    const config::Config& config_;
    bus::InMemoryBus& bus_;
    std::size_t index_;  // this worker's shard of the bus
    WebSocketCounters& counters_;
    std::list<WebSocketSession*> sessions_;  // every session, subscribed or not (for drain)

    FrameLog log_;
    std::unordered_map<std::string, std::uint32_t> topic_ids_;  // topics someone here subscribed to
    std::vector<std::vector<WebSocketSession*>> by_topic_;      // indexed by topic id
    std::vector<std::string> topic_names_;                      // indexed by topic id
    std::vector<std::uint32_t> free_topic_ids_;                 // ids of topics nobody here wants now
    std::vector<WebSocketSession*> subscribed_;                 // every subscribed session, "all" included
    std::size_t all_subscribers_ = 0;

    bool pass_posted_ = false;
    std::size_t pass_next_ = 0;    // index in `subscribed_` the pass continues at
    std::uint64_t pass_keep_ = 0;  // the lowest cursor seen in this pass: trim before it
};

}  // namespace crudcast::gateway
