// log.cpp: formatting and writing of log lines (see log.hpp).
#include "common/log.hpp"
#include "common/json_text.hpp"

#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace crudcast::log {
namespace {

std::atomic<LogLevel> g_level{LogLevel::info};
std::atomic<LogFormat> g_format{LogFormat::text};

const char* level_name(LogLevel l) {
    switch (l) {
        case LogLevel::error: return "error";
        case LogLevel::warn: return "warn";
        case LogLevel::info: return "info";
        case LogLevel::debug: return "debug";
        case LogLevel::trace: return "trace";
    }
    return "?";
}

// "2026-11-27T20:45:01.123Z"; the date part is cached per thread per second.
void append_time(std::string& out) {
    using namespace std::chrono;
    thread_local std::time_t cached_second = -1;
    thread_local char cached[32];
    const auto now = system_clock::now();
    const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count();
    const std::time_t sec = static_cast<std::time_t>(ms / 1000);
    if (sec != cached_second) {
        std::tm tm{};
        gmtime_r(&sec, &tm);
        std::strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_second = sec;
    }
    char frac[8];
    std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms % 1000));
    out.append(cached).append(frac);
}

bool needs_quotes(std::string_view v) {
    if (v.empty()) return true;
    for (unsigned char c : v)
        if (c <= ' ' || c == '"' || c == '\\' || c == '=' || c >= 0x7f) return true;
    return false;
}

}  // namespace

Field::Field(std::string_view k, std::int64_t v) : key(k), number(true) {
    auto r = std::to_chars(storage, storage + sizeof storage, v);
    text = std::string_view(storage, static_cast<std::size_t>(r.ptr - storage));
}

Field::Field(std::string_view k, std::uint64_t v) : key(k), number(true) {
    auto r = std::to_chars(storage, storage + sizeof storage, v);
    text = std::string_view(storage, static_cast<std::size_t>(r.ptr - storage));
}

Field::Field(std::string_view k, double v) : key(k), number(true) {
    auto r = std::to_chars(storage, storage + sizeof storage, v, std::chars_format::fixed, 1);
    text = std::string_view(storage, static_cast<std::size_t>(r.ptr - storage));
}

void configure(LogLevel level, LogFormat format) {
    g_level.store(level, std::memory_order_relaxed);
    g_format.store(format, std::memory_order_relaxed);
}

LogLevel level() { return g_level.load(std::memory_order_relaxed); }

void write(LogLevel lvl, std::string_view message, std::span<const Field> fields) {
    if (!enabled(lvl)) return;
    thread_local std::string line;
    line.clear();
    if (g_format.load(std::memory_order_relaxed) == LogFormat::json) {
        line += "{\"time\":\"";
        append_time(line);
        line += "\",\"level\":\"";
        line += level_name(lvl);
        line += "\",\"msg\":\"";
        append_json_escaped(line, message);
        line += '"';
        for (const Field& f : fields) {
            line += ",\"";
            line += f.key;
            line += "\":";
            if (f.number) {
                line += f.text;
            } else {
                line += '"';
                append_json_escaped(line, f.text);
                line += '"';
            }
        }
        line += "}\n";
    } else {
        append_time(line);
        line += ' ';
        line += level_name(lvl);
        line += ' ';
        line += message;
        for (const Field& f : fields) {
            line += ' ';
            line += f.key;
            line += '=';
            if (!f.number && needs_quotes(f.text)) {
                line += '"';
                append_json_escaped(line, f.text);
                line += '"';
            } else {
                line += f.text;
            }
        }
        line += '\n';
    }
    // One write per line: atomic with respect to other threads' lines on pipes up to PIPE_BUF
    // and on regular files opened with O_APPEND; a short write (full pipe) is completed.
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
        ssize_t n = ::write(STDERR_FILENO, p, left);
        if (n <= 0) break;
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

}  // namespace crudcast::log
