// nats_broker_naming.cpp: the stream name and subject tokens of the NATS JetStream client. See nats_broker.hpp.
#include <cstdint>

#include "bus/nats_broker.hpp"

namespace crudcast::bus::nats {

namespace {

bool escaped(unsigned char c) { return c <= 0x20 || c >= 0x7f || c == '.' || c == '*' || c == '>' || c == '%'; }

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;  // lower case is never written, so it is never read back: one spelling per model
}

}  // namespace

std::string stream_name(std::string_view prefix) {
    std::string name;
    name.reserve(prefix.size());
    for (const char c : prefix) {
        if (c >= 'a' && c <= 'z') {
            name += static_cast<char>(c - 'a' + 'A');
        } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-') {
            name += c;
        } else {
            name += '_';
        }
    }
    return name;
}

std::string subject_token(std::string_view model) {
    if (model.empty()) return "%";
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string token;
    token.reserve(model.size());
    for (const char c : model) {
        const auto byte = static_cast<unsigned char>(c);
        if (!escaped(byte)) {
            token += c;
            continue;
        }
        token += '%';
        token += digits[byte >> 4];
        token += digits[byte & 0xf];
    }
    return token;
}

std::optional<std::string> model_from_token(std::string_view token) {
    if (token == "%") return std::string();
    if (token.empty()) return std::nullopt;
    std::string model;
    model.reserve(token.size());
    for (std::size_t i = 0; i < token.size(); ++i) {
        const auto byte = static_cast<unsigned char>(token[i]);
        if (byte != '%') {
            if (escaped(byte)) return std::nullopt;  // subject_token never leaves one raw
            model += token[i];
            continue;
        }
        if (i + 2 >= token.size()) return std::nullopt;
        const int high = hex_value(token[i + 1]);
        const int low = hex_value(token[i + 2]);
        if (high < 0 || low < 0) return std::nullopt;
        const auto decoded = static_cast<unsigned char>(high * 16 + low);
        if (!escaped(decoded)) return std::nullopt;  // "%41" is not how "A" is written
        model += static_cast<char>(decoded);
        i += 2;
    }
    return model;
}

bool valid_subject_prefix(std::string_view prefix) {
    if (prefix.empty() || prefix.front() == '.' || prefix.back() == '.') return false;
    char previous = 0;
    for (const char c : prefix) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte <= 0x20 || byte == 0x7f || c == '*' || c == '>') return false;
        if (c == '.' && previous == '.') return false;
        previous = c;
    }
    return true;
}

}  // namespace crudcast::bus::nats
