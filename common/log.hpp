// log.hpp: crudcast's logger: one line per event, text (key=value) or JSON lines, to stderr.
// Each line is formatted in a thread-local buffer and written with a single write(2), so lines
// from different threads never interleave.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <new>
#include <span>
#include <string>
#include <string_view>

namespace crudcast::log {

enum class LogLevel { error, warn, info, debug, trace };
enum class LogFormat { text, json };

void configure(LogLevel level, LogFormat format);
LogLevel level();

inline bool enabled(LogLevel l) { return static_cast<int>(l) <= static_cast<int>(level()); }

// A key and its value. Numbers are written bare in JSON; strings quoted and escaped.
struct Field {
    Field(std::string_view k, std::string_view v) : key(k), text(v) {}
    Field(std::string_view k, const std::string& v) : key(k), text(v) {}
    Field(std::string_view k, const char* v) : key(k), text(v) {}
    Field(std::string_view k, std::int64_t v);
    Field(std::string_view k, std::uint64_t v);
    Field(std::string_view k, int v) : Field(k, static_cast<std::int64_t>(v)) {}
    Field(std::string_view k, unsigned v) : Field(k, static_cast<std::uint64_t>(v)) {}
    Field(std::string_view k, double v);  // written with 1 decimal (milliseconds)
    Field(std::string_view k, bool v) : key(k), text(v ? "true" : "false"), number(true) {}

    // Numbers are formatted into `storage`; a copy must point at its own storage.
    Field(const Field& other) : key(other.key), text(other.text), number(other.number) {
        std::memcpy(storage, other.storage, sizeof storage);
        if (other.owns_text())
            text = std::string_view(storage + (other.text.data() - other.storage), other.text.size());
    }
    Field& operator=(const Field& other) {
        if (this != &other) {
            this->~Field();
            new (this) Field(other);
        }
        return *this;
    }

    std::string_view key;
    std::string_view text;
    bool number = false;
    char storage[32] = {};

private:
    bool owns_text() const { return text.data() >= storage && text.data() < storage + sizeof storage; }
};

// Writes one line: `<time> <level> <message> key=value ...` or a JSON object.
void write(LogLevel level, std::string_view message, std::span<const Field> fields);
inline void write(LogLevel level, std::string_view message, std::initializer_list<Field> fields = {}) {
    write(level, message, std::span<const Field>(fields.begin(), fields.size()));
}

}  // namespace crudcast::log
