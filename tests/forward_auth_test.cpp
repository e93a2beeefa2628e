// forward_auth_test.cpp: ws-auth forward's client (gateway/auth/forward_auth) against an auth endpoint on
// an ephemeral loopback port: a cpp-httplib server for well-formed answers, a raw Asio acceptor for broken
// ones. Each question runs as a coroutine on an io_context of the test's own.
#include "gateway/auth/forward_auth.hpp"

#include <httplib.h>

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include "common/asio.hpp"

namespace {

using namespace std::chrono_literals;
using namespace crudcast;
using gateway::auth::ForwardAnswer;
using gateway::auth::ForwardAuth;
using gateway::auth::ForwardQuestion;
using Kind = ForwardAnswer::Kind;
using Clock = std::chrono::steady_clock;

// A config as `crudcast --upstream http://localhost:PORT --ws-auth forward ...` builds it. "localhost"
// makes the path form resolve a name (and try ::1 before 127.0.0.1, where the endpoint listens).
config::Config forward_config(std::uint16_t port, const std::string& url = "/auth/ws", const std::string& ttl = "0",
                              const std::string& timeout = "2s") {
    return config::parse({"--upstream", "http://localhost:" + std::to_string(port), "--ws-auth", "forward",
                          "--ws-auth-url", url, "--ws-auth-timeout", timeout, "--ws-auth-cache-ttl", ttl},
                         {})
        .config;
}

// A loopback port nothing listens on.
std::uint16_t closed_port() {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return acceptor.local_endpoint().port();
}

// Runs one question to its end on `io` (which may also run a raw endpoint).
ForwardAnswer ask(ForwardAuth& auth, const ForwardQuestion& question, asio::io_context& io) {
    std::optional<ForwardAnswer> answer;
    asio::co_spawn(io, auth.ask(question), [&](std::exception_ptr e, ForwardAnswer a) {
        if (e) std::rethrow_exception(e);
        answer = std::move(a);
    });
    io.run();
    io.restart();
    EXPECT_TRUE(answer.has_value());
    return answer.value_or(ForwardAnswer{});
}

ForwardAnswer ask(ForwardAuth& auth, const ForwardQuestion& question) {
    asio::io_context io;
    return ask(auth, question, io);
}

// Opened once (the slow endpoint's handler waits on it); opening twice is harmless.
class Gate {
public:
    void open() {
        std::call_once(once_, [this] { promise_.set_value(); });
    }
    void wait() const { future_.wait(); }

private:
    std::promise<void> promise_;
    std::shared_future<void> future_ = promise_.get_future().share();
    std::once_flag once_;
};

// A cpp-httplib auth endpoint that records every request it receives.
class AuthEndpoint {
public:
    AuthEndpoint() {
        port_ = static_cast<std::uint16_t>(server_.bind_to_any_port("127.0.0.1"));
        thread_ = std::thread([this] { server_.listen_after_bind(); });
    }
    ~AuthEndpoint() {
        gate.open();
        // stop() only stops a server whose accept loop has started; the thread starts it at once.
        while (!server_.is_running()) std::this_thread::yield();
        server_.stop();
        thread_.join();
    }
    std::uint16_t port() const { return port_; }

    // GET `path` answers with what `respond` sets, after recording the request.
    void on(const std::string& path, std::function<void(httplib::Response&)> respond) {
        server_.Get(path, [this, respond](const httplib::Request& req, httplib::Response& res) {
            {
                std::lock_guard lock(mutex_);
                seen_.push_back(req);
            }
            respond(res);
        });
    }
    // GET `path` answers `status` with the given headers.
    void answer(const std::string& path, int status, httplib::Headers headers = {}) {
        on(path, [status, headers](httplib::Response& res) {
            res.status = status;
            for (const auto& [name, value] : headers) res.set_header(name.c_str(), value);
        });
    }

    std::size_t hits() const {
        std::lock_guard lock(mutex_);
        return seen_.size();
    }
    httplib::Request last() const {
        std::lock_guard lock(mutex_);
        return seen_.empty() ? httplib::Request{} : seen_.back();
    }

    Gate gate;

private:
    httplib::Server server_;
    std::uint16_t port_ = 0;
    std::thread thread_;
    mutable std::mutex mutex_;
    std::vector<httplib::Request> seen_;
};

ForwardQuestion question(std::string authorization = "Bearer abc", std::string topics = "") {
    ForwardQuestion q;
    q.authorization = std::move(authorization);
    q.topics = std::move(topics);
    q.request_id = "rid-1";
    return q;
}

TEST(ForwardAuth, A2xxAnswerAllowsAndDoesNotNarrowWithoutTheHeader) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 204);
    ForwardAuth auth(forward_config(endpoint.port()));
    const auto a = ask(auth, question());
    EXPECT_EQ(a.kind, Kind::allow);
    EXPECT_EQ(a.status, 204u);
    EXPECT_FALSE(a.allow_topics.has_value());
    EXPECT_EQ(a.detail, "auth endpoint answered 204");
    EXPECT_FALSE(a.cached);
}

TEST(ForwardAuth, A401DeniesAndKeepsWwwAuthenticateToPassBack) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 401, {{"WWW-Authenticate", "Bearer realm=\"api\", error=\"invalid_token\""}});
    ForwardAuth auth(forward_config(endpoint.port()));
    const auto a = ask(auth, question());
    EXPECT_EQ(a.kind, Kind::deny);
    EXPECT_EQ(a.status, 401u);
    EXPECT_EQ(a.www_authenticate, "Bearer realm=\"api\", error=\"invalid_token\"");
    EXPECT_EQ(a.detail, "auth endpoint answered 401");
}

TEST(ForwardAuth, A403DeniesWithItsStatus) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 403, {{"WWW-Authenticate", "Bearer"}});
    ForwardAuth auth(forward_config(endpoint.port()));
    const auto a = ask(auth, question());
    EXPECT_EQ(a.kind, Kind::deny);
    EXPECT_EQ(a.status, 403u);
    EXPECT_EQ(a.www_authenticate, "");  // kept only with a 401
}

TEST(ForwardAuth, TheAllowTopicsHeaderNarrows) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 200, {{"X-Crudcast-Allow-Topics", " author, Book"}});
    ForwardAuth auth(forward_config(endpoint.port()));
    const auto a = ask(auth, question("Bearer abc", "author,book,tag"));
    EXPECT_EQ(a.kind, Kind::allow);
    ASSERT_TRUE(a.allow_topics.has_value());
    EXPECT_EQ(*a.allow_topics, (std::vector<std::string>{"author", "book"}));
}

TEST(ForwardAuth, AnEmptyAllowTopicsHeaderAllowsNoTopicRatherThanEvery) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 200, {{"X-Crudcast-Allow-Topics", ""}});
    ForwardAuth auth(forward_config(endpoint.port()));
    const auto a = ask(auth, question());
    EXPECT_EQ(a.kind, Kind::allow);
    ASSERT_TRUE(a.allow_topics.has_value());
    EXPECT_TRUE(a.allow_topics->empty());
}

TEST(ForwardAuth, AStarInTheAllowTopicsHeaderIsEveryTopic) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 200, {{"X-Crudcast-Allow-Topics", "author,*"}});
    ForwardAuth auth(forward_config(endpoint.port()));
    EXPECT_FALSE(ask(auth, question()).allow_topics.has_value());
}

TEST(ForwardAuth, OtherStatusesAreUnavailable) {
    for (int status : {500, 503, 404, 400, 101}) {
        AuthEndpoint endpoint;
        endpoint.answer("/auth/ws", status);
        ForwardAuth auth(forward_config(endpoint.port()));
        const auto a = ask(auth, question());
        EXPECT_EQ(a.kind, Kind::unavailable) << status;
        EXPECT_EQ(a.status, static_cast<unsigned>(status));
        EXPECT_EQ(a.detail, "auth endpoint answered " + std::to_string(status));
    }
}

TEST(ForwardAuth, ARedirectIsUnavailableAndNotFollowed) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 302, {{"Location", "/login"}});
    endpoint.answer("/login", 200);
    ForwardAuth auth(forward_config(endpoint.port()));
    const auto a = ask(auth, question());
    EXPECT_EQ(a.kind, Kind::unavailable);
    EXPECT_EQ(a.status, 302u);
    EXPECT_EQ(endpoint.hits(), 1u);
    EXPECT_EQ(endpoint.last().path, "/auth/ws");
}

TEST(ForwardAuth, AnEndpointThatIsDownIsUnavailable) {
    ForwardAuth auth(forward_config(closed_port()));
    const auto a = ask(auth, question());
    EXPECT_EQ(a.kind, Kind::unavailable);
    EXPECT_EQ(a.status, 0u);
    EXPECT_EQ(a.detail, "connect: Connection refused");
}

TEST(ForwardAuth, AnUnknownHostIsUnavailable) {
    auto config = forward_config(closed_port(), "http://no-such-host.invalid/auth");
    ForwardAuth auth(config);
    const auto a = ask(auth, question());
    EXPECT_EQ(a.kind, Kind::unavailable);
    EXPECT_TRUE(a.detail.starts_with("cannot resolve no-such-host.invalid") || a.detail.starts_with("no answer within"))
        << a.detail;
}

TEST(ForwardAuth, ASlowEndpointIsUnavailableWithinAboutTheTimeout) {
    AuthEndpoint endpoint;
    endpoint.on("/auth/ws", [&](httplib::Response& res) {
        endpoint.gate.wait();  // opened when the test ends
        res.status = 200;
    });
    ForwardAuth auth(forward_config(endpoint.port(), "/auth/ws", "10s", "300ms"));
    const auto start = Clock::now();
    const auto a = ask(auth, question());
    const auto took = Clock::now() - start;
    EXPECT_EQ(a.kind, Kind::unavailable);
    EXPECT_EQ(a.detail, "no answer within 300ms");
    EXPECT_GE(took, 290ms);
    EXPECT_LT(took, 900ms);
    endpoint.gate.open();
}

TEST(ForwardAuth, TheEndpointReceivesCredentialsForwardedHeadersTopicsAndRequestId) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 200);
    ForwardAuth auth(forward_config(endpoint.port(), "/auth/ws?v=1"));
    ForwardQuestion q = question("Bearer abc.def", "author,book");
    q.cookie = "session=s1; theme=dark";
    q.forwarded = {{"X-Forwarded-For", "10.0.0.7"}, {"X-Forwarded-Proto", "http"}, {"X-Forwarded-Host", "app:8080"}};
    q.request_id = "req-42";
    ASSERT_EQ(ask(auth, q).kind, Kind::allow);
    const auto req = endpoint.last();
    EXPECT_EQ(req.method, "GET");
    EXPECT_EQ(req.path, "/auth/ws");  // the path as written, not under the upstream's base path
    EXPECT_EQ(req.get_param_value("v"), "1");
    EXPECT_EQ(req.get_header_value("Host"), "localhost:" + std::to_string(endpoint.port()));
    EXPECT_EQ(req.get_header_value("Authorization"), "Bearer abc.def");
    EXPECT_EQ(req.get_header_value("Cookie"), "session=s1; theme=dark");
    EXPECT_EQ(req.get_header_value("X-Forwarded-For"), "10.0.0.7");
    EXPECT_EQ(req.get_header_value("X-Forwarded-Proto"), "http");
    EXPECT_EQ(req.get_header_value("X-Forwarded-Host"), "app:8080");
    EXPECT_EQ(req.get_header_value("X-Crudcast-Topics"), "author,book");
    EXPECT_EQ(req.get_header_value("X-Request-ID"), "req-42");
    EXPECT_EQ(req.get_header_value("Connection"), "close");
    EXPECT_FALSE(req.has_header("Content-Length"));
    EXPECT_FALSE(req.has_header("Transfer-Encoding"));
    EXPECT_EQ(req.body, "");
}

TEST(ForwardAuth, AFullUrlGoesToItsOwnHostWithItsAuthorityAsHost) {
    AuthEndpoint endpoint;
    endpoint.answer("/check", 200);
    const std::string url = "http://127.0.0.1:" + std::to_string(endpoint.port()) + "/check";
    ForwardAuth auth(forward_config(closed_port(), url));  // the upstream is down: not asked
    EXPECT_EQ(auth.target_text(), url);
    EXPECT_EQ(ask(auth, question()).kind, Kind::allow);
    EXPECT_EQ(endpoint.last().get_header_value("Host"), "127.0.0.1:" + std::to_string(endpoint.port()));
}

TEST(ForwardAuth, TargetTextNamesThePathOnTheUpstream) {
    ForwardAuth auth(forward_config(3000));
    EXPECT_EQ(auth.target_text(), "http://localhost:3000/auth/ws");
}

TEST(ForwardAuth, WithoutACacheEveryQuestionReachesTheEndpoint) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 200);
    ForwardAuth auth(forward_config(endpoint.port()));
    EXPECT_FALSE(ask(auth, question()).cached);
    EXPECT_FALSE(ask(auth, question()).cached);
    EXPECT_EQ(endpoint.hits(), 2u);
    EXPECT_EQ(auth.cache_size(), 0u);
}

TEST(ForwardAuth, TheCacheAnswersASecondIdenticalQuestion) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 200, {{"X-Crudcast-Allow-Topics", "author"}});
    ForwardAuth auth(forward_config(endpoint.port(), "/auth/ws", "1m"));
    ForwardQuestion q = question("Bearer abc", "author");
    q.cookie = "session=s1";
    const auto first = ask(auth, q);
    q.request_id = "rid-2";  // not part of the key
    const auto second = ask(auth, q);
    EXPECT_EQ(endpoint.hits(), 1u);
    EXPECT_FALSE(first.cached);
    EXPECT_TRUE(second.cached);
    EXPECT_EQ(second.kind, Kind::allow);
    EXPECT_EQ(second.status, 200u);
    EXPECT_EQ(second.allow_topics, first.allow_topics);
}

TEST(ForwardAuth, TheCacheKeepsDenialsWithTheirChallenge) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 401, {{"WWW-Authenticate", "Bearer"}});
    ForwardAuth auth(forward_config(endpoint.port(), "/auth/ws", "1m"));
    ask(auth, question());
    const auto a = ask(auth, question());
    EXPECT_EQ(endpoint.hits(), 1u);
    EXPECT_TRUE(a.cached);
    EXPECT_EQ(a.kind, Kind::deny);
    EXPECT_EQ(a.status, 401u);
    EXPECT_EQ(a.www_authenticate, "Bearer");
}

TEST(ForwardAuth, TheCacheTellsApartTopicsAuthorizationAndCookie) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 200);
    ForwardAuth auth(forward_config(endpoint.port(), "/auth/ws", "1m"));
    ForwardQuestion with_cookie = question("Bearer abc", "author");
    with_cookie.cookie = "session=s1";
    // The same bytes split differently between the three parts are different questions too.
    ForwardQuestion shifted = question("Bearer ab", "cauthor");
    for (const auto& q : {question("Bearer abc", "author"), question("Bearer abc", "book"),
                          question("Bearer xyz", "author"), with_cookie, shifted})
        EXPECT_FALSE(ask(auth, q).cached);
    EXPECT_EQ(endpoint.hits(), 5u);
    EXPECT_TRUE(ask(auth, with_cookie).cached);
    EXPECT_EQ(endpoint.hits(), 5u);
}

TEST(ForwardAuth, ACachedAnswerExpiresWithTheInjectedClock) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 200);
    auto now = Clock::now();
    ForwardAuth auth(forward_config(endpoint.port(), "/auth/ws", "30s"), [&now] { return now; });
    ask(auth, question());
    now += 29s;
    EXPECT_TRUE(ask(auth, question()).cached);
    now += 1s;
    EXPECT_FALSE(ask(auth, question()).cached);
    EXPECT_EQ(endpoint.hits(), 2u);
    EXPECT_TRUE(ask(auth, question()).cached);  // the fresh answer is kept again
}

TEST(ForwardAuth, AnUnavailableAnswerIsNotCached) {
    AuthEndpoint endpoint;
    std::atomic<int> status{503};
    endpoint.on("/auth/ws", [&status](httplib::Response& res) { res.status = status.load(); });
    ForwardAuth auth(forward_config(endpoint.port(), "/auth/ws", "1m"));
    EXPECT_EQ(ask(auth, question()).kind, Kind::unavailable);
    EXPECT_EQ(auth.cache_size(), 0u);
    status = 200;
    const auto a = ask(auth, question());
    EXPECT_EQ(a.kind, Kind::allow);
    EXPECT_FALSE(a.cached);
    EXPECT_EQ(endpoint.hits(), 2u);
}

TEST(ForwardAuth, ExpiredEntriesAreEvictedWhenAnotherIsStored) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 200);
    auto now = Clock::now();
    ForwardAuth auth(forward_config(endpoint.port(), "/auth/ws", "10s"), [&now] { return now; });
    ask(auth, question("Bearer a"));
    ask(auth, question("Bearer b"));
    EXPECT_EQ(auth.cache_size(), 2u);
    now += 10s;
    ask(auth, question("Bearer c"));
    EXPECT_EQ(auth.cache_size(), 1u);
}

// A raw endpoint for answers no HTTP library would send: accepts one connection, reads the request
// head, writes `reply` and closes.
asio::awaitable<void> raw_endpoint(tcp::acceptor& acceptor, std::string reply, std::string* request) {
    auto socket = co_await acceptor.async_accept(asio::use_awaitable);
    co_await asio::async_read_until(socket, asio::dynamic_buffer(*request), "\r\n\r\n", asio::use_awaitable);
    if (!reply.empty()) co_await asio::async_write(socket, asio::buffer(reply), asio::use_awaitable);
    socket.close();
}

ForwardAnswer ask_raw(const std::string& reply, const ForwardQuestion& q = question(), std::string* request = nullptr) {
    std::string ignored;
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const auto url = "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/auth";
    ForwardAuth auth(forward_config(closed_port(), url));
    asio::co_spawn(io, raw_endpoint(acceptor, reply, request ? request : &ignored), asio::detached);
    return ask(auth, q, io);
}

TEST(ForwardAuth, BrokenAnswersAreUnavailable) {
    struct Row {
        const char* reply;
        const char* detail;
    };
    const Row rows[] = {
        {"", "closed without answering"},
        {"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed answer: "},
        {"HTTP/1.1 2000 OK\r\n\r\n", "malformed answer: "},
        {"SSH-2.0-OpenSSH_9.2\r\n\r\n", "malformed answer: "},
        // The status is fine but the body is cut short: not a whole answer.
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "closed before the answer ended"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed answer: "},
    };
    for (const auto& row : rows) {
        const auto a = ask_raw(row.reply);
        EXPECT_EQ(a.kind, Kind::unavailable) << row.reply;
        EXPECT_TRUE(a.detail.starts_with(row.detail)) << row.reply << " -> " << a.detail;
    }
}

TEST(ForwardAuth, AnAnswerEndingAtCloseWithoutLengthIsWhole) {
    EXPECT_EQ(ask_raw("HTTP/1.1 200 OK\r\nX-Crudcast-Allow-Topics: book\r\n\r\nok").kind, Kind::allow);
}

// On the wire: cpp-httplib 0.11 drops a header whose value is empty, so it could not tell an empty
// Cookie or Authorization header from none.
TEST(ForwardAuth, WithoutCredentialsNoCookieOrAuthorizationIsSentAndAnEmptyTopicsHeaderAsksForAll) {
    std::string request;
    EXPECT_EQ(ask_raw("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", question("", ""), &request).kind, Kind::allow);
    EXPECT_NE(request.find("\r\nX-Crudcast-Topics: \r\n"), std::string::npos) << request;
    EXPECT_EQ(request.find("Cookie"), std::string::npos) << request;
    EXPECT_EQ(request.find("Authorization"), std::string::npos) << request;
}

TEST(ForwardAuth, AHeadOver16KiBIsUnavailable) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 200, {{"X-Padding", std::string(17 * 1024, 'p')}});
    ForwardAuth auth(forward_config(endpoint.port()));
    const auto a = ask(auth, question());
    EXPECT_EQ(a.kind, Kind::unavailable);
    EXPECT_TRUE(a.detail.starts_with("malformed answer: ")) << a.detail;
}

TEST(ForwardAuth, ABodyOver64KiBIsNotReadToTheEndAndTheAnswerStands) {
    AuthEndpoint endpoint;
    // 128 KiB of body, then nothing until the test ends: waiting for the rest would run into the timeout.
    endpoint.on("/auth/ws", [&endpoint](httplib::Response& res) {
        res.status = 403;
        res.set_chunked_content_provider("text/plain", [&endpoint](std::size_t offset, httplib::DataSink& sink) {
            if (offset < 128 * 1024) return sink.write(std::string(16 * 1024, 'b').data(), 16 * 1024);
            endpoint.gate.wait();
            return false;
        });
    });
    ForwardAuth auth(forward_config(endpoint.port()));
    const auto start = Clock::now();
    const auto a = ask(auth, question());
    EXPECT_EQ(a.kind, Kind::deny) << a.detail;
    EXPECT_EQ(a.status, 403u);
    EXPECT_LT(Clock::now() - start, 1s);
    endpoint.gate.open();
}

TEST(ForwardAuth, QuestionsFromSeveralThreadsShareOneCache) {
    AuthEndpoint endpoint;
    endpoint.answer("/auth/ws", 200);
    ForwardAuth auth(forward_config(endpoint.port(), "/auth/ws", "1m"));
    std::atomic<int> allowed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 20; ++i)
                if (ask(auth, question("Bearer " + std::to_string(i % 4))).kind == Kind::allow) ++allowed;
        });
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(allowed.load(), 80);
    EXPECT_EQ(auth.cache_size(), 4u);
    EXPECT_GE(endpoint.hits(), 4u);
    EXPECT_LE(endpoint.hits(), 16u);  // at most every thread missing each of the 4 once
}

}  // namespace
