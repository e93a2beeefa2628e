// event_publisher.hpp: the bridge from proxied exchanges to the bus: asks the EventMapper whether a
// response can make an event, has the proxy capture its body, publishes the event before the
// response's last byte leaves, and tells the access line what happened (event=... or reason=...).
#pragma once

#include <string>

#include "bus/bus.hpp"
#include "gateway/events/event_counters.hpp"
#include "gateway/events/event_mapper.hpp"
#include "proxy/exchange_observer.hpp"

namespace crudcast::gateway {

namespace http = boost::beast::http;

class EventPublisher : public proxy::ExchangeObserver {
public:
    EventPublisher(const config::Config& config, bus::Bus& bus, EventCounters& counters);

    bool may_publish(const proxy::ObservedRequest& request) const override;
    std::size_t on_response_head(const proxy::ObservedRequest& request, const http::response_header<>& head,
                                 proxy::NoteFields& note) override;
    std::optional<std::uint64_t> position() const override { return bus_.position(); }
    asio::awaitable<proxy::EventOutcome> on_response_complete(const proxy::ObservedRequest& request,
                                                              const http::response_header<>& head,
                                                              std::string_view body, bool overflow,
                                                              proxy::NoteFields& note) override;

private:
    // A broker bus: publishes and waits until the event reached this process's subscribers, or
    // bus-publish-timeout (nullopt: the response leaves and the event counts as late).
    asio::awaitable<std::optional<bus::PublishResult>> publish_and_wait(bus::Event event);
    void skip(const proxy::ObservedRequest& request, unsigned status, NoEventReason reason, const std::string& detail,
              proxy::NoteFields& note);

    const config::Config& config_;
    EventMapper mapper_;
    bus::Bus& bus_;
    EventCounters& counters_;
};

}  // namespace crudcast::gateway
