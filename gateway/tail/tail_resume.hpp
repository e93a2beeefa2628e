// tail_resume.hpp: what `crudcast tail` needs to resume after a reconnect without a hole: what
// kind of message a frame is (an event and its seq, or a gap), the position to resume after, the
// handshake target that asks for it, and the gap as one line for people. No I/O, so every case
// is table-testable.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace crudcast::gateway::tail {

// One message from the server as the tail sees it. Only a JSON object without a "type" key is an
// event; crudcast never puts one in an event, so a gap can never be printed as one.
struct Message {
    enum class Kind {
        event,  // an event (or a frame that is not a JSON object: printed as it came, as before)
        gap,    // {"type":"gap",...} with the members it must have
        other,  // any other message with a "type" key, or a gap that lacks its members
    } kind = Kind::event;
    std::optional<std::uint64_t> seq;   // an event's position, when it has one
    std::string reason;                 // a gap's reason: history, restart or bus
    std::uint64_t since = 0;            // a gap: positions after this ...
    std::optional<std::uint64_t> next;  // ... and before this are lost; nullopt: nothing retained yet
};

Message classify(std::string_view frame);

// "gap: events after 17 and before 25 were lost (history)", or with nothing retained yet
// "gap: events after 17 were lost (restart; next: none retained yet)". For a Kind::gap message.
// The reason is the server's text: the caller escapes terminal controls before printing.
std::string gap_line(const Message& gap);

// The position a reconnect resumes after: the --since value until something arrives, then the seq
// of the last event received, or just before the next retained event after a gap (so the same gap
// is not reported twice). Unset without --since until the first event: nothing to resume from.
class Position {
public:
    explicit Position(std::optional<std::uint64_t> since) : after_(since) {}
    // The server's order is the truth: the latest message wins even if its seq is smaller (a
    // restart with a clock that went back numbers from a smaller start).
    void saw(const Message& message);
    std::optional<std::uint64_t> after() const { return after_; }
    // `target` (path and query) with since=<after> added, or unchanged when there is no position.
    std::string target(std::string_view target) const;

private:
    std::optional<std::uint64_t> after_;
};

// Parses a --since value: a decimal seq (digits only, fits 64 bits). nullopt when it is not one.
std::optional<std::uint64_t> parse_seq(std::string_view text);

}  // namespace crudcast::gateway::tail
