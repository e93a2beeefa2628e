// publish_safety.cpp: see publish_safety.hpp.
#include "gateway/events/publish_safety.hpp"

#include <algorithm>
#include <array>

#include "common/text.hpp"

namespace crudcast::gateway {
namespace {

using std::string_view;

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The path of a request target: origin-form "/a/b", or the path of an absolute-form
// "http://host/a/b"; the query and fragment are not part of it.
string_view path_of(string_view target) {
    // A plain loop: find_first_of with a set calls memchr once per byte (~30 instructions each).
    const auto end = std::ranges::find_if(target, [](char c) { return c == '?' || c == '#'; });
    target = target.substr(0, static_cast<std::size_t>(end - target.begin()));
    if (target.starts_with('/')) return target;
    const auto scheme_end = target.find("://");
    if (scheme_end == string_view::npos) return target;
    const auto slash = target.find('/', scheme_end + 3);
    return slash == string_view::npos ? string_view{} : target.substr(slash);
}

}  // namespace

NeverPublish::NeverPublish(std::vector<std::string> names) : names_(std::move(names)) {
    for (const auto& name : names_) {
        longest_ = std::max(longest_, name.size());
        if (name.size() < 64) lengths_ |= std::uint64_t{1} << name.size();
    }
}

bool NeverPublish::listed(string_view segment) const { return matches(segment.substr(0, segment.find(';'))); }

bool NeverPublish::matches(string_view segment) const {
    // Most segments ("api", "v1", "authors", an id) have a length no name has: one bit test each.
    if (segment.size() < 64 && (lengths_ >> segment.size() & 1) == 0) return false;
    return std::ranges::any_of(names_, [&](const std::string& name) { return iequals(name, segment); });
}

std::optional<std::size_t> NeverPublish::first_listed(const std::vector<std::string>& segments) const {
    if (names_.empty()) return std::nullopt;
    for (std::size_t i = 0; i < segments.size(); ++i)
        if (listed(segments[i])) return i;
    return std::nullopt;
}

bool NeverPublish::target_has_listed(string_view target) const {
    if (names_.empty()) return false;
    const string_view path = path_of(target);
    for (std::size_t start = 0; start < path.size();) {
        const auto end = std::min(path.find('/', start), path.size());
        const auto raw = path.substr(start, end - start);
        start = end + 1;
        if (raw.empty()) continue;
        // Nearly every segment is plain: it is its own decoding, compared where it lies.
        const bool plain = std::ranges::none_of(raw, [](char c) { return c == '%' || c == ';'; });
        if (plain ? matches(raw) : decoded_listed(raw)) return true;
    }
    return false;
}

bool NeverPublish::decoded_listed(string_view raw) const {
    // Decoded into a buffer as long as the longest name: a segment that decodes to more (before a
    // ';') cannot be listed, so nothing is allocated unless a configured name is long.
    constexpr std::size_t inline_size = 64;
    std::array<char, inline_size> inline_buffer{};
    std::string long_buffer(longest_ > inline_size ? longest_ : 0, '\0');
    char* const buffer = longest_ > inline_size ? long_buffer.data() : inline_buffer.data();
    std::size_t length = 0;
    for (std::size_t at = 0; at < raw.size(); ++at) {
        char c = raw[at];
        // Lenient like path_segments: a '%' without two hex digits stays a '%'.
        if (c == '%' && at + 2 < raw.size() && hex_value(raw[at + 1]) >= 0 && hex_value(raw[at + 2]) >= 0) {
            c = static_cast<char>(hex_value(raw[at + 1]) * 16 + hex_value(raw[at + 2]));
            at += 2;
        }
        if (c == ';') break;  // a segment parameter: the rest does not count
        if (length == longest_) return false;
        buffer[length++] = c;
    }
    return length > 0 && matches(string_view(buffer, length));
}

bool redact_members(rapidjson::Value& value, const std::vector<std::string>& names) {
    bool removed = false;
    if (value.IsObject()) {
        // By index: clang finds RapidJSON's iterator != ambiguous in C++20 (reversed operators).
        for (rapidjson::SizeType i = 0; i < value.MemberCount();) {
            const auto member = value.MemberBegin() + i;
            const string_view name(member->name.GetString(), member->name.GetStringLength());
            if (std::ranges::find(names, name) != names.end()) {
                // EraseMember keeps the order of the others (RemoveMember would move the last one
                // here); every duplicate of a name goes, not only the first FindMember would see.
                value.EraseMember(member);
                removed = true;
            } else {
                removed = redact_members(member->value, names) || removed;
                ++i;
            }
        }
    } else if (value.IsArray()) {
        for (auto& item : value.GetArray()) removed = redact_members(item, names) || removed;
    }
    return removed;
}

}  // namespace crudcast::gateway
