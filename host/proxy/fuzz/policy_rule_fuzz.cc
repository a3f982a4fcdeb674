// libFuzzer target for the egress policy parsers. Rules come from the user,
// hosts and authorities from an untrusted guest. The input goes to every
// parser, and each success must round-trip: a rule through its canonical
// text, a host through a second normalisation, an authority through
// format_target, an address and a range through their formatted text. A
// failed check aborts, which fails the fuzz run like a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "host/proxy/policy.h"

namespace {

using namespace zwrm::proxy;

bool same_target(const Target& a, const Target& b) { return a.host == b.host && a.ip == b.ip && a.port == b.port; }

void check_rule(std::string_view input) {
  auto rule = parse_rule(input);
  if (!rule) return;
  const std::string text = rule->text();
  auto again = parse_rule(text);
  ZWRM_CHECK(again.has_value());
  ZWRM_CHECK(*again == *rule);
  ZWRM_CHECK(again->text() == text);

  // Exercise matching with the rule's own host or range.
  Target target;
  target.port = rule->ports.front();
  if (rule->kind == Rule::Kind::kAddressRange) {
    target.ip = rule->range.base;
    target.host = format_ip(rule->range.base);
  } else {
    target.host = rule->kind == Rule::Kind::kSubdomains ? "sub." + rule->host : rule->host;
  }
  const std::vector<Rule> rules = {*rule};
  ZWRM_CHECK(check_target(rules, target).allowed);
  if (rule->kind == Rule::Kind::kAddressRange) {
    // An unspecified address (0.0.0.0/8, ::) is never allowed, whatever the
    // rules contain. Every other address in the rule's range is allowed.
    const AddressDecision decision = choose_address(rules, target, {rule->range.base});
    const auto special = special_range(rule->range.base);
    ZWRM_CHECK(decision.allowed == !(special && *special == "unspecified"));
    if (decision.allowed) ZWRM_CHECK(decision.address == rule->range.base);
  }
}

void check_host(std::string_view input) {
  auto target = normalise_host(input, 443);
  if (!target) return;
  auto again = normalise_host(target->host, 443);
  ZWRM_CHECK(again.has_value());
  ZWRM_CHECK(same_target(*again, *target));
  if (target->ip) ZWRM_CHECK(target->host == format_ip(*target->ip));
}

void check_authority(std::string_view input) {
  auto target = parse_authority(input, 80);
  if (!target) return;
  auto again = parse_authority(format_target(*target), 0);
  ZWRM_CHECK(again.has_value());
  ZWRM_CHECK(same_target(*again, *target));
}

void check_address(std::string_view input) {
  if (auto address = parse_ip_literal(input)) {
    ZWRM_CHECK(parse_ip_literal(format_ip(*address)) == address);
    (void)special_range(*address);
  }
  if (auto cidr = parse_cidr(input)) {
    auto again = parse_cidr(format_cidr(*cidr));
    ZWRM_CHECK(again.has_value());
    ZWRM_CHECK(*again == *cidr);
    ZWRM_CHECK(cidr->contains(cidr->base));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_rule(input);
  check_host(input);
  check_authority(input);
  check_address(input);
  return 0;
}
