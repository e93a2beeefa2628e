// publish_safety.hpp: what crudcast keeps out of events whatever the backend answers: requests to
// credential endpoints (never-publish: path segments such as login or token) and secret members of
// a payload (redact-fields: password, token, ...). Pure; the event mapper applies both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

namespace crudcast::gateway {

class NeverPublish {
public:
    // `names` lower case, as config's never-publish holds them; empty = never-publish is off.
    explicit NeverPublish(std::vector<std::string> names);

    bool empty() const { return names_.empty(); }

    // Whether one decoded path segment is listed: compared case-insensitively, up to its first ';'
    // (a segment parameter: "/login;jsessionid=1" reaches many servers' login route).
    bool listed(std::string_view segment) const;

    // The position of the first listed segment among a path's decoded segments, if any.
    std::optional<std::size_t> first_listed(const std::vector<std::string>& segments) const;

    // The same answer as first_listed(config::path_segments(target)).has_value(), read straight from
    // the raw target without allocating: might_publish asks it for every request whose method may
    // publish. Segments are percent-decoded as path_segments does; the query and fragment are ignored.
    bool target_has_listed(std::string_view target) const;

private:
    bool matches(std::string_view name) const;        // a segment already cut at its ';'
    bool decoded_listed(std::string_view raw) const;  // a raw segment holding '%' or ';'

    std::vector<std::string> names_;
    std::size_t longest_ = 0;
    std::uint64_t lengths_ = 0;  // bit n set: some name is n bytes long (n < 64)
};

// Removes every member named in `names` (exact, case-sensitive: JSON member names are) from `value`
// and from every object inside it, arrays included, keeping the other members' order. Returns
// whether anything was removed. Recursive: the mapper refuses JSON nested deeper than 512 levels first.
bool redact_members(rapidjson::Value& value, const std::vector<std::string>& names);

}  // namespace crudcast::gateway
