// subscriber_shard.cpp: see subscriber_shard.hpp.
#include "gateway/ws/subscriber_shard.hpp"

#include <algorithm>

#include "gateway/ws/pass_slicing.hpp"
#include "gateway/ws/websocket_session.hpp"

namespace crudcast::gateway {

SubscriberShard::SubscriberShard(asio::any_io_executor executor, const config::Config& config, bus::InMemoryBus& bus,
                                 std::size_t index, WebSocketCounters& counters)
    : executor_(std::move(executor)), config_(config), bus_(bus), index_(index), counters_(counters) {}

SubscriberShard::Registration SubscriberShard::add_session(WebSocketSession* session) {
    return sessions_.insert(sessions_.end(), session);
}

void SubscriberShard::remove_session(Registration registration) { sessions_.erase(registration); }

void SubscriberShard::drain() {
    // Copy: going away may end a session, which unregisters itself from the list.
    const std::vector<WebSocketSession*> sessions(sessions_.begin(), sessions_.end());
    for (auto* session : sessions) session->go_away();
}

std::uint64_t SubscriberShard::subscribe(WebSocketSession* session) {
    const auto& topics = session->topics();
    auto& subscription = session->subscription();
    const bool all = topics.size() == 1 && topics.front() == "all";
    subscription.start(log_.end_index(), all);
    if (all) {
        ++all_subscribers_;
    } else {
        for (const auto& topic : topics) {
            const auto id = acquire_topic(topic);
            by_topic_[id].push_back(session);
            subscription.add_topic(id);
        }
    }
    subscribed_.push_back(session);
    return bus_.subscribe(index_, topics);
}

std::uint32_t SubscriberShard::acquire_topic(const std::string& topic) {
    auto [it, added] = topic_ids_.try_emplace(topic, 0);
    if (added) {
        if (free_topic_ids_.empty()) {
            it->second = static_cast<std::uint32_t>(by_topic_.size());
            by_topic_.emplace_back();
            topic_names_.emplace_back();
        } else {
            it->second = free_topic_ids_.back();
            free_topic_ids_.pop_back();
        }
        topic_names_[it->second] = topic;
    }
    return it->second;
}

void SubscriberShard::unsubscribe(WebSocketSession* session) {
    if (auto it = std::find(subscribed_.begin(), subscribed_.end(), session); it != subscribed_.end()) {
        // A pass in progress must not skip the session that moves into this one's place.
        if (pass_posted_ && static_cast<std::size_t>(it - subscribed_.begin()) < pass_next_) --pass_next_;
        subscribed_.erase(it);
    }
    const auto& subscription = session->subscription();
    if (subscription.all()) {
        --all_subscribers_;
    } else {
        for (const auto id : subscription.topic_ids()) release_topic(id, session);
    }
    if (subscribed_.empty()) log_.trim(log_.end_index());
    bus_.unsubscribe(index_, session->topics());
}

void SubscriberShard::release_topic(std::uint32_t id, WebSocketSession* session) {
    std::erase(by_topic_[id], session);
    if (by_topic_[id].empty()) {
        // A later subscriber of another topic may get this id: it starts at the log's end,
        // after every entry tagged with the old topic.
        topic_ids_.erase(topic_names_[id]);
        topic_names_[id].clear();
        free_topic_ids_.push_back(id);
    }
}

void SubscriberShard::on_events(const std::vector<bus::Delivery>& events) {
    bool grew = false;
    for (const auto& event : events) {
        if (event.seq == 0) {
            // A gap marker (the bus lost events): for every subscriber, whatever its topics. A
            // copy: queueing may complete a write that ends a session, which unsubscribes it.
            const std::vector<WebSocketSession*> all(subscribed_.begin(), subscribed_.end());
            for (auto* session : all) session->on_bus_gap(*event.frame);
            continue;
        }
        std::uint32_t id = no_topic;
        if (auto it = topic_ids_.find(event.model); it != topic_ids_.end()) id = it->second;
        if (id == no_topic && all_subscribers_ == 0) continue;  // nobody on this thread wants it
        log_.append(*event.frame, event.seq, id);
        grew = true;
        if (id != no_topic) {
            for (auto* session : by_topic_[id]) session->subscription().count_appended(event.frame->size());
        }
    }
    if (!grew || pass_posted_) return;  // a pass in progress reaches every session
    begin_pass();
    run_pass();
}

void SubscriberShard::begin_pass() {
    pass_next_ = 0;
    pass_keep_ = log_.end_index();
    pass_posted_ = true;
}

void SubscriberShard::run_pass() {
    // A pass lets every subscriber write what it has not sent (a write the kernel takes whole
    // completes in place). It runs in slices bounded by time, each a handler of its own queued
    // behind the I/O that is ready by then, so that the thread's HTTP requests and the events that
    // arrive meanwhile wait for one slice at most, not for the pass (pass_slicing.hpp).
    const SliceBudget budget(SliceBudget::Clock::now());
    for (std::size_t served = 0; pass_next_ < subscribed_.size();) {
        auto* session = subscribed_[pass_next_++];
        session->on_log_grew();
        if (session->holds_log()) pass_keep_ = std::min(pass_keep_, session->subscription().cursor());
        if (budget.spent(++served, SliceBudget::Clock::now())) break;
    }
    if (pass_next_ < subscribed_.size()) {
        after_ready_io(executor_, [self = shared_from_this()] { self->run_pass(); });
        return;
    }
    end_pass();
}

void SubscriberShard::end_pass() {
    pass_posted_ = false;
    // Sessions visited before frames were appended during this pass get another pass.
    const bool again = std::any_of(subscribed_.begin(), subscribed_.end(),
                                   [&](const WebSocketSession* s) { return s->can_send_more(log_.end_index()); });
    log_.trim(pass_keep_);
    if (again) {
        begin_pass();
        after_ready_io(executor_, [self = shared_from_this()] { self->run_pass(); });
    }
}

}  // namespace crudcast::gateway
