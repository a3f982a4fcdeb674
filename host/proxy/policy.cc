#include "host/proxy/policy.h"

#include <algorithm>
#include <string>

#include "common/printable.h"

namespace zwrm::proxy {
namespace {

constexpr std::string_view kExpectedForms =
    "expected HOST, *.DOMAIN, or an address range like 10.0.0.0/8, each optionally followed by :PORT[,PORT...]";

// At most this many denied addresses are listed in a reason.
constexpr std::size_t kMaxListedAddresses = 4;

std::string quote(std::string_view text) { return "\"" + printable(text) + "\""; }

tl::unexpected<Error> rule_error(std::string_view rule, std::string_view reason) {
  return fail("invalid rule " + quote(rule) + ": " + std::string(reason));
}

// Wraps an error from the host parser and adds the expected forms, because
// a rule that fails as a host name may have been meant as another form.
tl::unexpected<Error> host_rule_error(std::string_view rule, const Error& error) {
  return rule_error(rule, error.message + "; " + std::string(kExpectedForms));
}

// Returns whether text reads as an attempt at an address range: only the
// characters of IPv4 and IPv6 addresses, prefix lengths and brackets.
bool looks_like_range(std::string_view text) {
  return text.find_first_not_of("0123456789abcdefABCDEFxX.:/[]") == std::string_view::npos;
}

// Sorts and deduplicates ports. The default set is stored in the order of
// kDefaultPorts, so a rule that names 80 and 443 equals one that names none.
std::vector<std::uint16_t> canonical_ports(std::vector<std::uint16_t> ports) {
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  std::vector<std::uint16_t> defaults(std::begin(kDefaultPorts), std::end(kDefaultPorts));
  std::vector<std::uint16_t> sorted_defaults = defaults;
  std::sort(sorted_defaults.begin(), sorted_defaults.end());
  return ports == sorted_defaults ? defaults : ports;
}

bool is_default_ports(const std::vector<std::uint16_t>& ports) {
  return canonical_ports(ports) == std::vector<std::uint16_t>(std::begin(kDefaultPorts), std::end(kDefaultPorts));
}

Result<std::vector<std::uint16_t>> parse_ports(std::string_view text, std::string_view rule) {
  std::vector<std::uint16_t> ports;
  while (true) {
    const std::size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    if (item.empty()) return rule_error(rule, "a port number is missing after ':' or ','");
    std::uint32_t port = 0;
    bool valid = true;
    for (char c : item) {
      valid = valid && c >= '0' && c <= '9' && port <= 65535;
      if (valid) port = port * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (!valid || port == 0 || port > 65535) {
      return rule_error(rule, "port " + quote(item) + " is not a number from 1 to 65535");
    }
    ports.push_back(static_cast<std::uint16_t>(port));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return canonical_ports(std::move(ports));
}

// The part before the ports ("api.example.com", "[fd00::/8]") and the port
// list after the ':' that ends it, if any.
struct RuleParts {
  std::string_view target;
  std::optional<std::string_view> ports;
};

Result<RuleParts> split_rule(std::string_view text) {
  if (text.starts_with("[")) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return rule_error(text, kExpectedForms);
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty()) return RuleParts{text, std::nullopt};
    if (rest.front() == '/') return rule_error(text, "write the prefix length inside the brackets, as in [fd00::/8]:443");
    if (rest.front() != ':') return rule_error(text, kExpectedForms);
    return RuleParts{text.substr(0, close + 1), rest.substr(1)};
  }

  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) return RuleParts{text, std::nullopt};
  // Two or more colons without brackets: an IPv6 range without ports.
  if (text.find(':', colon + 1) != std::string_view::npos) return RuleParts{text, std::nullopt};
  return RuleParts{text.substr(0, colon), text.substr(colon + 1)};
}

Result<Rule> parse_range_rule(std::string_view target, std::string_view rule) {
  auto range = parse_cidr(target);
  if (!range && !looks_like_range(target)) return rule_error(rule, kExpectedForms);
  if (!range) return rule_error(rule, range.error().message);
  Rule parsed;
  parsed.kind = Rule::Kind::kAddressRange;
  parsed.range = *range;
  return parsed;
}

Result<Rule> parse_wildcard_rule(std::string_view target, std::string_view rule) {
  if (target == "*") return rule_error(rule, "a wildcard must be followed by a domain, as in *.example.com");
  const std::string_view domain = target.substr(2);
  if (!target.starts_with("*.") || domain.find('*') != std::string_view::npos) {
    return rule_error(rule, "'*' is allowed only as the whole first label, as in *.example.com");
  }

  auto host = normalise_host(domain, 0);
  if (!host) return host_rule_error(rule, host.error());
  if (host->ip) {
    return rule_error(rule, "a wildcard needs a domain name, not an IP address; use an address range such as " +
                                format_ip(*host->ip) + "/32");
  }
  if (host->host.find('.') == std::string::npos) {
    return rule_error(rule, "a wildcard on a top-level domain is too broad; name a domain below it, as in *.example." +
                                host->host);
  }

  Rule parsed;
  parsed.kind = Rule::Kind::kSubdomains;
  parsed.host = std::move(host->host);
  return parsed;
}

Result<Rule> parse_host_rule(std::string_view target, std::string_view rule) {
  auto host = normalise_host(target, 0);
  if (!host) return host_rule_error(rule, host.error());
  if (host->ip) {
    // Only a canonical dotted quad stands for its /32 range. Another
    // spelling of an address would not read as what it matches.
    if (host->host == target) return parse_range_rule(target, rule);
    return rule_error(rule, quote(target) + " is another spelling of the IP address " + host->host + "; write " +
                                host->host + " instead");
  }

  Rule parsed;
  parsed.kind = Rule::Kind::kExactHost;
  parsed.host = std::move(host->host);
  return parsed;
}

std::string_view trim_blanks(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

bool allows_port(const Rule& rule, std::uint16_t port) {
  return std::find(rule.ports.begin(), rule.ports.end(), port) != rule.ports.end();
}

// Returns whether the rule matches the target's host or address, ignoring
// the port.
bool matches_host(const Rule& rule, const Target& target) {
  if (target.ip) return rule.kind == Rule::Kind::kAddressRange && rule.range.contains(*target.ip);
  switch (rule.kind) {
    case Rule::Kind::kExactHost:
      return target.host == rule.host;
    case Rule::Kind::kSubdomains:
      return target.host.size() > rule.host.size() + 1 && target.host.ends_with(rule.host) &&
             target.host[target.host.size() - rule.host.size() - 1] == '.';
    case Rule::Kind::kAddressRange:
      return false;
  }
  return false;
}

// Returns the range rule on `port` that contains address, or nullptr.
const Rule* find_range_rule(const std::vector<Rule>& rules, const IpAddress& address, std::uint16_t port) {
  for (const Rule& rule : rules) {
    if (rule.kind == Rule::Kind::kAddressRange && allows_port(rule, port) && rule.range.contains(address)) {
      return &rule;
    }
  }
  return nullptr;
}

}  // namespace

std::string Rule::text() const {
  ZWRM_CHECK(!ports.empty());
  std::string text;
  switch (kind) {
    case Kind::kExactHost:
      text = host;
      break;
    case Kind::kSubdomains:
      text = "*." + host;
      break;
    case Kind::kAddressRange:
      text = format_cidr(range);
      break;
  }
  if (is_default_ports(ports)) return text;

  if (kind == Kind::kAddressRange && range.base.family == IpAddress::Family::kV6) text = "[" + text + "]";
  std::vector<std::uint16_t> sorted = canonical_ports(ports);
  for (std::size_t i = 0; i < sorted.size(); ++i) text += (i == 0 ? ":" : ",") + std::to_string(sorted[i]);
  return text;
}

Result<Rule> parse_rule(std::string_view text) {
  text = trim_blanks(text);
  if (text.empty()) return rule_error(text, kExpectedForms);
  if (text.find("://") != std::string_view::npos) {
    return rule_error(text, "it is a URL; give only the host and port, as in api.example.com or api.example.com:8443");
  }
  auto parts = split_rule(text);
  if (!parts) return tl::unexpected(parts.error());
  if (parts->target.empty()) return rule_error(text, kExpectedForms);

  Result<Rule> rule;
  const std::string_view target = parts->target;
  if (target.find('*') != std::string_view::npos) {
    rule = parse_wildcard_rule(target, text);
  } else if (target.find_first_of("/:[") != std::string_view::npos) {
    rule = parse_range_rule(target, text);
  } else {
    rule = parse_host_rule(target, text);
  }
  if (!rule) return rule;

  rule->ports.assign(std::begin(kDefaultPorts), std::end(kDefaultPorts));
  if (parts->ports) {
    auto ports = parse_ports(*parts->ports, text);
    if (!ports) return tl::unexpected(ports.error());
    rule->ports = std::move(*ports);
  }
  return rule;
}

NameDecision check_target(const std::vector<Rule>& rules, const Target& target) {
  const Rule* other_port = nullptr;
  for (const Rule& rule : rules) {
    if (!matches_host(rule, target)) continue;
    if (allows_port(rule, target.port)) return NameDecision{true, rule.text(), ""};
    if (other_port == nullptr) other_port = &rule;
  }

  NameDecision decision;
  decision.reason = std::string(target.ip ? "no address range rule" : "no rule") + " allows " + format_target(target);
  if (other_port != nullptr) decision.reason += ", but rule " + quote(other_port->text()) + " allows other ports";
  return decision;
}

AddressDecision choose_address(const std::vector<Rule>& rules, const Target& target,
                               const std::vector<IpAddress>& resolved) {
  AddressDecision decision;
  if (resolved.empty()) {
    decision.reason = target.host + " resolved to no address";
    return decision;
  }

  std::string denied;
  for (std::size_t i = 0; i < resolved.size(); ++i) {
    const IpAddress& address = resolved[i];
    const auto special = special_range(address);
    if (!special) return AddressDecision{true, address, "", ""};
    // Linux connects an unspecified address (0.0.0.0/8, ::) to the host
    // itself, so no rule opens it: a rule that means the host names 127.0.0.1.
    const bool unspecified = *special == "unspecified";
    if (const Rule* rule = unspecified ? nullptr : find_range_rule(rules, address, target.port)) {
      return AddressDecision{true, address, rule->text(), ""};
    }

    if (i < kMaxListedAddresses) {
      denied += (i == 0 ? "" : ", ") + format_ip(address) + " (" + std::string(*special) + ")";
    } else if (i == kMaxListedAddresses) {
      denied += " and " + std::to_string(resolved.size() - i) + " more";
    }
  }
  decision.reason = "every address of " + target.host +
                    " is in a special range that no address range rule allows on port " +
                    std::to_string(target.port) + ": " + denied;
  return decision;
}

}  // namespace zwrm::proxy
