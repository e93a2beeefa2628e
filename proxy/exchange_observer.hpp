// exchange_observer.hpp: how the gateway watches proxied exchanges without the proxy knowing what
// it does with them (events). The proxy captures at most what the observer asks for, calls it
// just before the response's last bytes leave (read-your-writes), and appends the fields the
// observer returns to the access line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/message.hpp>

#include "common/asio.hpp"

namespace crudcast::proxy {

namespace http = boost::beast::http;

struct ObservedRequest {
    std::string_view method;
    std::string_view target;  // as the client sent it
    std::string_view request_id;
};

// Extra key=value fields for the access line, e.g. {"event","author/POST"}, {"seq","17"}.
using NoteFields = std::vector<std::pair<std::string, std::string>>;

// What became of the event of a response that could make one.
struct EventOutcome {
    std::optional<std::uint64_t> seq;  // the event's seq: X-Crudcast-Seq says it
    // Made, but its seq is not known here (the broker did not take it, or it did not come back
    // within bus-publish-timeout): X-Crudcast-Seq says nothing.
    bool seq_unknown = false;
};

class ExchangeObserver {
public:
    virtual ~ExchangeObserver() = default;
    // At request time: whether a successful answer to this request could make an event (publish
    // method, route rules, a model in the path). False lets the proxy cancel the upstream request
    // when the client leaves before the answer; true keeps it running so the event is not lost.
    virtual bool may_publish(const ObservedRequest& request) const = 0;
    // At response-head time: how many body bytes to capture (0 = none, the note is then final).
    virtual std::size_t on_response_head(const ObservedRequest& request, const http::response_header<>& head,
                                         NoteFields& note) = 0;
    // The event stream's position (the seq of the last event published), read when a request is
    // forwarded: X-Crudcast-Seq of a response that makes no event. nullopt: unknown (no header).
    virtual std::optional<std::uint64_t> position() const = 0;
    // Just before the last bytes of the response are written to the client (its head is written
    // then too, so it can carry the event's seq). `body` holds the captured bytes; `overflow` is
    // true when the body was larger than the capture limit. Completes once the event reached this
    // process's subscribers (a broker bus: at most bus-publish-timeout later).
    virtual asio::awaitable<EventOutcome> on_response_complete(const ObservedRequest& request,
                                                               const http::response_header<>& head,
                                                               std::string_view body, bool overflow,
                                                               NoteFields& note) = 0;
};

}  // namespace crudcast::proxy
