#include "host/proxy/host_name.h"

#include <idn2.h>

#include <cctype>
#include <memory>
#include <string>

#include "common/printable.h"

namespace zwrm::proxy {
namespace {

constexpr std::size_t kMaxLabelLength = 63;
constexpr std::size_t kMaxNameLength = 253;

std::string quote(std::string_view text) { return "\"" + printable(text) + "\""; }

int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes once. A '%' that is not followed by two hex digits is
// an error, and a '%' produced by decoding stays in the result, where the
// character check rejects it.
Result<std::string> percent_decode(std::string_view raw, const std::string& quoted) {
  std::string decoded;
  decoded.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '%') {
      decoded.push_back(raw[i]);
      continue;
    }
    const int high = i + 2 < raw.size() ? hex_digit_value(raw[i + 1]) : -1;
    const int low = high >= 0 ? hex_digit_value(raw[i + 2]) : -1;
    if (low < 0) return fail("invalid host " + quoted + ": '%' must start an escape such as %2D");
    decoded.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return decoded;
}

bool is_ascii(std::string_view text) {
  for (unsigned char c : text) {
    if (c >= 0x80) return false;
  }
  return true;
}

std::string to_lower_ascii(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

// Converts one label with IDNA2008 and UTS #46 mapping. Like browsers, it
// retries with transitional processing when nontransitional processing
// rejects a code point (emoji, for example).
Result<std::string> label_to_ascii(std::string_view label, const std::string& quoted) {
  const std::string input(label);
  char* output = nullptr;
  int rc = idn2_to_ascii_8z(input.c_str(), &output, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
  if (rc == IDN2_DISALLOWED) rc = idn2_to_ascii_8z(input.c_str(), &output, IDN2_TRANSITIONAL | IDN2_NFC_INPUT);
  const std::unique_ptr<char, decltype(&idn2_free)> owned(output, &idn2_free);
  if (rc != IDN2_OK) {
    return fail("invalid host " + quoted + ": label " + quote(label) +
                " is not a valid internationalised domain name (" + idn2_strerror(rc) + ")");
  }
  return std::string(output);
}

// Lower-cases ASCII labels and converts the others to punycode. A label that
// is already punycode ("xn--...") goes through libidn2 too, which rejects
// invalid punycode and returns it in its one canonical form. Other ASCII
// labels skip libidn2, because IDNA rejects real host names such as
// "r3---sn-abc.googlevideo.com" (hyphens in the third and fourth place).
Result<std::string> to_ascii(std::string_view name, const std::string& quoted) {
  std::string ascii;
  while (true) {
    const std::size_t dot = name.find('.');
    const std::string_view label = name.substr(0, dot);
    std::string lower = to_lower_ascii(label);
    if (!is_ascii(label) || lower.starts_with("xn--")) {
      auto converted = label_to_ascii(label, quoted);
      if (!converted) return converted;
      lower = std::move(*converted);
    }
    ascii += lower;
    if (dot == std::string_view::npos) break;
    ascii += '.';
    name.remove_prefix(dot + 1);
  }
  return ascii;
}

bool is_host_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

bool is_decimal(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Returns whether the label reads as a number: decimal digits, or "0x" and
// hex digits. A name whose last label is a number must be an IPv4 address,
// as in the WHATWG URL Standard, so "1.2.3.256" cannot pass as a host name.
bool is_number_label(std::string_view label) {
  if (!label.starts_with("0x")) return is_decimal(label);
  for (char c : label.substr(2)) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

Status check_name(std::string_view name, const std::string& quoted) {
  for (char c : name) {
    if (!is_host_name_char(c)) {
      return fail("invalid host " + quoted + ": character " + quote(std::string_view(&c, 1)) +
                  " is not allowed in a host name");
    }
  }
  if (name.size() > kMaxNameLength) {
    return fail("invalid host " + quoted + ": the name is " + std::to_string(name.size()) +
                " bytes long, and the maximum is 253");
  }

  std::string_view last_label;
  while (true) {
    const std::size_t dot = name.find('.');
    last_label = name.substr(0, dot);
    if (last_label.empty()) return fail("invalid host " + quoted + ": it contains an empty label");
    if (last_label.size() > kMaxLabelLength) {
      return fail("invalid host " + quoted + ": label " + quote(last_label) + " is longer than 63 bytes");
    }
    if (dot == std::string_view::npos) break;
    name.remove_prefix(dot + 1);
  }

  if (is_number_label(last_label)) {
    return fail("invalid host " + quoted + ": it ends in a number but is not a valid IPv4 address");
  }
  return {};
}

Target ip_target(const IpAddress& address, std::uint16_t port) { return Target{format_ip(address), address, port}; }

Result<std::uint16_t> parse_port(std::string_view text, const std::string& quoted) {
  if (!is_decimal(text)) {
    return fail("invalid authority " + quoted + ": the port must be a decimal number from 1 to 65535");
  }
  std::uint32_t port = 0;
  for (char c : text) {
    port = port * 10 + static_cast<std::uint32_t>(c - '0');
    if (port > 65535) return fail("invalid authority " + quoted + ": port " + printable(text) + " is above 65535");
  }
  if (port == 0) return fail("invalid authority " + quoted + ": port 0 is not a valid destination port");
  return static_cast<std::uint16_t>(port);
}

bool is_authority_char(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte <= 0x20 || byte == 0x7f) return false;
  return c != '/' && c != '?' && c != '#' && c != '\\';
}

}  // namespace

Result<Target> normalise_host(std::string_view raw, std::uint16_t port) {
  const std::string quoted = quote(raw);
  auto decoded = percent_decode(raw, quoted);
  if (!decoded) return tl::unexpected(decoded.error());
  if (decoded->empty()) return fail("invalid host " + quoted + ": the host is empty");

  if (decoded->front() == '[') {
    auto address = parse_ip_literal(*decoded);
    if (!address) return fail("invalid host " + quoted + ": square brackets must enclose an IPv6 address");
    return ip_target(*address, port);
  }

  auto ascii = to_ascii(*decoded, quoted);
  if (!ascii) return tl::unexpected(ascii.error());
  std::string name = std::move(*ascii);
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (name.empty()) return fail("invalid host " + quoted + ": the host is empty");

  if (auto address = parse_ip_literal(name)) return ip_target(*address, port);
  if (auto valid = check_name(name, quoted); !valid) return tl::unexpected(valid.error());
  return Target{std::move(name), std::nullopt, port};
}

Result<Target> parse_authority(std::string_view authority, std::uint16_t default_port) {
  const std::string quoted = quote(authority);
  for (char c : authority) {
    if (!is_authority_char(c)) {
      return fail("invalid authority " + quoted + ": character " + quote(std::string_view(&c, 1)) +
                  " is not allowed in an authority");
    }
  }

  const std::size_t at = authority.rfind('@');
  const std::string_view host_port = at == std::string_view::npos ? authority : authority.substr(at + 1);

  std::string_view host;
  std::string_view rest;
  if (host_port.starts_with("[")) {
    const std::size_t close = host_port.find(']');
    if (close == std::string_view::npos) return fail("invalid authority " + quoted + ": missing ']' after the IPv6 address");
    host = host_port.substr(0, close + 1);
    rest = host_port.substr(close + 1);
  } else {
    const std::size_t colon = host_port.find(':');
    host = host_port.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : host_port.substr(colon);
    if (rest.find(':', 1) != std::string_view::npos) {
      return fail("invalid authority " + quoted + ": an IPv6 address must be in square brackets, as in [2001:db8::1]:443");
    }
  }
  if (host.empty()) return fail("invalid authority " + quoted + ": the host is missing");

  std::uint16_t port = default_port;
  if (!rest.empty()) {
    if (rest.front() != ':') return fail("invalid authority " + quoted + ": expected ':' and a port after the host");
    auto parsed = parse_port(rest.substr(1), quoted);
    if (!parsed) return tl::unexpected(parsed.error());
    port = *parsed;
  } else if (port == 0) {
    return fail("invalid authority " + quoted + ": the port is missing; write it as host:port, as in example.com:443");
  }
  return normalise_host(host, port);
}

std::string format_target(const Target& target) {
  const bool v6 = target.ip && target.ip->family == IpAddress::Family::kV6;
  std::string text = v6 ? "[" + target.host + "]" : target.host;
  return text + ":" + std::to_string(target.port);
}

}  // namespace zwrm::proxy
