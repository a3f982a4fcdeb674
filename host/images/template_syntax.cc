#include "host/images/template_syntax.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "common/printable.h"

namespace zwrm::images {

namespace {

// npm's package.json documentation: a name, scope included, has at most 214
// characters.
constexpr std::size_t kMaxNpmNameLength = 214;
constexpr std::size_t kMaxNpmVersionLength = 64;
constexpr std::size_t kMaxHostNameLength = 253;
constexpr std::size_t kMaxLabelLength = 63;
constexpr std::string_view kNpmExample = "such as \"@openai/codex\" or \"is-number@7.0.0\"";

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool is_npm_name_character(char c) { return is_lower_alnum(c) || c == '-' || c == '.' || c == '_'; }

bool is_npm_version_character(char c) {
  return is_letter(c) || is_digit(c) || c == '.' || c == '+' || c == '-' || c == '_' || c == '^' || c == '~' ||
         c == '=';
}

std::string quoted(std::string_view text) { return "'" + printable(text) + "'"; }

// Names the first character of text that no spec may contain, or returns an
// empty string.
std::string describe_foreign_character(std::string_view text) {
  for (char c : text) {
    if (is_npm_name_character(c) || is_npm_version_character(c) || c == '@' || c == '/') continue;
    if (c == ' ' || c == '\t') return "it contains a space; give one package per array element";
    return "it contains " + quoted(std::string_view(&c, 1)) + ", which no npm package name or version contains";
  }
  return "";
}

// Checks one part of a package name: the scope without '@', or the name.
std::string check_npm_name_part(std::string_view part, std::string_view what) {
  if (part.empty()) return "its " + std::string(what) + " is empty; give a name " + std::string(kNpmExample);
  for (char c : part) {
    if (c >= 'A' && c <= 'Z') return "npm package names are lowercase; write it in lowercase";
    if (!is_npm_name_character(c)) {
      return "its " + std::string(what) + " contains " + quoted(std::string_view(&c, 1)) +
             "; use lowercase letters, digits, '-', '.' and '_'";
    }
  }
  if (!is_lower_alnum(part.front())) {
    return "its " + std::string(what) + " must start with a lowercase letter or digit";
  }
  return "";
}

std::string check_npm_version(std::string_view version) {
  const std::string hint = "; give a version such as 1.2.3, a range such as ^1.2 or a tag such as latest";
  if (version.empty()) return "nothing follows its '@'" + hint;
  if (version.size() > kMaxNpmVersionLength) return "its version is longer than 64 characters" + hint;
  if (!std::all_of(version.begin(), version.end(), is_npm_version_character)) {
    return "invalid version or tag " + quoted(version) + hint;
  }
  return "";
}

// Splits "name@version" (or "@scope/name@version") at the '@' that starts
// the version; the version is empty when there is none.
std::pair<std::string_view, std::string_view> split_npm_spec(std::string_view spec) {
  const std::size_t search_from = spec.starts_with('@') ? 1 : 0;
  const std::size_t at = spec.find('@', search_from);
  if (at == std::string_view::npos) return {spec, {}};
  return {spec.substr(0, at), spec.substr(at + 1)};
}

std::string check_npm_spec_form(std::string_view spec) {
  const std::string registry_only = "zwrm installs packages from the npm registry only, so give a name " +
                                    std::string(kNpmExample);
  if (spec.find("://") != std::string_view::npos) return "it is a URL; " + registry_only;
  if (spec.starts_with('.') || spec.starts_with('/') || spec.starts_with('~')) {
    return "it is a file path; " + registry_only;
  }
  if (spec.find(':') != std::string_view::npos) {
    return "it names a source such as git:, github:, file: or an npm: alias; " + registry_only;
  }
  for (std::string_view suffix : {".tgz", ".tar", ".tar.gz"}) {
    if (spec.ends_with(suffix)) return "it is a tarball; " + registry_only;
  }
  if (std::string reason = describe_foreign_character(spec); !reason.empty()) return reason;
  if (!spec.starts_with('@') && split_npm_spec(spec).first.find('/') != std::string_view::npos) {
    return "it is a GitHub shorthand (user/repo); " + registry_only;
  }
  return "";
}

bool is_host_label(std::string_view label) {
  if (label.empty() || label.size() > kMaxLabelLength) return false;
  if (!is_lower_alnum(label.front()) || !is_lower_alnum(label.back())) return false;
  return std::all_of(label.begin(), label.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
}

std::size_t count_labels(std::string_view host) { return std::count(host.begin(), host.end(), '.') + 1; }

std::string check_host_name(std::string_view host) {
  if (host.empty()) return "the host name is empty";
  if (host.size() > kMaxHostNameLength) return "the host name is longer than 253 characters";
  if (std::any_of(host.begin(), host.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return "write host names in lowercase";
  }
  std::size_t start = 0;
  while (start <= host.size()) {
    std::size_t end = host.find('.', start);
    if (end == std::string_view::npos) end = host.size();
    if (!is_host_label(host.substr(start, end - start))) {
      return "invalid host name " + quoted(host) +
             "; use labels of lowercase letters, digits and '-' separated by '.', such as api.example.com";
    }
    start = end + 1;
  }
  // All-numeric names are IPv4 addresses, checked as such by the caller.
  return "";
}

bool is_all_digits_and_dots(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return is_digit(c) || c == '.'; });
}

std::string check_port(std::string_view port) {
  const bool digits = !port.empty() && port.size() <= 5 && std::all_of(port.begin(), port.end(), is_digit);
  const unsigned long value = digits ? std::stoul(std::string(port)) : 0;
  if (value < 1 || value > 65535 || (port.size() > 1 && port.front() == '0')) {
    return "invalid port " + quoted(port) + "; use a number from 1 to 65535";
  }
  return "";
}

// Checks "ADDRESS/LENGTH" for IPv4 and IPv6.
std::string check_cidr(std::string_view rule) {
  const std::size_t slash = rule.find('/');
  const std::string address(rule.substr(0, slash));
  const std::string_view length_text = rule.substr(slash + 1);
  std::array<std::uint8_t, 16> bytes{};
  int bits = 0;
  if (::inet_pton(AF_INET, address.c_str(), bytes.data()) == 1) {
    bits = 32;
  } else if (::inet_pton(AF_INET6, address.c_str(), bytes.data()) == 1) {
    bits = 128;
  } else {
    return "invalid address " + quoted(address) + " in a CIDR block; write it as 10.0.0.0/8 or fd00::/8";
  }

  const bool digits = !length_text.empty() && length_text.size() <= 3 &&
                      std::all_of(length_text.begin(), length_text.end(), is_digit);
  const int length = digits ? std::stoi(std::string(length_text)) : -1;
  if (length < 0 || length > bits) {
    return "invalid prefix length " + quoted(length_text) + "; use 0 to " + std::to_string(bits);
  }
  for (int bit = length; bit < bits; ++bit) {
    if ((bytes[bit / 8] >> (7 - bit % 8)) & 1) {
      return "the CIDR block " + quoted(rule) + " has bits set after its first " + std::to_string(length) +
             "; give the network address, which ends in zero bits";
    }
  }
  return "";
}

// Checks a rule without '/': a host, wildcard or address with an optional
// port.
std::string check_host_rule(std::string_view rule) {
  std::string_view host = rule;
  std::string_view port;
  bool bracketed = false;
  if (rule.starts_with('[')) {
    const std::size_t close = rule.find(']');
    if (close == std::string_view::npos) return "an IPv6 address in '[' has no closing ']'";
    host = rule.substr(1, close - 1);
    bracketed = true;
    const std::string_view rest = rule.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(':')) return "only \":PORT\" may follow ']'";
      port = rest.substr(1);
      if (std::string reason = check_port(port); !reason.empty()) return reason;
    }
  } else if (std::count(rule.begin(), rule.end(), ':') == 1) {
    const std::size_t colon = rule.find(':');
    host = rule.substr(0, colon);
    port = rule.substr(colon + 1);
    if (std::string reason = check_port(port); !reason.empty()) return reason;
  } else if (rule.find(':') != std::string_view::npos) {
    return "write an IPv6 address in brackets, such as [2001:db8::1] or [2001:db8::1]:443";
  }

  std::array<std::uint8_t, 16> bytes{};
  if (bracketed) {
    if (::inet_pton(AF_INET6, std::string(host).c_str(), bytes.data()) != 1) {
      return "invalid IPv6 address " + quoted(host);
    }
    return "";
  }
  if (is_all_digits_and_dots(host)) {
    if (::inet_pton(AF_INET, std::string(host).c_str(), bytes.data()) != 1) {
      return "invalid IPv4 address " + quoted(host) + "; use four numbers from 0 to 255, such as 10.0.0.1";
    }
    return "";
  }
  if (host.starts_with("*.")) {
    const std::string_view suffix = host.substr(2);
    if (std::string reason = check_host_name(suffix); !reason.empty()) return reason;
    if (count_labels(suffix) < 2) {
      return "a wildcard needs a domain of at least two labels after \"*.\", such as *.example.com";
    }
    return "";
  }
  if (host.find('*') != std::string_view::npos) {
    return "'*' may only stand alone as the first label, as in *.example.com";
  }
  return check_host_name(host);
}

}  // namespace

bool is_debian_package_name(std::string_view name) {
  if (name.size() < 2 || !is_lower_alnum(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_lower_alnum(c) || c == '+' || c == '-' || c == '.'; });
}

bool is_debian_suite_name(std::string_view suite) {
  if (suite.empty() || suite.size() > 64 || !is_lower_alnum(suite.front())) return false;
  return std::all_of(suite.begin(), suite.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
}

bool is_shell_variable_name(std::string_view name) {
  if (name.empty() || !(is_letter(name.front()) || name.front() == '_')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return is_letter(c) || is_digit(c) || c == '_'; });
}

std::string check_npm_spec(std::string_view spec) {
  if (spec.empty()) return "it is empty; give a package " + std::string(kNpmExample);
  if (std::string reason = check_npm_spec_form(spec); !reason.empty()) return reason;

  const auto [name, version] = split_npm_spec(spec);
  if (name.size() > kMaxNpmNameLength) return "the package name is longer than 214 characters";
  if (name.starts_with('@')) {
    const std::size_t slash = name.find('/');
    if (slash == std::string_view::npos) {
      return "a scoped package name needs a '/', such as \"@openai/codex\"";
    }
    if (std::string reason = check_npm_name_part(name.substr(1, slash - 1), "scope"); !reason.empty()) return reason;
    if (std::string reason = check_npm_name_part(name.substr(slash + 1), "name"); !reason.empty()) return reason;
  } else if (std::string reason = check_npm_name_part(name, "name"); !reason.empty()) {
    return reason;
  }
  if (spec.size() > name.size()) return check_npm_version(version);
  return "";
}

std::string npm_package_name(std::string_view spec) { return std::string(split_npm_spec(spec).first); }

std::string check_egress_rule(std::string_view rule) {
  if (rule.empty()) return "the rule is empty; give a host such as \"api.example.com\"";
  if (rule.find("://") != std::string_view::npos) {
    return "it is a URL; give only the host, such as \"api.example.com\" or \"api.example.com:443\"";
  }
  const bool allowed = std::all_of(rule.begin(), rule.end(), [](char c) {
    return is_letter(c) || is_digit(c) || c == '.' || c == '-' || c == ':' || c == '/' || c == '*' || c == '[' ||
           c == ']';
  });
  if (!allowed) return "it contains a character that no host, address or port contains";
  if (rule == "*") return "\"*\" would allow every host; list the hosts the agent needs";
  if (rule.find('/') != std::string_view::npos) return check_cidr(rule);
  return check_host_rule(rule);
}

}  // namespace zwrm::images
