// jwt_claims.cpp: see jwt_claims.hpp.
#include "gateway/auth/jwt_claims.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include "common/text.hpp"

namespace crudcast::gateway::auth {
namespace {

using Value = rapidjson::Value;
using seconds_d = std::chrono::duration<double>;

constexpr std::size_t max_subject = 128;
// system_clock counts nanoseconds in 64 bits, which end in 2262: a later exp is kept as this.
constexpr double latest_expiry = 9.0e9;

bool deny(JwtVerdict& verdict, std::string reason, std::string detail) {
    verdict.ok = false;
    verdict.reason = std::move(reason);
    verdict.detail = std::move(detail);
    return false;
}

const Value* member(const Value& object, std::string_view name) {
    const auto found = object.FindMember(Value(rapidjson::StringRef(name.data(), name.size())));
    return found == object.MemberEnd() ? nullptr : &found->value;
}

std::string_view text_of(const Value& value) { return {value.GetString(), value.GetStringLength()}; }

std::string whole_seconds(double seconds) {
    return std::to_string(static_cast<long long>(std::ceil(std::clamp(seconds, 0.0, 1e15)))) + " s";
}

// A NumericDate (seconds, a fraction allowed). False with the verdict set when it is not a number.
bool numeric_claim(const Value& payload, const char* name, std::optional<double>& out, JwtVerdict& verdict) {
    const Value* value = member(payload, name);
    if (!value) return true;
    if (!value->IsNumber()) return deny(verdict, "malformed", std::string(name) + " is not a number of seconds");
    out = value->GetDouble();
    return true;
}

bool audience_names(const Value* aud, std::string_view audience) {
    if (!aud) return false;
    if (aud->IsString()) return text_of(*aud) == audience;
    if (!aud->IsArray()) return false;
    return std::ranges::any_of(aud->GetArray(), [&](const Value& v) { return v.IsString() && text_of(v) == audience; });
}

// The topics claim: an array of topic names, or one string of names separated by commas or spaces.
bool read_topics(const Value& payload, const ClaimRules& rules, JwtVerdict& verdict) {
    const Value* claim = member(payload, rules.topics_claim);
    if (!claim) {
        if (rules.require_topics)
            return deny(verdict, "no_topics_claim",
                        "the token has no \"" + rules.topics_claim + "\" claim, and jwt-require-topics is set");
        verdict.topics = std::nullopt;
        return true;
    }
    if (claim->IsString()) {
        std::string list(text_of(*claim));
        std::ranges::replace_if(
            list, [](char c) { return c == ' ' || c == '\t'; }, ',');
        verdict.topics = parse_allowed_topics(list);
        return true;
    }
    const auto bad = [&] {
        return deny(verdict, "bad_topics_claim",
                    "the \"" + rules.topics_claim + "\" claim is neither an array of strings nor a string");
    };
    if (!claim->IsArray()) return bad();
    std::vector<std::string> topics;
    for (const auto& item : claim->GetArray()) {
        if (!item.IsString()) return bad();
        const auto name = trim(text_of(item));
        if (name == "*") {
            verdict.topics = std::nullopt;
            return true;
        }
        auto topic = ascii_lower(name);
        if (!topic.empty() && std::ranges::find(topics, topic) == topics.end()) topics.push_back(std::move(topic));
    }
    verdict.topics = std::move(topics);
    return true;
}

std::string subject_of(const Value& payload) {
    const Value* sub = member(payload, "sub");
    if (!sub || !sub->IsString()) return {};
    std::string_view text = text_of(*sub);
    if (text.size() > max_subject) {
        std::size_t cut = max_subject;
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;  // whole UTF-8 characters
        text = text.substr(0, cut);
    }
    return std::string(text);
}

}  // namespace

bool check_claims(const Value& payload, const ClaimRules& rules, std::chrono::system_clock::time_point now,
                  JwtVerdict& verdict) {
    const double at = seconds_d(now.time_since_epoch()).count();
    const double leeway = seconds_d(rules.leeway).count();
    std::optional<double> exp;
    std::optional<double> nbf;
    if (!numeric_claim(payload, "exp", exp, verdict) || !numeric_claim(payload, "nbf", nbf, verdict)) return false;
    if (exp && at >= *exp + leeway)
        return deny(
            verdict, "expired",
            "the token expired " + whole_seconds(at - *exp) + " ago (jwt-leeway " + whole_seconds(leeway) + ")");
    if (nbf && at < *nbf - leeway)
        return deny(verdict, "not_yet_valid", "the token is valid only in " + whole_seconds(*nbf - at));
    if (!rules.issuer.empty()) {
        const Value* iss = member(payload, "iss");
        if (!iss || !iss->IsString() || text_of(*iss) != rules.issuer)
            return deny(verdict, "issuer", iss ? "iss is not jwt-issuer" : "the token has no iss");
    }
    if (!rules.audience.empty()) {
        const Value* aud = member(payload, "aud");
        if (!audience_names(aud, rules.audience))
            return deny(verdict, "audience", aud ? "aud does not name jwt-audience" : "the token has no aud");
    }
    if (!read_topics(payload, rules, verdict)) return false;
    if (exp) {
        const double until = std::min(*exp + leeway, latest_expiry);
        // Whole milliseconds: a double of seconds since 1970 cannot hold nanoseconds exactly.
        verdict.expires =
            std::chrono::system_clock::time_point(std::chrono::round<std::chrono::milliseconds>(seconds_d(until)));
    }
    verdict.subject = subject_of(payload);
    verdict.ok = true;
    verdict.reason.clear();
    verdict.detail.clear();
    return true;
}

}  // namespace crudcast::gateway::auth
