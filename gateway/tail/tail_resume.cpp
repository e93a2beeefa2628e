// tail_resume.cpp: messages, positions and gap lines for `crudcast tail` (see tail_resume.hpp).
#include "gateway/tail/tail_resume.hpp"

#include <cstdint>

#include <charconv>

#include <rapidjson/document.h>

namespace crudcast::gateway::tail {

Message classify(std::string_view frame) {
    Message m;
    rapidjson::Document doc;
    doc.Parse(frame.data(), frame.size());
    if (doc.HasParseError() || !doc.IsObject()) return m;
    if (!doc.HasMember("type")) {
        if (auto seq = doc.FindMember("seq"); seq != doc.MemberEnd() && seq->value.IsUint64())
            m.seq = seq->value.GetUint64();
        return m;
    }
    m.kind = Message::Kind::other;
    const auto& type = doc["type"];
    if (!type.IsString() || std::string_view(type.GetString(), type.GetStringLength()) != "gap") return m;
    const auto reason = doc.FindMember("reason"), since = doc.FindMember("since"), next = doc.FindMember("next");
    // A gap that does not say what was lost is shown as it came rather than guessed at.
    if (reason == doc.MemberEnd() || !reason->value.IsString() || since == doc.MemberEnd() ||
        !since->value.IsUint64() || next == doc.MemberEnd() || !(next->value.IsNull() || next->value.IsUint64()))
        return m;
    m.kind = Message::Kind::gap;
    m.reason.assign(reason->value.GetString(), reason->value.GetStringLength());
    m.since = since->value.GetUint64();
    if (!next->value.IsNull()) m.next = next->value.GetUint64();
    return m;
}

std::string gap_line(const Message& gap) {
    const std::string after = "gap: events after " + std::to_string(gap.since);
    if (!gap.next) return after + " were lost (" + gap.reason + "; next: none retained yet)";
    return after + " and before " + std::to_string(*gap.next) + " were lost (" + gap.reason + ")";
}

void Position::saw(const Message& message) {
    if (message.kind == Message::Kind::event && message.seq) after_ = message.seq;
    // What lies between the gap's since and next is gone for good: resuming just before next asks
    // only for what is still retained, instead of being told about the same loss again.
    if (message.kind == Message::Kind::gap && message.next && *message.next > 0) after_ = *message.next - 1;
}

std::string Position::target(std::string_view target) const {
    std::string out(target);
    if (after_) out += (out.find('?') == std::string::npos ? "?since=" : "&since=") + std::to_string(*after_);
    return out;
}

std::optional<std::uint64_t> parse_seq(std::string_view text) {
    std::uint64_t value = 0;
    // from_chars takes no sign for an unsigned type but stops at the first non-digit: the whole
    // text must be consumed, so "17x" is refused too.
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    if (value > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;  // crudcast's positions are below 2^63
    return value;
}

}  // namespace crudcast::gateway::tail
