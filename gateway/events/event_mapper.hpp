// event_mapper.hpp: the pure function from one proxied exchange (request line, status, response
// headers, captured body) to an Event or a reason for none. No I/O. See ../EVENTS.md.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/event.hpp"
#include "config/config.hpp"
#include "gateway/events/no_event_reason.hpp"

namespace crudcast::gateway {

struct Exchange {
    std::string_view method;        // "POST"
    std::string_view target;        // as the client sent it: "/api/v1/authors/42?x=1"
    unsigned status = 0;            // upstream status
    std::string_view content_type;  // response Content-Type, "" when absent
    std::string_view body;          // the captured response body (complete unless body_too_large)
    bool body_too_large = false;    // body exceeded max-event-bytes: not captured
};

struct MapResult {
    std::optional<bus::Event> event;  // ts and seq left 0: the bus sets them
    // Why there is no event (no_event_reason.hpp); empty when an event was made.
    std::optional<NoEventReason> reason;
    // Extra detail for the debug log, e.g. which rule matched or why the pointer fell back.
    std::string detail;
};

class EventMapper {
public:
    explicit EventMapper(const config::Config& config);

    // Cheap pre-check at response-header time: could this exchange make an event at all?
    // Returns nothing when it might (then the body is captured up to max-event-bytes), or the reason
    // it cannot (method, status, content-type, rule, no-model, reserved; too-large when
    // Content-Length is known and above the limit). content_length < 0 means unknown.
    std::optional<NoEventReason> precheck(std::string_view method, std::string_view target, unsigned status,
                                          std::string_view content_type, long long content_length) const;

    // Whether a request might make an event whatever its answer: false only when it surely cannot.
    // Without route rules the method alone answers (cheap: no path reading, the hot path of every
    // request); with route rules the full precheck as for the best answer (200, JSON).
    bool might_publish(std::string_view method, std::string_view target) const;

    MapResult map(const Exchange& exchange) const;

private:
    struct Impl;
    std::shared_ptr<const Impl> impl_;
};

// Exposed for table-driven tests.
std::string singularize(std::string_view plural,
                        const std::vector<std::pair<std::string, std::string>>& irregular = {});

}  // namespace crudcast::gateway
