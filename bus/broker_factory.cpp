// broker_factory.cpp: picks the broker client for a bus URL. See broker.hpp.
#include <stdexcept>

#include "bus/broker.hpp"

namespace crudcast::bus {

std::unique_ptr<BrokerClient> make_broker_client(const BrokerOptions& options) {
    const auto& url = options.url;
    if (url.starts_with("nats://") || url.starts_with("tls://")) return make_nats_client(options);
    if (url.starts_with("redis://")) return make_redis_client(options);
    throw std::invalid_argument("is not memory, nats://host:port, tls://host:port or redis://host:port");
}

}  // namespace crudcast::bus

// Interim, while the clients are being merged: weak definitions the real ones replace.
namespace crudcast::bus {
[[gnu::weak]] std::unique_ptr<BrokerClient> make_nats_client(const BrokerOptions&) {
    throw std::invalid_argument("NATS is not built into this crudcast yet");
}
[[gnu::weak]] std::unique_ptr<BrokerClient> make_redis_client(const BrokerOptions&) {
    throw std::invalid_argument("Redis is not built into this crudcast yet");
}
}  // namespace crudcast::bus
