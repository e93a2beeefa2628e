// frame_log.cpp: see frame_log.hpp.
#include "gateway/ws/frame_log.hpp"

#include <algorithm>
#include <cstring>

namespace crudcast::gateway {

namespace {
constexpr std::size_t max_spare_chunks = 4;
}

void FrameLog::append(std::string_view frame, std::uint64_t seq, std::uint32_t topic) {
    if (chunks_.empty() || chunks_.back().capacity - chunks_.back().used < frame.size()) {
        Chunk chunk;
        if (frame.size() <= chunk_bytes_ && !spare_.empty()) {
            chunk = std::move(spare_.back());
            spare_.pop_back();
        } else {
            chunk.capacity = std::max(chunk_bytes_, frame.size());
            chunk.bytes = std::make_unique_for_overwrite<char[]>(chunk.capacity);
        }
        chunk.used = 0;
        chunk.base = end_offset_;
        chunks_.push_back(std::move(chunk));
    }
    auto& chunk = chunks_.back();
    std::memcpy(chunk.bytes.get() + chunk.used, frame.data(), frame.size());
    chunk.used += frame.size();
    entries_.push_back({seq, end_offset_, static_cast<std::uint32_t>(frame.size()), topic});
    end_offset_ += frame.size();
}

const FrameLog::Chunk& FrameLog::chunk_at(std::uint64_t offset) const {
    // The last chunk whose base is <= offset.
    auto it = std::upper_bound(chunks_.begin(), chunks_.end(), offset,
                               [](std::uint64_t o, const Chunk& c) { return o < c.base; });
    return *std::prev(it);
}

const char* FrameLog::data(std::uint64_t index) const {
    const auto offset = entry(index).offset;
    const auto& chunk = chunk_at(offset);
    return chunk.bytes.get() + (offset - chunk.base);
}

void FrameLog::spans(std::uint64_t from, std::uint64_t to, std::vector<Span>& out) const {
    std::uint64_t begin = offset_of(from);
    const std::uint64_t end = offset_of(to);
    while (begin < end) {
        const auto& chunk = chunk_at(begin);
        const std::uint64_t stop = std::min<std::uint64_t>(end, chunk.base + chunk.used);
        out.push_back({chunk.bytes.get() + (begin - chunk.base), static_cast<std::size_t>(stop - begin)});
        begin = stop;
    }
}

void FrameLog::trim(std::uint64_t index) {
    index = std::clamp(index, first_index_, end_index());
    entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(index - first_index_));
    first_index_ = index;
    const std::uint64_t keep_from = offset_of(index);
    // The last chunk stays: appends continue in it.
    while (chunks_.size() > 1 && chunks_.front().base + chunks_.front().used <= keep_from) {
        if (chunks_.front().capacity == chunk_bytes_ && spare_.size() < max_spare_chunks) {
            spare_.push_back(std::move(chunks_.front()));
        }
        chunks_.pop_front();
    }
}

}  // namespace crudcast::gateway
