// tail_options.hpp: what `crudcast tail` takes from its command line and its token file, checked
// before anything connects. No I/O but reading the token file, so every refusal is table-testable.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crudcast::gateway::tail {

struct Options {
    std::string host, port, target;  // target: path + query sent in the handshake
    std::string url;                 // for messages: the topic query in, an access_token value out
    bool json = false;
    std::optional<std::uint64_t> since;                        // --since: resume after this seq
    std::string token_file;                                    // "" without --token-file
    std::vector<std::pair<std::string, std::string>> headers;  // --header, in order, value trimmed
};

// Fills `o` from the arguments after "tail"; returns the problem as one line, or "" when they are
// fine. No problem line quotes a --header value or a token: either may be a credential.
std::string parse_args(const std::vector<std::string>& args, Options& o);

// The problem with one --header argument ("Name: value"), or "" when it is a header crudcast tail
// may send; on success `name` and `value` (optional whitespace around it removed) are set.
std::string header_problem(std::string_view text, std::string& name, std::string& value);

// Reads the token in `path`: the file's bytes with one trailing newline (LF or CRLF) stripped.
// Returns the problem as one line naming --token-file and the path (never the file's contents), or ""
// when `token` holds a token that fits a header (not empty, no whitespace or control bytes).
std::string read_token_file(const std::string& path, std::string& token);

// `target` with the value of every access_token query parameter replaced by REDACTED, for lines
// that show the URL: someone may put a token in the URL they give crudcast tail.
std::string redact_access_token(std::string_view target);

}  // namespace crudcast::gateway::tail
