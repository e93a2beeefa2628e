// tail.hpp: `crudcast tail`, a terminal subscriber for crudcast's event WebSocket: connects,
// prints one line per event (human-readable, or the raw JSON with --json) and reconnects with
// backoff when the connection drops, resuming after the last event printed (?since=).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crudcast::gateway {

// Runs `crudcast tail` with the arguments after "tail"; returns the process exit code
// (0 on --help or SIGINT/SIGTERM, 2 on bad arguments). Only returns once it is told to stop.
int run_tail(const std::vector<std::string>& args);

// One event frame as a human-readable line (no newline): "12:03:04.123 author POST id=42 {...}",
// the time in local time; ANSI colours when `colour`. A frame that is not an event object comes
// back unchanged, so nothing the server sends is silently dropped. Either way terminal controls
// (C0, DEL, C1) in it are escaped as \u00XX, so a hostile path or payload cannot drive the terminal.
std::string format_event(std::string_view frame, bool colour);

}  // namespace crudcast::gateway
