// admin_token_test.cpp: the admin listener's bearer token (admin-token-file) over real sockets:
// every path but /healthz, /readyz and the static page answers 401 with WWW-Authenticate without
// the token or with a wrong one, and as before with it; the refusal's log line never holds a token;
// the token file's rules; and a bad token file is a config error (exit 2, one line).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <rapidjson/document.h>

#include "config/config.hpp"
#include "gateway/admin/admin_server.hpp"
#include "testkit.hpp"

namespace crudcast {
namespace {

using namespace testkit;

constexpr std::string_view token = "s3cret-admin-t0ken_ABC.def~42";

// A file in a fresh temporary directory, removed with it.
class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "crudcast-token-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string write(const std::string& name, std::string_view bytes) const {
        const auto file = (path_ / name).string();
        std::ofstream(file, std::ios::binary) << bytes;
        return file;
    }
    std::string path(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

std::string admin_get(std::string_view target, std::string_view extra_headers) {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + std::string(extra_headers) + "\r\n";
}

class AdminToken : public ::testing::Test {
protected:
    void SetUp() override {
        upstream_ = std::make_unique<RawUpstream>([](const RecordedRequest&) {
            HeaderList h;
            h.items.emplace_back("Content-Type", "application/json");
            return UpstreamReply{UpstreamReply::Kind::respond, http_response(200, "OK", h, "{}"), {}, false};
        });
        auto cfg = test_config(upstream_->port());
        cfg.admin_listen = config::Endpoint{"127.0.0.1", 0};
        cfg.admin_token_file = dir_.write("token", std::string(token) + "\n");
        gateway_ = start_gateway(cfg);
        admin_ = gateway_->admin_port();
        ASSERT_NE(admin_, 0);
    }

    TempDir dir_;
    std::unique_ptr<RawUpstream> upstream_;
    std::unique_ptr<gateway::Gateway> gateway_;
    std::uint16_t admin_ = 0;
};

TEST_F(AdminToken, EveryAdminPathButTheProbesAndThePageNeedsIt) {
    const std::string right = "Authorization: Bearer " + std::string(token) + "\r\n";
    for (const auto* path : {"/metrics", "/api/stats", "/api/requests", "/api/info", "/api/stats?x=1", "/nope"}) {
        SCOPED_TRACE(path);
        const auto refused = exchange(admin_, admin_get(path, ""));
        EXPECT_EQ(refused.status, 401u);
        EXPECT_EQ(refused.headers.get("WWW-Authenticate"), "Bearer realm=\"crudcast-admin\"");
        EXPECT_EQ(refused.headers.get("Content-Type"), "application/json");
        rapidjson::Document body;
        body.Parse(refused.body.c_str(), refused.body.size());
        ASSERT_FALSE(body.HasParseError()) << refused.body;
        EXPECT_STREQ(body["error"].GetString(), "unauthorized");
        EXPECT_EQ(refused.body.find(token), std::string::npos);
        // With it, the answer is what it was before there were tokens.
        EXPECT_EQ(exchange(admin_, admin_get(path, right)).status, std::string_view(path) == "/nope" ? 404u : 200u);
    }
    // The kubelet's probes and the static page (it holds no data; its /api calls send the token).
    EXPECT_EQ(exchange(admin_, admin_get("/healthz", "")).status, 200u);
    EXPECT_NE(exchange(admin_, admin_get("/readyz", "")).status, 401u);
    const auto page = exchange(admin_, admin_get("/", ""));
    EXPECT_EQ(page.status, 200u);
    EXPECT_NE(page.body.find("#token="), std::string::npos);  // it says how to hand it the token
    EXPECT_EQ(upstream_->request_count(), 0u);
}

TEST_F(AdminToken, AWrongOrMalformedTokenIsRefused) {
    const std::string t(token);
    std::string one_byte_off = t;
    one_byte_off.back() = '3';
    for (const std::string& header : std::vector<std::string>{
             "Authorization: Bearer " + one_byte_off, "Authorization: Bearer " + t + "x",
             "Authorization: Bearer " + t.substr(0, t.size() - 1), "Authorization: Bearer", "Authorization: Bearer ",
             "Authorization: Basic " + t, "Authorization: " + t,
             "Authorization: Bearer " + t + "\r\nAuthorization: Bearer " + t, "X-Authorization: Bearer " + t}) {
        SCOPED_TRACE(header);
        EXPECT_EQ(exchange(admin_, admin_get("/metrics", header + "\r\n")).status, 401u);
    }
    // The scheme is case-insensitive (RFC 9110); surrounding spaces are not part of the token.
    for (const std::string& header :
         std::vector<std::string>{"Authorization: bearer " + t, "Authorization: BEARER   " + t + "  "}) {
        SCOPED_TRACE(header);
        EXPECT_EQ(exchange(admin_, admin_get("/metrics", header + "\r\n")).status, 200u);
    }
}

TEST(AdminTokenFile, OneTrailingNewlineIsStrippedAndBadFilesAreConfigErrors) {
    const TempDir dir;
    EXPECT_EQ(gateway::read_admin_token(dir.write("a", "abc\n")), "abc");
    EXPECT_EQ(gateway::read_admin_token(dir.write("b", "abc")), "abc");
    EXPECT_EQ(gateway::read_admin_token(dir.write("c", "abc\r\n")), "abc");
    const auto error_of = [](const std::string& path) {
        try {
            (void)gateway::read_admin_token(path);
        } catch (const config::ConfigError& e) {
            EXPECT_EQ(e.setting, "admin-token-file");
            return e.problem;
        }
        return std::string("no error");
    };
    EXPECT_NE(error_of(dir.write("d", "")).find("is empty"), std::string::npos);
    EXPECT_NE(error_of(dir.write("e", "\n")).find("is empty"), std::string::npos);
    EXPECT_NE(error_of(dir.write("f", "abc\n\n")).find("control character"), std::string::npos);
    EXPECT_NE(error_of(dir.write("g", "a b")).find("space"), std::string::npos);
    EXPECT_NE(error_of(dir.path("missing")).find("cannot read"), std::string::npos);
    EXPECT_NE(error_of(dir.path("")).find("directory"), std::string::npos);
}

// From the real binary: a bad token file stops start-up with exit 2 and one line, like any setting.
TEST(AdminTokenFile, AnUnreadableOrEmptyFileExitsWithCode2AndOneLine) {
    const TempDir dir;
    for (const auto& file : {dir.path("missing"), dir.write("empty", "")}) {
        SCOPED_TRACE(file);
        ChildProcess crudcast(CRUDCAST_BINARY, {"--listen", "127.0.0.1:0", "--upstream",
                                                "http://127.0.0.1:" + std::to_string(free_port()), "--admin-listen",
                                                "127.0.0.1:0", "--admin-token-file", file});
        EXPECT_EQ(crudcast.wait(), 2);
        const auto err = crudcast.stderr_text();
        EXPECT_NE(err.find("crudcast: invalid setting admin-token-file: "), std::string::npos) << err;
        EXPECT_EQ(err.find("crudcast started"), std::string::npos) << err;
    }
}

// The refusal is one debug line with the client and the path, never the token or the guess.
TEST(AdminTokenFile, TheRefusalIsLoggedWithoutAnyToken) {
    const TempDir dir;
    const auto admin_port = free_port();
    ChildProcess crudcast(CRUDCAST_BINARY,
                          {"--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:" + std::to_string(free_port()),
                           "--admin-listen", "127.0.0.1:" + std::to_string(admin_port), "--admin-token-file",
                           dir.write("token", token), "--log-level", "debug"});
    ASSERT_TRUE(crudcast.wait_for_stderr("crudcast started")) << crudcast.stderr_text();
    const std::string guess = "Authorization: Bearer my-guess-0123456789\r\n";
    EXPECT_EQ(exchange(admin_port, admin_get("/api/stats?q=query-secret", guess)).status, 401u);
    const auto line = crudcast.wait_for_stderr("admin request refused");
    ASSERT_TRUE(line) << crudcast.stderr_text();
    EXPECT_NE(line->find("reason=wrong"), std::string::npos) << *line;
    EXPECT_NE(line->find("path=/api/stats"), std::string::npos) << *line;
    EXPECT_EQ(exchange(admin_port, admin_get("/api/info", "")).status, 401u);
    ASSERT_TRUE(crudcast.wait_for_stderr("reason=missing")) << crudcast.stderr_text();
    const auto err = crudcast.stderr_text();
    EXPECT_EQ(err.find(token), std::string::npos);
    EXPECT_EQ(err.find("my-guess"), std::string::npos);
    EXPECT_EQ(err.find("query-secret"), std::string::npos);
}

}  // namespace
}  // namespace crudcast
