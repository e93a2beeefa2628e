// event_publisher.cpp: see event_publisher.hpp.
#include "gateway/events/event_publisher.hpp"

#include <charconv>
#include <memory>
#include <mutex>

#include "common/log.hpp"
#include "common/url.hpp"

namespace crudcast::gateway {

using config::LogLevel;

namespace {

long long content_length_of(const http::response_header<>& head) {
    const auto it = head.find(http::field::content_length);
    if (it == head.end()) return -1;
    long long n = -1;
    const auto v = it->value();
    auto r = std::from_chars(v.data(), v.data() + v.size(), n);
    return r.ec == std::errc() ? n : -1;
}

}  // namespace

EventPublisher::EventPublisher(const config::Config& config, bus::Bus& bus, EventCounters& counters)
    : config_(config), mapper_(config), bus_(bus), counters_(counters) {}

void EventPublisher::skip(const proxy::ObservedRequest& request, unsigned status, NoEventReason reason,
                          const std::string& detail, proxy::NoteFields& note) {
    counters_.count_skip(reason);
    const auto& row = describe(reason);
    std::string shown = reason == NoEventReason::status ? "status-" + std::to_string(status) : std::string(row.name);
    // The warn lines carry what fixes them; the debug line says which reason and why.
    if (reason == NoEventReason::reserved) {
        const auto target = url::redact_query_value(request.target, "access_token");
        log::write(row.level, row.message, {{"rid", request.request_id}, {"target", target}});
    } else if (reason == NoEventReason::too_large) {
        log::write(
            row.level, row.message,
            {{"rid", request.request_id}, {"max_event_bytes", static_cast<std::uint64_t>(config_.max_event_bytes)}});
    } else if (log::enabled(row.level)) {
        log::write(row.level, row.message, {{"rid", request.request_id}, {"reason", shown}, {"detail", detail}});
    }
    note.emplace_back("event", "none");
    note.emplace_back("reason", std::move(shown));
}

bool EventPublisher::may_publish(const proxy::ObservedRequest& request) const {
    // Conservative: a request in doubt is never cancelled when its client leaves (the write is
    // still read and published). Without route rules the method alone decides (a POST to a path
    // with no model is not cancelled); the full path check cost ~3k instructions a request.
    return mapper_.might_publish(request.method, request.target);
}

std::size_t EventPublisher::on_response_head(const proxy::ObservedRequest& request, const http::response_header<>& head,
                                             proxy::NoteFields& note) {
    const auto reason = mapper_.precheck(request.method, request.target, head.result_int(),
                                         std::string_view(head[http::field::content_type]), content_length_of(head));
    if (reason) {
        skip(request, head.result_int(), *reason, "decided from the response head", note);
        return 0;
    }
    return config_.max_event_bytes;
}

asio::awaitable<proxy::EventOutcome> EventPublisher::on_response_complete(const proxy::ObservedRequest& request,
                                                                          const http::response_header<>& head,
                                                                          std::string_view body, bool overflow,
                                                                          proxy::NoteFields& note) {
    Exchange exchange;
    exchange.method = request.method;
    exchange.target = request.target;
    exchange.status = head.result_int();
    exchange.content_type = std::string_view(head[http::field::content_type]);
    exchange.body = body;
    exchange.body_too_large = overflow;
    auto result = mapper_.map(exchange);
    if (!result.event) {
        skip(request, exchange.status, result.reason.value_or(NoEventReason::other), result.detail, note);
        co_return proxy::EventOutcome{};
    }
    const std::string label = result.event->model + "/" + result.event->method;
    counters_.count_published(result.event->model, result.event->method);
    std::string id = result.event->id_json;
    if (id.size() >= 2 && id.front() == '"') id = id.substr(1, id.size() - 2);  // readable in the log
    if (log::enabled(LogLevel::debug) && !result.detail.empty())
        log::write(LogLevel::debug, "event mapping", {{"rid", request.request_id}, {"detail", result.detail}});
    note.emplace_back("event", label);
    note.emplace_back("id", std::move(id));
    std::optional<bus::PublishResult> published;
    if (bus_.asynchronous()) {
        published = co_await publish_and_wait(std::move(*result.event));
    } else {
        published = bus_.publish(std::move(*result.event));
    }
    if (!published || !published->appended) {
        note.emplace_back("bus", published ? "lost" : "late");
        co_return proxy::EventOutcome{std::nullopt, true};
    }
    note.emplace_back("seq", std::to_string(published->seq));
    note.emplace_back("subs", std::to_string(published->subscribers));
    co_return proxy::EventOutcome{published->seq, false};
}

asio::awaitable<std::optional<bus::PublishResult>> EventPublisher::publish_and_wait(bus::Event event) {
    // The bus completes on its own thread; the wait is a timer on this session's thread, cut short
    // by a handler posted there. The thread runs one io_context alone, so that handler cannot run
    // before this coroutine waits.
    struct Wait {
        explicit Wait(const asio::any_io_executor& executor) : timer(executor) {}
        asio::steady_timer timer;
        std::mutex mutex;
        std::optional<bus::PublishResult> result;
    };
    auto wait = std::make_shared<Wait>(co_await asio::this_coro::executor);
    wait->timer.expires_after(config_.bus_publish_timeout);
    bus_.publish_async(std::move(event), [wait](const bus::PublishResult& r) {
        {
            std::lock_guard lock(wait->mutex);
            wait->result = r;
        }
        asio::post(wait->timer.get_executor(), [wait] { wait->timer.cancel(); });
    });
    co_await wait->timer.async_wait(use_nothrow);
    std::lock_guard lock(wait->mutex);
    // Not delivered here in time: the response leaves now; the event still goes out when it comes.
    if (!wait->result) bus_.count_late();
    co_return wait->result;
}

}  // namespace crudcast::gateway
