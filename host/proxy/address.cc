#include "host/proxy/address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "common/printable.h"

namespace zwrm::proxy {
namespace {

using Family = IpAddress::Family;

constexpr int kMaxPrefix4 = 32;
constexpr int kMaxPrefix6 = 128;

int max_prefix(Family family) { return family == Family::kV4 ? kMaxPrefix4 : kMaxPrefix6; }

IpAddress make_v4(std::uint32_t value) {
  IpAddress address;
  address.family = Family::kV4;
  address.bytes[0] = static_cast<std::uint8_t>(value >> 24);
  address.bytes[1] = static_cast<std::uint8_t>(value >> 16);
  address.bytes[2] = static_cast<std::uint8_t>(value >> 8);
  address.bytes[3] = static_cast<std::uint8_t>(value);
  return address;
}

IpAddress v4_from_last_bytes(const IpAddress& v6) {
  IpAddress address;
  address.family = Family::kV4;
  for (int i = 0; i < 4; ++i) address.bytes[i] = v6.bytes[12 + i];
  return address;
}

bool first_bytes_zero(const IpAddress& address, int count) {
  for (int i = 0; i < count; ++i) {
    if (address.bytes[i] != 0) return false;
  }
  return true;
}

// ::ffff:a.b.c.d. A dual-stack socket connecting to it reaches a.b.c.d.
bool is_v4_mapped(const IpAddress& address) {
  return address.family == Family::kV6 && first_bytes_zero(address, 10) && address.bytes[10] == 0xff &&
         address.bytes[11] == 0xff;
}

// ::a.b.c.d (deprecated by RFC 4291), except :: and ::1, which are IPv6
// addresses of their own.
bool is_v4_compatible(const IpAddress& address) {
  if (address.family != Family::kV6 || !first_bytes_zero(address, 12)) return false;
  return !first_bytes_zero(address, 15) || address.bytes[15] > 1;
}

// The address a connection to `address` reaches: the IPv4 address for an
// IPv4-mapped IPv6 address, the address itself otherwise.
IpAddress unmap(const IpAddress& address) { return is_v4_mapped(address) ? v4_from_last_bytes(address) : address; }

// Parses one part of an inet_aton(3) address: decimal, 0x-prefixed hex or
// 0-prefixed octal. Returns nullopt for an empty part, a bad digit or a value
// above 2^32 - 1.
std::optional<std::uint32_t> parse_aton_part(std::string_view part) {
  int base = 10;
  if (part.size() >= 2 && part[0] == '0' && (part[1] == 'x' || part[1] == 'X')) {
    base = 16;
    part.remove_prefix(2);
  } else if (part.size() >= 2 && part[0] == '0') {
    base = 8;
    part.remove_prefix(1);
  }
  // "0x" without digits is rejected, as glibc's inet_aton rejects it.
  if (part.empty()) return std::nullopt;

  std::uint64_t value = 0;
  for (char c : part) {
    int digit = 0;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (base == 16 && std::isxdigit(static_cast<unsigned char>(c))) {
      digit = std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
    } else {
      return std::nullopt;
    }
    if (digit >= base) return std::nullopt;
    value = value * static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(digit);
    if (value > 0xffffffffu) return std::nullopt;
  }
  return static_cast<std::uint32_t>(value);
}

// Parses the IPv4 forms of inet_aton(3): one to four parts, where every part
// but the last is one byte and the last part fills the remaining bytes.
std::optional<IpAddress> parse_aton(std::string_view text) {
  std::vector<std::uint32_t> parts;
  while (true) {
    const std::size_t dot = text.find('.');
    auto part = parse_aton_part(text.substr(0, dot));
    if (!part || parts.size() == 4) return std::nullopt;
    parts.push_back(*part);
    if (dot == std::string_view::npos) break;
    text.remove_prefix(dot + 1);
  }

  std::uint32_t value = 0;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i] > 0xff) return std::nullopt;
    value |= parts[i] << (8 * (3 - i));
  }
  const std::size_t last_bytes = 5 - parts.size();
  const std::uint64_t last_max = (std::uint64_t{1} << (8 * last_bytes)) - 1;
  if (parts.back() > last_max) return std::nullopt;
  return make_v4(value | parts.back());
}

std::optional<IpAddress> parse_v6(std::string_view text) {
  // inet_pton rejects a zone id ("%eth0") along with every other stray byte.
  if (text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  const std::string copy(text);
  IpAddress address;
  address.family = Family::kV6;
  if (inet_pton(AF_INET6, copy.c_str(), address.bytes.data()) != 1) return std::nullopt;
  return address;
}

// Parses a canonical dotted quad: four decimal bytes without leading zeros.
std::optional<IpAddress> parse_dotted_quad(std::string_view text) {
  if (text.size() >= INET_ADDRSTRLEN) return std::nullopt;
  const std::string copy(text);
  IpAddress address;
  address.family = Family::kV4;
  if (inet_pton(AF_INET, copy.c_str(), address.bytes.data()) != 1) return std::nullopt;
  if (format_ip(address) != text) return std::nullopt;
  return address;
}

std::optional<int> parse_prefix(std::string_view text, Family family) {
  if (text.empty() || text.size() > 3 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  int prefix = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    prefix = prefix * 10 + (c - '0');
  }
  if (prefix > max_prefix(family)) return std::nullopt;
  return prefix;
}

bool prefix_matches(const IpAddress& base, const IpAddress& address, int prefix) {
  const int full_bytes = prefix / 8;
  for (int i = 0; i < full_bytes; ++i) {
    if (base.bytes[i] != address.bytes[i]) return false;
  }
  const int rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (base.bytes[full_bytes] & mask) == (address.bytes[full_bytes] & mask);
}

IpAddress clear_host_bits(IpAddress address, int prefix) {
  const int bytes = address.family == Family::kV4 ? 4 : 16;
  for (int i = 0; i < bytes; ++i) {
    const int bits_kept = std::min(8, std::max(0, prefix - 8 * i));
    const auto mask = static_cast<std::uint8_t>(bits_kept == 0 ? 0 : 0xff << (8 - bits_kept));
    address.bytes[i] &= mask;
  }
  return address;
}

// Rejects an IPv6 range that lies inside the IPv4-mapped or IPv4-compatible
// space. parse_ip_literal turns such addresses into IPv4, so the range would
// never match. The message names the IPv4 range to write instead.
Status check_not_embedded_v4(const Cidr& cidr, const std::string& quoted) {
  if (cidr.base.family != Family::kV6 || cidr.prefix < 96) return {};
  const bool mapped = is_v4_mapped(cidr.base);
  const bool compatible = is_v4_compatible(cidr.base);
  if (!mapped && !compatible) return {};

  const Cidr v4{v4_from_last_bytes(cidr.base), cidr.prefix - 96};
  return fail("invalid address range " + quoted + ": it is inside the IPv4-" +
              (mapped ? "mapped" : "compatible") + " IPv6 space, which the proxy checks as IPv4; write " +
              format_cidr(v4) + " instead");
}

struct SpecialRange {
  Family family;
  std::array<std::uint8_t, 16> base;
  int prefix;
  std::string_view name;
};

// The IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and
// later updates), reduced to the ranges a guest must not reach by default,
// plus the cloud instance metadata addresses. The longest matching prefix
// wins, so "metadata" beats "link-local" for 169.254.169.254.
constexpr SpecialRange kSpecialRanges[] = {
    // 0.0.0.0/8 "this network". Linux connects 0.0.0.0 to the local host.
    {Family::kV4, {0}, 8, "unspecified"},
    {Family::kV4, {10}, 8, "private"},
    {Family::kV4, {100, 64}, 10, "carrier-grade NAT"},
    // Alibaba Cloud instance metadata.
    {Family::kV4, {100, 100, 100, 200}, 32, "metadata"},
    {Family::kV4, {127}, 8, "loopback"},
    {Family::kV4, {169, 254}, 16, "link-local"},
    // AWS, Azure, Google Cloud and others serve instance metadata here.
    {Family::kV4, {169, 254, 169, 254}, 32, "metadata"},
    {Family::kV4, {172, 16}, 12, "private"},
    // IETF protocol assignments (RFC 6890).
    {Family::kV4, {192, 0, 0}, 24, "reserved"},
    {Family::kV4, {192, 0, 2}, 24, "documentation"},
    // Deprecated 6to4 relay anycast (RFC 7526).
    {Family::kV4, {192, 88, 99}, 24, "6to4"},
    {Family::kV4, {192, 168}, 16, "private"},
    {Family::kV4, {198, 18}, 15, "benchmarking"},
    {Family::kV4, {198, 51, 100}, 24, "documentation"},
    {Family::kV4, {203, 0, 113}, 24, "documentation"},
    {Family::kV4, {224}, 4, "multicast"},
    {Family::kV4, {240}, 4, "reserved"},
    {Family::kV4, {255, 255, 255, 255}, 32, "broadcast"},

    {Family::kV6, {}, 128, "unspecified"},
    {Family::kV6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback"},
    {Family::kV6, {0x00, 0x64, 0xff, 0x9b}, 96, "NAT64"},
    // Local-use NAT64 (RFC 8215).
    {Family::kV6, {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, "NAT64"},
    {Family::kV6, {0x01, 0x00}, 64, "discard-only"},
    // IETF protocol assignments (RFC 2928). Teredo and others are inside.
    {Family::kV6, {0x20, 0x01}, 23, "reserved"},
    {Family::kV6, {0x20, 0x01, 0x00, 0x00}, 32, "Teredo"},
    {Family::kV6, {0x20, 0x01, 0x0d, 0xb8}, 32, "documentation"},
    {Family::kV6, {0x20, 0x02}, 16, "6to4"},
    // Documentation (RFC 9637).
    {Family::kV6, {0x3f, 0xff}, 20, "documentation"},
    {Family::kV6, {0xfc}, 7, "unique-local"},
    // AWS instance metadata over IPv6.
    {Family::kV6, {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54}, 128, "metadata"},
    {Family::kV6, {0xfe, 0x80}, 10, "link-local"},
    {Family::kV6, {0xff}, 8, "multicast"},
};

}  // namespace

std::optional<IpAddress> parse_ip_literal(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    auto address = parse_v6(text.substr(1, text.size() - 2));
    if (!address) return std::nullopt;
    if (is_v4_mapped(*address) || is_v4_compatible(*address)) return v4_from_last_bytes(*address);
    return address;
  }
  if (text.find(':') != std::string_view::npos) return parse_ip_literal("[" + std::string(text) + "]");
  return parse_aton(text);
}

std::string format_ip(const IpAddress& address) {
  if (address.family == Family::kV4) {
    return std::to_string(address.bytes[0]) + "." + std::to_string(address.bytes[1]) + "." +
           std::to_string(address.bytes[2]) + "." + std::to_string(address.bytes[3]);
  }
  char text[INET6_ADDRSTRLEN];
  ZWRM_CHECK(inet_ntop(AF_INET6, address.bytes.data(), text, sizeof text) != nullptr);
  return text;
}

bool Cidr::contains(const IpAddress& address) const {
  ZWRM_CHECK(prefix >= 0 && prefix <= max_prefix(base.family));
  const IpAddress reached = unmap(address);
  if (reached.family != base.family) return false;
  return prefix_matches(base, reached, prefix);
}

Result<Cidr> parse_cidr(std::string_view text) {
  const std::string quoted = "\"" + printable(text) + "\"";
  std::string_view body = text;
  const bool bracketed = body.size() >= 2 && body.front() == '[' && body.back() == ']';
  if (bracketed) body = body.substr(1, body.size() - 2);

  const std::size_t slash = body.find('/');
  const std::string_view address_text = body.substr(0, slash);
  const bool is_v6 = address_text.find(':') != std::string_view::npos;
  if (bracketed && !is_v6) {
    return fail("invalid address range " + quoted + ": square brackets are only for IPv6, as in [fd00::/8]");
  }

  std::optional<IpAddress> address = is_v6 ? parse_v6(address_text) : parse_dotted_quad(address_text);
  if (!address) {
    auto literal = is_v6 ? std::nullopt : parse_ip_literal(address_text);
    if (literal) {
      return fail("invalid address range " + quoted + ": write the address " + printable(address_text) +
                  " as the dotted quad " + format_ip(*literal));
    }
    return fail("invalid address range " + quoted +
                ": expected an IPv4 or IPv6 address with an optional prefix length, as in 10.0.0.0/8 or fd00::/8");
  }

  Cidr cidr{*address, max_prefix(address->family)};
  if (slash != std::string_view::npos) {
    auto prefix = parse_prefix(body.substr(slash + 1), address->family);
    if (!prefix) {
      return fail("invalid address range " + quoted + ": the prefix length must be a number from 0 to " +
                  std::to_string(max_prefix(address->family)));
    }
    cidr.prefix = *prefix;
  }

  const IpAddress cleared = clear_host_bits(cidr.base, cidr.prefix);
  if (cleared != cidr.base) {
    return fail("invalid address range " + quoted + ": host bits are set below the /" + std::to_string(cidr.prefix) +
                " prefix, so write the range as " + format_cidr(Cidr{cleared, cidr.prefix}));
  }
  if (auto embedded = check_not_embedded_v4(cidr, quoted); !embedded) return tl::unexpected(embedded.error());
  return cidr;
}

std::string format_cidr(const Cidr& cidr) { return format_ip(cidr.base) + "/" + std::to_string(cidr.prefix); }

std::optional<std::string_view> special_range(const IpAddress& address) {
  const IpAddress reached = unmap(address);
  const SpecialRange* best = nullptr;
  for (const SpecialRange& range : kSpecialRanges) {
    if (range.family != reached.family) continue;
    if (best != nullptr && best->prefix >= range.prefix) continue;
    if (prefix_matches(IpAddress{range.family, range.base}, reached, range.prefix)) best = &range;
  }
  if (best != nullptr) return best->name;

  // The IANA IPv6 Address Space registry assigns only 2000::/3 to global
  // unicast. Everything outside it that is not listed above (IPv4-compatible
  // ::/96, site-local fec0::/10, SRv6 SIDs 5f00::/16, unassigned space) is
  // not an ordinary internet destination, so it is reported as reserved.
  if (reached.family == Family::kV6 && (reached.bytes[0] & 0xe0) != 0x20) return "reserved";
  return std::nullopt;
}

}  // namespace zwrm::proxy
