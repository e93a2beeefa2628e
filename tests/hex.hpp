// hex.hpp: bytes as "81 05 68" for test assertions that compare wire bytes readably.
#pragma once

#include <string>
#include <string_view>

namespace crudcast::test {

inline std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        if (!out.empty()) out += ' ';
        out += digits[c >> 4];
        out += digits[c & 0x0f];
    }
    return out;
}

}  // namespace crudcast::test
