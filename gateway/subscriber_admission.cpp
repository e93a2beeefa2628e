// subscriber_admission.cpp: see subscriber_admission.hpp.
#include "gateway/subscriber_admission.hpp"

#include <algorithm>
#include <chrono>

#include "bus/bus.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "common/url.hpp"
#include "gateway/auth/forward_auth.hpp"
#include "gateway/auth/jwt_verifier.hpp"
#include "gateway/ws/topics.hpp"

namespace crudcast::gateway {

namespace http = beast::http;
using config::WsAuth;

namespace {

bool listed_origin(std::string_view origin, const std::vector<std::string>& allowed) {
    if (origin.ends_with('/')) origin.remove_suffix(1);
    return std::ranges::any_of(allowed, [&](const std::string& a) { return iequals(a, origin); });
}

// The subscription's topics as the admission reasons about them: `all`, or names.
auth::TopicRequest topic_request(std::string_view target) {
    const auto topics = topics_from_query(target).value_or(std::vector<std::string>{"all"});
    if (std::ranges::find(topics, "all") != topics.end()) return {true, {}};
    return {false, topics};
}

// The address a handshake counts against: the socket peer, or, behind a trusted proxy, the client
// that proxy names last in X-Forwarded-For (else every client would share the proxy's bucket).
std::string_view rate_key(const proxy::ProxyContext::HandshakeInfo& info) {
    if (!info.trusted_peer) return info.client_ip;
    for (const auto& [name, value] : info.forwarded) {
        if (name != "X-Forwarded-For") continue;
        std::string_view chain = value;  // "<client>, <proxy 1>, <peer>": the entry before the peer
        const auto last = chain.rfind(',');
        if (last == std::string_view::npos) return info.client_ip;
        chain = chain.substr(0, last);
        const auto before = chain.rfind(',');
        return trim(before == std::string_view::npos ? chain : chain.substr(before + 1));
    }
    return info.client_ip;
}

}  // namespace

BearerToken bearer_token(const http::request<http::buffer_body>& request) {
    BearerToken out;
    const auto headers = request.base().equal_range(http::field::authorization);
    const auto header_count = std::distance(headers.first, headers.second);
    if (header_count > 1) return {{}, "more than one Authorization header"};
    std::string_view from_header;
    if (header_count == 1) {
        const auto value = trim(headers.first->value());
        // Another scheme (Basic in front of a staging site) is not ours: the query may still carry one.
        if (value.size() > 7 && iequals(value.substr(0, 7), "bearer ")) from_header = trim(value.substr(7));
    }
    const auto query = url::query_values(request.target(), "access_token");
    if (!query) return {{}, "the query string is not valid"};
    if (query->size() > 1) return {{}, "access_token given more than once"};
    if (!from_header.empty() && !query->empty()) return {{}, "a token both in Authorization and in access_token"};
    out.token = !from_header.empty() ? std::string(from_header) : (query->empty() ? std::string() : query->front());
    return out;
}

bool same_origin(std::string_view origin, std::string_view host) {
    const auto url = url::parse_url(origin.ends_with('/') ? origin.substr(0, origin.size() - 1) : origin);
    const auto at = url::parse_authority(host);
    if (!url || !at || url->host.empty()) return false;
    const std::string_view default_port = ascii_lower(url->scheme) == "https" ? "443" : "80";
    const std::string_view origin_port = url->port && !url->port->empty() ? std::string_view(*url->port) : default_port;
    const std::string_view host_port = at->port && !at->port->empty() ? std::string_view(*at->port) : default_port;
    return iequals(url->host, at->host) && origin_port == host_port;
}

SubscriberAdmission::SubscriberAdmission(const config::Config& config, WebSocketCounters& counters)
    : config_(config), counters_(counters), limiter_(config.ws_handshake_rate, config.ws_handshake_burst) {
    if (config.ws_auth == WsAuth::jwt) jwt_ = std::make_unique<auth::JwtVerifier>(config);
    if (config.ws_auth == WsAuth::forward) forward_ = std::make_unique<auth::ForwardAuth>(config);
}

SubscriberAdmission::~SubscriberAdmission() = default;

std::string SubscriberAdmission::describe() const {
    if (jwt_) {
        const char* key = !config_.jwt_secret_file.empty()       ? "jwt-secret-file"
                          : !config_.jwt_public_key_file.empty() ? "jwt-public-key-file"
                                                                 : "jwt-jwks-file";
        return "jwt " + jwt_->algorithm() + " (" + key + ")";
    }
    if (forward_) {
        const auto ttl = config_.ws_auth_cache_ttl.count() == 0 ? std::string("off")
                                                                : config::format_duration(config_.ws_auth_cache_ttl);
        return "forward " + forward_->target_text() + " (cache " + ttl + ")";
    }
    return "none";
}

SubscriberAdmission::Admission SubscriberAdmission::refuse(unsigned status, std::string error, std::string detail,
                                                           std::string reason) {
    counters_.count_denied(reason);
    Admission a;
    a.status = status;
    a.error = std::move(error);
    a.detail = std::move(detail);
    a.reason = std::move(reason);
    return a;
}

asio::awaitable<SubscriberAdmission::Admission> SubscriberAdmission::admit(const Request& request,
                                                                           proxy::ProxyContext::HandshakeInfo info) {
    unsigned retry_after = 1;
    if (!limiter_.admit(rate_key(info), std::chrono::steady_clock::now(), &retry_after)) {
        auto a = refuse(429, "too_many_handshakes",
                        "more than " + std::to_string(config_.ws_handshake_rate) +
                            " handshakes a second from this address (ws-handshake-rate); retry later",
                        "rate_limited");
        a.headers.emplace_back("Retry-After", std::to_string(retry_after));
        co_return a;
    }
    const auto origin = request[http::field::origin];
    if (!origin.empty() && !config_.ws_allowed_origins.empty() && !listed_origin(origin, config_.ws_allowed_origins)) {
        // A browser page from elsewhere: refused, so it cannot read events with the user's access.
        co_return refuse(403, "origin_not_allowed",
                         "origin " + std::string(origin) + " may not subscribe (ws-allowed-origins)", "origin");
    }
    if (auto detail = subscription_refusal(request.target(), config_.ws_max_topics); !detail.empty())
        co_return refuse(400, "bad_request", std::move(detail), "bad_request");
    const auto last_event_id = request.find("Last-Event-ID");
    if (request.count("Last-Event-ID") > 1)
        co_return refuse(400, "bad_request", "Last-Event-ID is given more than once", "bad_request");
    if (auto resume = resume_position(request.target(), last_event_id == request.end() ? "" : last_event_id->value(),
                                      last_event_id != request.end());
        !resume.problem.empty())
        co_return refuse(400, "bad_request", std::move(resume.problem), "bad_request");
    const auto topics = topic_request(request.target());
    Admission result;
    if (jwt_) result = check_token(request, topics);
    if (forward_) result = co_await ask_api(request, info, topics);
    if (result.status != 0) co_return result;
    if (!counters_.reserve_subscriber(config_.ws_max_subscribers)) {
        co_return refuse(503, "too_many_subscribers",
                         "crudcast is at ws-max-subscribers (" + std::to_string(config_.ws_max_subscribers) + ")",
                         "too_many_subscribers");
    }
    co_return result;
}

SubscriberAdmission::Admission SubscriberAdmission::check_token(const Request& request,
                                                                const auth::TopicRequest& topics) {
    const auto bearer = bearer_token(request);
    const auto unauthorized = [&](std::string reason, std::string detail, bool invalid) {
        auto a = refuse(401, "unauthorized", std::move(detail), std::move(reason));
        a.headers.emplace_back("WWW-Authenticate", invalid ? R"(Bearer realm="crudcast", error="invalid_token")"
                                                           : R"(Bearer realm="crudcast")");
        return a;
    };
    if (!bearer.problem.empty()) return unauthorized("malformed", bearer.problem, true);
    if (bearer.token.empty())
        return unauthorized("token_missing", "send a token: Authorization: Bearer <token>, or ?access_token=", false);
    auto verdict = jwt_->verify(bearer.token, std::chrono::system_clock::now());
    if (!verdict.ok) {
        if (verdict.reason == "no_topics_claim" || verdict.reason == "bad_topics_claim")
            return refuse(403, "forbidden", std::move(verdict.detail), std::move(verdict.reason));
        return unauthorized(std::move(verdict.reason), std::move(verdict.detail), true);
    }
    if (const auto topic = auth::refused_topic(topics, verdict.topics); !topic.empty()) {
        return refuse(403, "forbidden",
                      topic == "all" ? "the token allows only some topics: name them with ?topic="
                                     : "the token does not allow topic " + topic,
                      "topic_not_allowed");
    }
    Admission a;
    a.grant.expires = verdict.expires;
    a.grant.who = std::move(verdict.subject);
    return a;
}

asio::awaitable<SubscriberAdmission::Admission> SubscriberAdmission::ask_api(
    const Request& request, const proxy::ProxyContext::HandshakeInfo& info, const auth::TopicRequest& topics) {
    auth::ForwardQuestion question;
    question.authorization = std::string(request[http::field::authorization]);
    const auto [first, last] = request.base().equal_range(http::field::cookie);
    for (auto it = first; it != last; ++it) {
        if (!question.cookie.empty()) question.cookie += "; ";
        question.cookie.append(it->value().data(), it->value().size());
    }
    const auto origin = request[http::field::origin];
    if (!question.cookie.empty() && !origin.empty() && config_.ws_allowed_origins.empty() &&
        !same_origin(origin, request[http::field::host])) {
        // Cookies ride along with any page's handshake: a foreign page must not subscribe as the user.
        co_return refuse(403, "origin_not_allowed",
                         "a handshake with cookies from origin " + std::string(origin) +
                             ", which is not this host (list it in ws-allowed-origins if it is yours)",
                         "origin");
    }
    question.forwarded = info.forwarded;
    question.topics = topics.all ? std::string() : join(topics.topics);
    question.request_id = std::string(info.request_id);
    const auto answer = co_await forward_->ask(question);
    using Kind = auth::ForwardAnswer::Kind;
    if (answer.kind == Kind::unavailable)
        co_return refuse(503, "auth_unavailable", "the auth endpoint gave no usable answer: " + answer.detail,
                         "auth_unavailable");
    if (answer.kind == Kind::deny) {
        const bool is_401 = answer.status == 401;
        auto a = refuse(is_401 ? 401 : 403, is_401 ? "unauthorized" : "forbidden",
                        "the API's auth endpoint answered " + std::to_string(answer.status),
                        is_401 ? "unauthorized" : "forbidden");
        if (is_401 && !answer.www_authenticate.empty())
            a.headers.emplace_back("WWW-Authenticate", answer.www_authenticate);
        co_return a;
    }
    auto allowed = answer.allow_topics;
    if (allowed) {
        // The API's names become subscriptions, log fields and metric labels: the same rules as the query's.
        std::erase_if(*allowed, [](const std::string& t) { return !topic_name_problem(t).empty() || t == "all"; });
        if (allowed->size() > config_.ws_max_topics) allowed->resize(config_.ws_max_topics);
    }
    auto granted = auth::narrow(topics, allowed);
    if (!granted.all && granted.topics.empty())
        co_return refuse(403, "forbidden", "the API allows none of the topics asked for", "topic_not_allowed");
    Admission a;
    if (allowed) a.grant.topics = std::move(granted.topics);
    co_return a;
}

}  // namespace crudcast::gateway
