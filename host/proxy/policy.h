// The egress policy: rules an agent's connections are checked against, and
// the decision for one connection with the reason behind it.
//
// Rule syntax (one rule per string):
//   api.example.com            that host exactly, ports 443 and 80
//   *.example.com              any subdomain, not example.com itself
//   api.example.com:8443       that host on port 8443 only
//   api.example.com:443,8443   that host on either port
//   10.1.0.0/16, 192.0.2.7     addresses in that range (IP rules), ports 443 and 80
//   [fd00::/8]:5432            an IPv6 range on one port
// Host names in rules are normalised as in host_name.h. Default deny.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "host/proxy/address.h"
#include "host/proxy/host_name.h"

namespace zwrm::proxy {

inline constexpr std::uint16_t kDefaultPorts[] = {443, 80};

struct Rule {
  enum class Kind : std::uint8_t { kExactHost, kSubdomains, kAddressRange };
  Kind kind = Kind::kExactHost;
  std::string host;  // normalised name without "*." for kSubdomains; empty for kAddressRange
  Cidr range;        // kAddressRange only
  // Never empty. parse_rule sorts and deduplicates the ports it reads, and
  // stores kDefaultPorts when the rule names none or exactly 80 and 443.
  std::vector<std::uint16_t> ports;

  // The canonical text of the rule, as stored and listed: parse_rule(text())
  // returns an equal rule, and two rules that match the same things have the
  // same text.
  std::string text() const;
  bool operator==(const Rule&) const = default;
};

// Parses one rule. The error names what is wrong with it and shows the
// expected forms.
Result<Rule> parse_rule(std::string_view text);

// The policy's decision on a target before its name is resolved.
struct NameDecision {
  bool allowed = false;
  std::string rule;    // text of the rule that allowed it, if one did
  std::string reason;  // why it was denied, as a sentence fragment ("no rule allows example.com:443")
};

// Checks a normalised target against the rules. A host name must match an
// exact or subdomain rule on the target's port. An IP literal must be inside
// an address range rule on that port: name rules never match IP literals.
NameDecision check_target(const std::vector<Rule>& rules, const Target& target);

// The policy's decision on the resolved addresses of an allowed target.
struct AddressDecision {
  bool allowed = false;
  IpAddress address;   // the address to connect to, when allowed
  std::string rule;    // the rule that allowed the address, when an address range rule was needed
  std::string reason;  // why every address was denied
};

// Picks the first address the proxy may connect to. An address in a special
// range (special_range) is allowed only when an address range rule on the
// target's port contains it, and an unspecified address (0.0.0.0/8, ::)
// never, since Linux connects it to the host itself. Any other address of
// an allowed target is allowed. The proxy then connects to exactly the returned address, so a
// second resolution cannot swap in another one.
AddressDecision choose_address(const std::vector<Rule>& rules, const Target& target,
                               const std::vector<IpAddress>& resolved);

}  // namespace zwrm::proxy
