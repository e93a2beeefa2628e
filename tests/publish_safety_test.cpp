// publish_safety_test.cpp: the safe publishing defaults over real sockets, against the real
// crudcast binary: a login through crudcast gives its client the upstream's answer, token and all,
// but no subscriber an event, and its access line says reason=never-publish; a write whose answer
// echoes a password reaches the client whole and subscribers without the password.
#include <gtest/gtest.h>

#include <rapidjson/document.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include "testkit.hpp"

namespace crudcast {
namespace {

using namespace testkit;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;

constexpr std::string_view login_answer = R"({"user":"ada","token":"eyJ.login-token.sig","expires_in":3600})";
constexpr std::string_view author_answer =
    R"({"id":7,"name":"Ada","password":"hunter2","keys":[{"name":"ci","secret":"s-1"}]})";

// The upstream a new user would put behind crudcast: a login route that hands out a token, and a
// create that echoes what it stored, password included.
UpstreamReply api(const RecordedRequest& r) {
    HeaderList h;
    h.items.emplace_back("Content-Type", "application/json");
    const auto body = r.target.starts_with("/api/login") ? login_answer : author_answer;
    return UpstreamReply{UpstreamReply::Kind::respond, http_response(200, "OK", h, body), {}, false};
}

// A WebSocket subscriber whose reads give up after default_timeout instead of hanging the test.
class Subscriber {
public:
    Subscriber(std::uint16_t port, const std::string& target) : ws_(io_) {
        ws_.next_layer().connect({boost::asio::ip::make_address("127.0.0.1"), port});
        ws_.handshake("127.0.0.1", target);
    }
    std::string next() {
        boost::beast::flat_buffer buffer;
        bool done = false;
        boost::beast::error_code ec;
        ws_.async_read(buffer, [&](boost::beast::error_code e, std::size_t) {
            ec = e;
            done = true;
        });
        io_.run_for(default_timeout);
        if (!done) throw std::runtime_error("no event within the timeout");
        if (ec) throw boost::beast::system_error(ec);
        io_.restart();
        return boost::beast::buffers_to_string(buffer.data());
    }

private:
    boost::asio::io_context io_;
    websocket::stream<tcp::socket> ws_;
};

std::string post(std::string_view target, std::string_view rid, std::string_view body) {
    return "POST " + std::string(target) + " HTTP/1.1\r\nHost: test\r\nX-Request-ID: " + std::string(rid) +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
           std::string(body);
}

class PublishSafety : public ::testing::Test {
protected:
    void SetUp() override {
        port_ = free_port();
        crudcast_ = std::make_unique<ChildProcess>(
            CRUDCAST_BINARY, std::vector<std::string>{"--listen", "127.0.0.1:" + std::to_string(port_), "--upstream",
                                                      "http://127.0.0.1:" + std::to_string(upstream_.port()),
                                                      "--admin-listen", "off", "--threads", "1"});
        ASSERT_TRUE(crudcast_->wait_for_stderr("crudcast started")) << crudcast_->stderr_text();
    }

    RawUpstream upstream_{api};
    std::uint16_t port_ = 0;
    std::unique_ptr<ChildProcess> crudcast_;
};

TEST_F(PublishSafety, ALoginAnswersItsClientButPublishesNothing) {
    Subscriber sub(port_, "/ws");
    const auto login = exchange(port_, post("/api/login", "rid-login", R"({"user":"ada","password":"pw"})"));
    EXPECT_EQ(login.status, 200u);
    EXPECT_EQ(login.body, login_answer);  // the token reaches the one who logged in, unchanged
    const auto line = crudcast_->wait_for_stderr("rid=rid-login");
    ASSERT_TRUE(line) << crudcast_->stderr_text();
    EXPECT_NE(line->find("event=none reason=never-publish"), std::string::npos) << *line;

    // A marker write: had the login made an event, it would arrive first (one topic, one order).
    EXPECT_EQ(exchange(port_, post("/api/authors", "rid-marker", "{}")).status, 200u);
    const auto first = sub.next();
    rapidjson::Document event;
    event.Parse(first.c_str(), first.size());
    ASSERT_FALSE(event.HasParseError()) << first;
    EXPECT_STREQ(event["model"].GetString(), "author") << first;
    EXPECT_EQ(first.find("login-token"), std::string::npos) << first;
}

TEST_F(PublishSafety, ARedactedMemberReachesTheClientButNoSubscriber) {
    Subscriber sub(port_, "/ws?topic=author");
    const auto created = exchange(port_, post("/api/authors", "rid-author", R"({"name":"Ada","password":"hunter2"})"));
    EXPECT_EQ(created.status, 200u);
    EXPECT_EQ(created.body, author_answer);  // the HTTP answer is the upstream's, byte for byte

    const auto raw = sub.next();
    rapidjson::Document event;
    event.Parse(raw.c_str(), raw.size());
    ASSERT_FALSE(event.HasParseError()) << raw;
    EXPECT_EQ(event["id"].GetInt(), 7);
    const auto& payload = event["payload"];
    EXPECT_STREQ(payload["name"].GetString(), "Ada");
    EXPECT_FALSE(payload.HasMember("password")) << raw;
    ASSERT_TRUE(payload["keys"].IsArray()) << raw;
    EXPECT_STREQ(payload["keys"][0]["name"].GetString(), "ci");
    EXPECT_FALSE(payload["keys"][0].HasMember("secret")) << raw;
    EXPECT_EQ(raw.find("hunter2"), std::string::npos) << raw;
    EXPECT_EQ(raw.find("s-1"), std::string::npos) << raw;
}

}  // namespace
}  // namespace crudcast
