// subscriber_admission.hpp: who may subscribe, decided once per handshake at the ws path, before
// the 101: the browser origin, the handshake rate of the client's address, the topic list, the
// credential (ws-auth: none, a JWT, or the API's own answer), and a free subscriber place. Each
// refusal is an answer with a status, a small JSON body, a reason on the access line and a counter.
#pragma once

#include <memory>
#include <string>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>

#include "common/asio.hpp"
#include "config/config.hpp"
#include "gateway/auth/admission.hpp"
#include "gateway/ws/ws_counters.hpp"
#include "proxy/proxy_context.hpp"

namespace crudcast::gateway {

namespace auth {
class JwtVerifier;
class ForwardAuth;
}  // namespace auth

class SubscriberAdmission {
public:
    using Admission = proxy::ProxyContext::WebSocketAdmission;
    using Request = beast::http::request<beast::http::buffer_body>;

    // Reads the key files ws-auth names: throws config::ConfigError for a bad one.
    SubscriberAdmission(const config::Config& config, WebSocketCounters& counters);
    ~SubscriberAdmission();

    // Called on the worker thread of the handshake; may wait for the auth endpoint (forward).
    asio::awaitable<Admission> admit(const Request& request, proxy::ProxyContext::HandshakeInfo info);

    // One line for the start-up log: "jwt RS256 (jwt-jwks-file /etc/crudcast/jwks.json)".
    std::string describe() const;

private:
    Admission refuse(unsigned status, std::string error, std::string detail, std::string reason);
    // ws-auth jwt: the token's verdict and topics; `grant` filled when admitted.
    Admission check_token(const Request& request, const auth::TopicRequest& topics);
    asio::awaitable<Admission> ask_api(const Request& request, const proxy::ProxyContext::HandshakeInfo& info,
                                       const auth::TopicRequest& topics);

    const config::Config& config_;
    WebSocketCounters& counters_;
    auth::HandshakeLimiter limiter_;
    std::unique_ptr<auth::JwtVerifier> jwt_;
    std::unique_ptr<auth::ForwardAuth> forward_;
};

// The handshake's bearer token: from `Authorization: Bearer ...` or the `access_token` query
// parameter. Empty with no problem when there is none; a problem when it is ambiguous (both ways,
// repeated, another scheme).
struct BearerToken {
    std::string token;
    std::string problem;
};
BearerToken bearer_token(const beast::http::request<beast::http::buffer_body>& request);

// Whether `origin` ("https://app.example.com:8443") names the same host and port as `host` (the
// request's Host header), default ports included: what a same-site page's handshake carries.
bool same_origin(std::string_view origin, std::string_view host);

}  // namespace crudcast::gateway
