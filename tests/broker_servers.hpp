// broker_servers.hpp: a real nats-server (JetStream) or redis-server on a free loopback port, for
// the tests of several crudcast instances on one broker. CI installs both (deploy/install-deps.sh).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "testkit.hpp"

namespace crudcast::testkit {

class BrokerServer {
public:
    enum class Kind { nats, redis };

    explicit BrokerServer(Kind kind) : kind_(kind), port_(free_port()) {
        char dir[] = "/tmp/crudcast-broker-XXXXXX";
        if (mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir_ = dir;
        start();
    }
    ~BrokerServer() {
        process_.reset();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    // What --bus says to reach it.
    std::string url() const {
        return (kind_ == Kind::nats ? "nats://127.0.0.1:" : "redis://127.0.0.1:") + std::to_string(port_);
    }
    std::string_view name() const { return kind_ == Kind::nats ? "nats" : "redis"; }

    // Starts it (again, on the same port; NATS keeps its JetStream store across restarts, Redis
    // runs without persistence, so its streams are gone after a restart) and waits until it is ready.
    void start() {
        if (kind_ == Kind::nats) {
            process_ = std::make_unique<ChildProcess>(
                "/usr/sbin/nats-server",
                std::vector<std::string>{"-js", "-a", "127.0.0.1", "-p", std::to_string(port_), "-sd", dir_});
            if (!process_->wait_for_stderr("Server is ready")) throw std::runtime_error("nats-server did not start");
        } else {
            process_ = std::make_unique<ChildProcess>(
                "/usr/bin/redis-server", std::vector<std::string>{"--port", std::to_string(port_), "--bind",
                                                                  "127.0.0.1", "--save", "", "--appendonly", "no"});
            if (!process_->wait_for_stdout("Ready to accept connections"))
                throw std::runtime_error("redis-server did not start");
        }
    }
    // SIGKILL: the broker vanishes without a goodbye, as when its machine dies.
    void kill() { process_.reset(); }

private:
    Kind kind_;
    std::uint16_t port_;
    std::string dir_;
    std::unique_ptr<ChildProcess> process_;
};

}  // namespace crudcast::testkit
