// IP addresses as the egress policy sees them: parsing of IP literals in
// every spelling that resolvers and browsers accept, CIDR ranges, and the
// special-purpose ranges that are never reached without an explicit rule.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace zwrm::proxy {

// An IPv4 or IPv6 address. IPv4 addresses use the first 4 bytes of bytes.
struct IpAddress {
  enum class Family : std::uint8_t { kV4, kV6 };
  Family family = Family::kV4;
  std::array<std::uint8_t, 16> bytes{};

  bool operator==(const IpAddress&) const = default;
};

// Parses text as an IP literal, or returns nullopt when it is not one (it is
// then a host name). Accepts every IPv4 form inet_aton(3) accepts: dotted
// quad, fewer parts (127.1, 10.1.1), one 32-bit number in decimal
// (2130706433), hex (0x7f000001) or octal (017700000001), and parts in hex
// or octal (0x7f.0.0.1, 0177.0.0.1). Accepts IPv6 with or without square
// brackets. An IPv4-mapped (::ffff:a.b.c.d) or IPv4-compatible IPv6 address
// is returned as the IPv4 address, so a rule or range check sees the
// address a connection would really reach. A zone id (%eth0) is rejected.
std::optional<IpAddress> parse_ip_literal(std::string_view text);

// Formats 127.0.0.1 or 2001:db8::1 (no brackets).
std::string format_ip(const IpAddress& address);

struct Cidr {
  IpAddress base;  // with the host bits cleared
  int prefix = 0;  // 0..32 for IPv4, 0..128 for IPv6

  // Compares an IPv4-mapped IPv6 address (::ffff:a.b.c.d, as a resolver may
  // return it) as its IPv4 address, because a dual-stack socket reaches that.
  bool contains(const IpAddress& address) const;
  bool operator==(const Cidr&) const = default;
};

// Parses "10.0.0.0/8", "192.0.2.7" (a /32), "fd00::/8", "[fd00::1]" (a
// /128). The address part must be a canonical dotted quad or IPv6 text, not
// one of the odd spellings above: a rule is written by a person and should
// read as what it matches. Host bits set below the prefix are an error, and
// so is an IPv6 range inside the IPv4-mapped or IPv4-compatible space, whose
// addresses are checked as IPv4.
Result<Cidr> parse_cidr(std::string_view text);

// Formats as "10.0.0.0/8"; a full-length prefix keeps its "/32" or "/128".
std::string format_cidr(const Cidr& cidr);

// Returns the name of the special-purpose range that contains address
// ("loopback", "private", "link-local", "carrier-grade NAT", "unique-local",
// "multicast", "unspecified", "metadata", "reserved", "documentation",
// "benchmarking", "broadcast", "6to4", "Teredo", "NAT64", "discard-only"),
// or nullopt for an ordinary public address. Sources: the IANA IPv4 and IPv6
// Special-Purpose Address Registries (RFC 6890). IPv6 outside 2000::/3 that
// no entry names is "reserved". An IPv4-mapped address is classified as its
// IPv4 address, as in Cidr::contains.
std::optional<std::string_view> special_range(const IpAddress& address);

}  // namespace zwrm::proxy
