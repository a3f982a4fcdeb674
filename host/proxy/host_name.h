// Normalisation of the host part of a request target before it is matched
// against the egress policy, so that one host has exactly one spelling.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "host/proxy/address.h"

namespace zwrm::proxy {

// A connection target after normalisation.
struct Target {
  // Lower-case ASCII host name without a trailing dot, internationalised
  // labels as punycode ("xn--..."); or the formatted IP address when ip is set.
  std::string host;
  std::optional<IpAddress> ip;
  std::uint16_t port = 0;
};

// Normalises a raw host: percent-decoding, square brackets, trailing dot,
// case, and internationalised names to punycode (IDNA2008 with UTS #46
// mapping, as browsers do). Recognises IP literals in every spelling
// parse_ip_literal accepts. Rejects an empty host, characters that cannot
// appear in a host name (space, '/', '@', control bytes, '%' left after
// decoding), labels longer than 63 bytes and names longer than 253. A name
// whose last label is a number must be an IPv4 address ("1.2.3.256" is an
// error), as in the WHATWG URL Standard.
Result<Target> normalise_host(std::string_view raw, std::uint16_t port);

// Parses an authority "[userinfo@]host[:port]" as in a CONNECT target or an
// absolute URL, drops the userinfo, and normalises the host. default_port
// applies when no port is given; port 0 and ports above 65535 are errors, and
// so is a missing port when default_port is 0. An IPv6 host needs square
// brackets. Spaces, control bytes, '/', '?', '#' and '\' are rejected
// anywhere, so a caller that split a URL wrongly cannot smuggle a second host.
Result<Target> parse_authority(std::string_view authority, std::uint16_t default_port);

// Formats the target as "host:port", with brackets around an IPv6 address.
std::string format_target(const Target& target);

}  // namespace zwrm::proxy
