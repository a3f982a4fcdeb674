// The host side of a published port, "[ADDR:]HOSTPORT:GUESTPORT", as the
// user writes it for `--publish` and the run request carries it.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace zwrm::supervisor {

struct PortMapping {
  std::string host_address = "127.0.0.1";
  std::uint16_t host_port = 0;
  std::uint16_t guest_port = 0;
};

// Parses "[ADDR:]HOSTPORT:GUESTPORT"; ADDR is an IPv4 address or an IPv6
// address in brackets.
Result<PortMapping> parse_port_mapping(const std::string& text);
std::string format_port_mapping(const PortMapping& mapping);

}  // namespace zwrm::supervisor
