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

