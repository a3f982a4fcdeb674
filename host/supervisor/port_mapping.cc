#include "host/supervisor/port_mapping.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <string_view>

namespace zwrm::supervisor {

namespace {

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

}  // namespace

Result<PortMapping> parse_port_mapping(const std::string& text) {
  const auto invalid = [&](const std::string& why) {
    return fail("invalid --publish " + text + ": " + why + "; expected [ADDR:]HOSTPORT:GUESTPORT, e.g. 8080:80");
  };
  PortMapping mapping;
  std::string rest = text;
  if (!rest.empty() && rest.front() == '[') {
    const std::size_t close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':') return invalid("unclosed [");
    mapping.host_address = rest.substr(1, close - 1);
    rest = rest.substr(close + 2);
  } else if (std::count(rest.begin(), rest.end(), ':') == 2) {
    mapping.host_address = rest.substr(0, rest.find(':'));
    rest = rest.substr(rest.find(':') + 1);
  }
  const std::size_t colon = rest.find(':');
  if (colon == std::string::npos) return invalid("missing the guest port");
  const auto host_port = parse_port(rest.substr(0, colon));
  const auto guest_port = parse_port(rest.substr(colon + 1));
  if (!host_port || !guest_port) return invalid("ports are numbers from 1 to 65535");
  mapping.host_port = *host_port;
  mapping.guest_port = *guest_port;
  in6_addr scratch{};
  if (::inet_pton(AF_INET, mapping.host_address.c_str(), &scratch) != 1 &&
      ::inet_pton(AF_INET6, mapping.host_address.c_str(), &scratch) != 1) {
    return invalid("the host address must be an IP address");
  }
  return mapping;
}

std::string format_port_mapping(const PortMapping& mapping) {
  const bool v6 = mapping.host_address.find(':') != std::string::npos;
  return (v6 ? "[" + mapping.host_address + "]" : mapping.host_address) + ":" + std::to_string(mapping.host_port) +
         ":" + std::to_string(mapping.guest_port);
}

}  // namespace zwrm::supervisor
