// ws_frame.hpp: the header of an unmasked RFC 6455 frame as a server writes it (§5.2), in one place
// for the two layers that write frames: bus/ serializes each event once as a ready text frame, and
// gateway/ws/'s codec writes control and close frames.
#pragma once

#include <cstdint>
#include <string>

namespace crudcast {

// Appends FIN + `opcode`, then `payload_size` in the shortest of its three length forms (2, 4 or 10
// header bytes). No mask: servers never mask (§5.1).
inline void append_ws_frame_header(std::string& out, std::uint8_t opcode, std::uint64_t payload_size) {
    out += static_cast<char>(0x80 | opcode);
    int length_bytes = 0;
    if (payload_size < 126) {
        out += static_cast<char>(payload_size);
    } else if (payload_size <= 0xffff) {
        out += static_cast<char>(126);
        length_bytes = 2;
    } else {
        out += static_cast<char>(127);
        length_bytes = 8;
    }
    for (int shift = (length_bytes - 1) * 8; shift >= 0; shift -= 8)
        out += static_cast<char>((payload_size >> shift) & 0xff);
}

}  // namespace crudcast
