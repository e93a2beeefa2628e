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
    // The MapResult reasons (event_mapper.hpp). Skips happen on most requests (every GET), so
    // they are counted without a lock; "other" catches a reason added without a slot here.
    static constexpr std::array<std::string_view, 9> reasons{
        "method", "status", "content-type", "invalid-json", "too-large", "rule", "no-model", "reserved", "other"};
    std::array<std::atomic<std::uint64_t>, reasons.size()> skipped_by{};
    void count_skip(std::string_view reason) {
        std::size_t i = 0;
        while (i + 1 < reasons.size() && reasons[i] != reason) ++i;
        skipped_by[i].fetch_add(1, std::memory_order_relaxed);
    }
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
    void skip(const proxy::ObservedRequest& request, unsigned status, const std::string& reason,
              const std::string& detail, proxy::NoteFields& note);

    const config::Config& config_;
    EventMapper mapper_;
    bus::Bus& bus_;
    EventCounters& counters_;
};

}  // namespace crudcast::gateway
