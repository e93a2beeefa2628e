// event_publisher.hpp: the bridge from proxied exchanges to the bus: asks the EventMapper whether a
// response can make an event, has the proxy capture its body, publishes the event before the
// response's last byte leaves, and tells the access line what happened (event=... or reason=...).
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <string>

#include "bus/bus.hpp"
#include "gateway/events/event_mapper.hpp"
#include "proxy/exchange_observer.hpp"

namespace crudcast::gateway {

namespace http = boost::beast::http;

struct EventCounters {
    // One slot per reason (no_event_reason.hpp). Skips happen on most requests (every GET), so
    // they are counted without a lock.
    std::array<std::atomic<std::uint64_t>, no_event_reasons.size()> skipped_by{};
    void count_skip(NoEventReason reason) { skipped_by[index_of(reason)].fetch_add(1, std::memory_order_relaxed); }
    // Published events by "model\tMETHOD": models are open-ended, and publishing already takes
    // the bus lock, so one more short lock per event is fine.
    mutable std::mutex mutex;
    std::map<std::string, std::uint64_t> published_by;
};

class EventPublisher : public proxy::ExchangeObserver {
public:
    EventPublisher(const config::Config& config, bus::Bus& bus, EventCounters& counters);

    std::size_t on_response_head(const proxy::ObservedRequest& request, const http::response_header<>& head,
                                 proxy::NoteFields& note) override;
    void on_response_complete(const proxy::ObservedRequest& request, const http::response_header<>& head,
                              std::string_view body, bool overflow, proxy::NoteFields& note) override;

private:
    void skip(const proxy::ObservedRequest& request, unsigned status, NoEventReason reason,
              const std::string& detail, proxy::NoteFields& note);

    const config::Config& config_;
    EventMapper mapper_;
    bus::Bus& bus_;
    EventCounters& counters_;
};

}  // namespace crudcast::gateway
