// jwt_codec.cpp: see jwt_codec.hpp.
#include "gateway/auth/jwt_codec.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace crudcast::gateway::auth {
namespace {

// The 6-bit value of each base64url character, not_base64url for every other byte.
constexpr std::uint8_t not_base64url = 64;
constexpr std::array<std::uint8_t, 256> base64url_values = [] {
    std::array<std::uint8_t, 256> table{};
    table.fill(not_base64url);
    constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (std::size_t i = 0; i < alphabet.size(); ++i)
        table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::uint8_t>(i);
    return table;
}();

std::string_view name_of(const rapidjson::Value& name) { return {name.GetString(), name.GetStringLength()}; }

// The first member name that appears twice in one object anywhere in `root`, or nullopt. An explicit
// stack rather than recursion: a payload of nested arrays must not exhaust the thread's stack.
std::optional<std::string> duplicate_member(const rapidjson::Value& root) {
    std::vector<const rapidjson::Value*> pending{&root};
    std::vector<std::string_view> names;
    while (!pending.empty()) {
        const rapidjson::Value* value = pending.back();
        pending.pop_back();
        if (value->IsArray()) {
            for (const auto& item : value->GetArray()) pending.push_back(&item);
            continue;
        }
        if (!value->IsObject()) continue;
        names.clear();
        for (const auto& member : value->GetObject()) {
            names.push_back(name_of(member.name));
            pending.push_back(&member.value);
        }
        std::ranges::sort(names);
        const auto twice = std::ranges::adjacent_find(names);
        if (twice != names.end()) return std::string(*twice);
    }
    return std::nullopt;
}

}  // namespace

std::optional<std::string> base64url_decode(std::string_view text) {
    // 4 characters carry 3 bytes; a tail of 2 or 3 characters carries 1 or 2; a tail of 1 cannot occur.
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() / 4 * 3 + 2);
    std::uint32_t bits = 0;
    int count = 0;
    for (const char c : text) {
        const std::uint8_t value = base64url_values[static_cast<unsigned char>(c)];
        if (value == not_base64url) return std::nullopt;
        bits = (bits << 6) | value;
        count += 6;
        if (count >= 8) {
            count -= 8;
            out += static_cast<char>((bits >> count) & 0xff);
        }
    }
    if ((bits & ((1u << count) - 1)) != 0) return std::nullopt;  // non-zero padding bits: a second spelling
    return out;
}

std::string parse_json_object(std::string_view text, rapidjson::Document& document) {
    constexpr unsigned flags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
    document.Parse<flags>(text.data(), text.size());
    if (document.HasParseError()) return "not JSON";
    if (!document.IsObject()) return "not a JSON object";
    if (auto name = duplicate_member(document)) {
        std::string problem = "a member name appears twice";
        // The name itself only when it is short and plain: it comes from outside.
        if (name->size() <= 32 && std::ranges::all_of(*name, [](char c) { return c >= 0x21 && c <= 0x7e && c != '"'; }))
            problem += " (\"" + *name + "\")";
        return problem;
    }
    return {};
}

}  // namespace crudcast::gateway::auth
