#include "host/proxy/policy.h"

#include <arpa/inet.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace zwrm::proxy {
namespace {

using Kind = Rule::Kind;

const std::vector<std::uint16_t> kDefaults(std::begin(kDefaultPorts), std::end(kDefaultPorts));

std::vector<Rule> rules(std::initializer_list<const char*> texts) {
  std::vector<Rule> parsed;
  for (const char* text : texts) {
    auto rule = parse_rule(text);
    EXPECT_TRUE(rule) << text << ": " << rule.error().message;
    if (rule) parsed.push_back(*rule);
  }
  return parsed;
}

Target target(const char* authority) {
  auto parsed = parse_authority(authority, 443);
  EXPECT_TRUE(parsed) << authority << ": " << parsed.error().message;
  return parsed.value_or(Target{});
}

IpAddress ip(const char* text) {
  auto address = parse_ip_literal(text);
  EXPECT_TRUE(address) << text;
  return address.value_or(IpAddress{});
}

IpAddress raw_v6(const char* text) {
  IpAddress address;
  address.family = IpAddress::Family::kV6;
  EXPECT_EQ(inet_pton(AF_INET6, text, address.bytes.data()), 1) << text;
  return address;
}

TEST(ParseRule, ParsesEachKind) {
  auto exact = parse_rule("api.example.com");
  ASSERT_TRUE(exact) << exact.error().message;
  EXPECT_EQ(exact->kind, Kind::kExactHost);
  EXPECT_EQ(exact->host, "api.example.com");
  EXPECT_EQ(exact->ports, kDefaults);

  auto subdomains = parse_rule("*.example.com:8443");
  ASSERT_TRUE(subdomains) << subdomains.error().message;
  EXPECT_EQ(subdomains->kind, Kind::kSubdomains);
  EXPECT_EQ(subdomains->host, "example.com");
  EXPECT_EQ(subdomains->ports, std::vector<std::uint16_t>{8443});

  auto range = parse_rule("10.1.0.0/16");
  ASSERT_TRUE(range) << range.error().message;
  EXPECT_EQ(range->kind, Kind::kAddressRange);
  EXPECT_TRUE(range->host.empty());
  EXPECT_EQ(format_cidr(range->range), "10.1.0.0/16");
  EXPECT_EQ(range->ports, kDefaults);
}

TEST(ParseRule, RoundTripsCanonicalText) {
  const std::pair<const char*, const char*> cases[] = {
      {"api.example.com", "api.example.com"},
      {"API.Example.com.", "api.example.com"},
      {"%61pi.example.com", "api.example.com"},
      {"  api.example.com\t", "api.example.com"},
      {"*.example.com", "*.example.com"},
      {"*.Example.COM.", "*.example.com"},
      {"api.example.com:8443", "api.example.com:8443"},
      {"api.example.com:8443,443,8443", "api.example.com:443,8443"},
      {"api.example.com:80,443", "api.example.com"},
      {"api.example.com:443,80,443", "api.example.com"},
      {"api.example.com:443", "api.example.com:443"},
      {"api.example.com:0080", "api.example.com:80"},
      {"localhost:3000", "localhost:3000"},
      {"BÜCHER.example", "xn--bcher-kva.example"},
      {"*.BÜCHER.example:8080", "*.xn--bcher-kva.example:8080"},
      {"10.1.0.0/16", "10.1.0.0/16"},
      {"192.0.2.7", "192.0.2.7/32"},
      {"10.0.0.0/8:5432,22", "10.0.0.0/8:22,5432"},
      {"0.0.0.0/0", "0.0.0.0/0"},
      {"[fd00::/8]:5432", "[fd00::/8]:5432"},
      {"[FD00::/8]:80,443", "fd00::/8"},
      {"[fd00::/8]", "fd00::/8"},
      {"fd00::/8", "fd00::/8"},
      {"[fd00::1]:22", "[fd00::1/128]:22"},
      {"::1", "::1/128"},
      {"[::1]", "::1/128"},
  };
  for (const auto& [text, canonical] : cases) {
    auto rule = parse_rule(text);
    ASSERT_TRUE(rule) << text << ": " << rule.error().message;
    EXPECT_EQ(rule->text(), canonical) << text;
    auto again = parse_rule(rule->text());
    ASSERT_TRUE(again) << canonical << ": " << again.error().message;
    EXPECT_EQ(*again, *rule) << text;
  }
}

TEST(ParseRule, DefaultPortsInAnyOrderEqualNone) {
  EXPECT_EQ(parse_rule("example.com:80,443").value(), parse_rule("example.com").value());
  EXPECT_EQ(parse_rule("example.com:443,80").value(), parse_rule("example.com").value());
  EXPECT_NE(parse_rule("example.com:443").value(), parse_rule("example.com").value());
}

TEST(ParseRule, RejectsInvalidRules) {
  for (const char* text :
       {"", " ", "x y", "*", "*:443", "*.com", "*.xn--tda", "**.x", "*.*.example.com", "a.*.b", "*example.com",
        "example.*", "127.1", "0x7f.0.0.1", "2130706433", "127.0.0.1.", "%31%32%37.0.0.1", "*.10.0.0.1", "*.127.1",
        "*.[::1]", "example.com:0", "example.com:65536", "example.com:", "example.com:http", "example.com:443,",
        "example.com:,443", "example.com:-1", "example.com:443:80", ":443", "10.0.0.1/8", "10.0.0.0/33",
        "[10.0.0.0/8]", "[fd00::/8]x", "[fd00::/8", "[fd00::/8]:", "fe80::1%eth0", "::ffff:127.0.0.1",
        "example.com/path", "user@example.com", "a..b", "1.2.3.256"}) {
    EXPECT_FALSE(parse_rule(text)) << text;
  }
}

TEST(ParseRule, ErrorsNameTheRuleAndTheFix) {
  auto garbage = parse_rule("x y");
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().message.find("invalid rule \"x y\""), std::string::npos) << garbage.error().message;
  EXPECT_NE(garbage.error().message.find(
                "expected HOST, *.DOMAIN, or an address range like 10.0.0.0/8, each optionally followed by "
                ":PORT[,PORT...]"),
            std::string::npos)
      << garbage.error().message;

  auto empty = parse_rule("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message,
            "invalid rule \"\": expected HOST, *.DOMAIN, or an address range like 10.0.0.0/8, each optionally "
            "followed by :PORT[,PORT...]");

  auto top_level = parse_rule("*.com");
  ASSERT_FALSE(top_level);
  EXPECT_NE(top_level.error().message.find("top-level domain"), std::string::npos) << top_level.error().message;
  EXPECT_NE(top_level.error().message.find("*.example.com"), std::string::npos) << top_level.error().message;

  auto odd_address = parse_rule("127.1");
  ASSERT_FALSE(odd_address);
  EXPECT_NE(odd_address.error().message.find("127.0.0.1"), std::string::npos) << odd_address.error().message;

  auto port = parse_rule("example.com:0");
  ASSERT_FALSE(port);
  EXPECT_NE(port.error().message.find("from 1 to 65535"), std::string::npos) << port.error().message;

  auto host_bits = parse_rule("10.0.0.1/8:443");
  ASSERT_FALSE(host_bits);
  EXPECT_NE(host_bits.error().message.find("10.0.0.0/8"), std::string::npos) << host_bits.error().message;
}

TEST(RuleText, SortsAndDeduplicatesPorts) {
  Rule rule;
  rule.kind = Kind::kExactHost;
  rule.host = "example.com";
  rule.ports = {8443, 22, 8443};
  EXPECT_EQ(rule.text(), "example.com:22,8443");
  rule.ports = {80, 443};
  EXPECT_EQ(rule.text(), "example.com");

  Rule range;
  range.kind = Kind::kAddressRange;
  range.range = parse_cidr("fd00::/8").value();
  range.ports = {5432};
  EXPECT_EQ(range.text(), "[fd00::/8]:5432");
}

struct CheckCase {
  const char* authority;
  bool allowed;
  const char* rule;
};

TEST(CheckTarget, MatchesHostsAndPorts) {
  const auto policy = rules({"api.example.com", "*.example.org", "example.net:8443", "10.1.0.0/16",
                             "[fd00::/8]:5432", "localhost:3000"});
  const CheckCase cases[] = {
      {"api.example.com:443", true, "api.example.com"},
      {"API.EXAMPLE.COM.:80", true, "api.example.com"},
      {"api.example.com:8080", false, ""},
      {"www.api.example.com:443", false, ""},
      {"example.com:443", false, ""},
      {"a.example.org:443", true, "*.example.org"},
      {"a.b.example.org:80", true, "*.example.org"},
      {"example.org:443", false, ""},
      {"badexample.org:443", false, ""},
      {"a.example.org.evil.example:443", false, ""},
      {"example.net:8443", true, "example.net:8443"},
      {"example.net:443", false, ""},
      {"10.1.2.3:443", true, "10.1.0.0/16"},
      {"0x0a.1.2.3:80", true, "10.1.0.0/16"},
      {"[::ffff:10.1.2.3]:443", true, "10.1.0.0/16"},
      {"10.1.2.3:22", false, ""},
      {"10.2.0.1:443", false, ""},
      {"[fd00::1]:5432", true, "[fd00::/8]:5432"},
      {"[fd00::1]:443", false, ""},
      {"localhost:3000", true, "localhost:3000"},
      {"127.0.0.1:3000", false, ""},
  };
  for (const auto& c : cases) {
    const NameDecision decision = check_target(policy, target(c.authority));
    EXPECT_EQ(decision.allowed, c.allowed) << c.authority << ": " << decision.reason;
    EXPECT_EQ(decision.rule, c.rule) << c.authority;
    EXPECT_EQ(decision.reason.empty(), c.allowed) << c.authority;
  }
}

TEST(CheckTarget, NameRulesNeverMatchIpLiterals) {
  const auto policy = rules({"*.example.com", "example.com", "localhost"});
  for (const char* authority : {"93.184.216.34:443", "[2606:2800:220:1::]:443", "127.0.0.1:443"}) {
    const NameDecision decision = check_target(policy, target(authority));
    EXPECT_FALSE(decision.allowed) << authority;
    EXPECT_NE(decision.reason.find("no address range rule allows"), std::string::npos) << decision.reason;
  }
}

TEST(CheckTarget, DenyReasonNamesTarget) {
  const auto policy = rules({"example.com:8443"});
  EXPECT_EQ(check_target({}, target("example.com:443")).reason, "no rule allows example.com:443");
  EXPECT_EQ(check_target(policy, target("example.com:443")).reason,
            "no rule allows example.com:443, but rule \"example.com:8443\" allows other ports");
  EXPECT_EQ(check_target(policy, target("[::1]:443")).reason, "no address range rule allows [::1]:443");
}

TEST(ChooseAddress, DeniesSpecialAddressWithoutRangeRule) {
  const auto policy = rules({"example.com"});
  const AddressDecision decision = choose_address(policy, target("example.com:443"), {ip("127.0.0.1")});
  EXPECT_FALSE(decision.allowed);
  EXPECT_NE(decision.reason.find("127.0.0.1 (loopback)"), std::string::npos) << decision.reason;
}

TEST(ChooseAddress, AllowsSpecialAddressWithRangeRule) {
  const auto policy = rules({"example.com", "127.0.0.0/8"});
  const AddressDecision decision = choose_address(policy, target("example.com:443"), {ip("127.0.0.1")});
  EXPECT_TRUE(decision.allowed) << decision.reason;
  EXPECT_EQ(decision.address, ip("127.0.0.1"));
  EXPECT_EQ(decision.rule, "127.0.0.0/8");
}

TEST(ChooseAddress, UnspecifiedAddressNeverAllowed) {
  const auto policy = rules({"0.0.0.0/0", "::/0", "0.0.0.0/32", "::/128"});
  for (const char* text : {"0.0.0.0", "0.1.2.3", "::"}) {
    const AddressDecision decision = choose_address(policy, target("example.com:443"), {ip(text)});
    EXPECT_FALSE(decision.allowed) << text;
    EXPECT_NE(decision.reason.find("(unspecified)"), std::string::npos) << decision.reason;
  }
  EXPECT_TRUE(choose_address(policy, target("example.com:443"), {ip("0.0.0.0"), ip("127.0.0.1")}).allowed);
}

TEST(ChooseAddress, RangeRuleMustCoverThePort) {
  const auto policy = rules({"example.com:8080", "127.0.0.0/8:443"});
  EXPECT_FALSE(choose_address(policy, target("example.com:8080"), {ip("127.0.0.1")}).allowed);
  EXPECT_TRUE(choose_address(policy, target("example.com:443"), {ip("127.0.0.1")}).allowed);
}

TEST(ChooseAddress, DeniesEverySpecialRangeByDefault) {
  const auto policy = rules({"example.com"});
  for (const char* text : {"0.0.0.0", "10.0.0.1", "100.64.0.1", "169.254.169.254", "172.16.0.1", "192.168.0.1",
                           "192.0.2.1", "198.18.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255", "::", "::1",
                           "fd00::1", "fe80::1", "ff02::1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1",
                           "fd00:ec2::254", "2001:db8::1"}) {
    const AddressDecision decision = choose_address(policy, target("example.com:443"), {ip(text)});
    EXPECT_FALSE(decision.allowed) << text;
  }
}

TEST(ChooseAddress, AllowsMetadataOnlyWithRuleThatContainsIt) {
  const IpAddress metadata = ip("169.254.169.254");
  EXPECT_FALSE(choose_address(rules({"example.com", "10.0.0.0/8"}), target("example.com:80"), {metadata}).allowed);
  EXPECT_TRUE(choose_address(rules({"example.com", "169.254.169.254"}), target("example.com:80"), {metadata}).allowed);
  EXPECT_TRUE(choose_address(rules({"example.com", "169.254.0.0/16"}), target("example.com:80"), {metadata}).allowed);
}

TEST(ChooseAddress, SkipsToFirstAllowedAddress) {
  const auto policy = rules({"example.com"});
  const std::vector<IpAddress> resolved = {ip("169.254.169.254"), ip("10.0.0.1"), ip("93.184.216.34"),
                                           ip("2606:2800:220:1::")};
  const AddressDecision decision = choose_address(policy, target("example.com:443"), resolved);
  EXPECT_TRUE(decision.allowed);
  EXPECT_EQ(decision.address, ip("93.184.216.34"));
  EXPECT_TRUE(decision.rule.empty());
}

TEST(ChooseAddress, TreatsMappedAddressAsIpv4) {
  const IpAddress mapped = raw_v6("::ffff:127.0.0.1");
  EXPECT_FALSE(choose_address(rules({"example.com"}), target("example.com:443"), {mapped}).allowed);

  const AddressDecision decision =
      choose_address(rules({"example.com", "127.0.0.1"}), target("example.com:443"), {mapped});
  EXPECT_TRUE(decision.allowed);
  EXPECT_EQ(decision.address, mapped);
  EXPECT_EQ(decision.rule, "127.0.0.1/32");
}

TEST(ChooseAddress, ReturnsExactlyOneResolvedAddress) {
  const std::vector<std::vector<IpAddress>> resolved_sets = {
      {ip("93.184.216.34")},
      {ip("2606:2800:220:1::")},
      {ip("127.0.0.1"), ip("93.184.216.34")},
      {raw_v6("::ffff:10.0.0.1"), ip("10.1.0.2")},
      {raw_v6("::ffff:10.1.0.1")},
      {raw_v6("::ffff:8.8.8.8")},
      {ip("10.1.0.1"), ip("8.8.4.4")},
  };
  const auto policy = rules({"example.com", "10.1.0.0/16"});
  for (const auto& resolved : resolved_sets) {
    const AddressDecision decision = choose_address(policy, target("example.com:443"), resolved);
    ASSERT_TRUE(decision.allowed) << format_ip(resolved.front()) << ": " << decision.reason;
    EXPECT_NE(std::find(resolved.begin(), resolved.end(), decision.address), resolved.end())
        << format_ip(decision.address);
  }
}

TEST(ChooseAddress, AllowsIpLiteralTargetInRange) {
  const auto policy = rules({"[fd00::/8]:5432"});
  const Target database = target("[fd00::1]:5432");
  ASSERT_TRUE(check_target(policy, database).allowed);
  const AddressDecision decision = choose_address(policy, database, {*database.ip});
  EXPECT_TRUE(decision.allowed) << decision.reason;
  EXPECT_EQ(decision.address, *database.ip);
  EXPECT_EQ(decision.rule, "[fd00::/8]:5432");
}

TEST(ChooseAddress, ReasonListsDeniedAddresses) {
  const auto policy = rules({"example.com"});
  EXPECT_EQ(choose_address(policy, target("example.com:443"), {}).reason, "example.com resolved to no address");

  const std::vector<IpAddress> resolved = {ip("127.0.0.1"), ip("::1"),      ip("10.0.0.1"),
                                           ip("10.0.0.2"),  ip("10.0.0.3"), ip("10.0.0.4")};
  const AddressDecision decision = choose_address(policy, target("example.com:443"), resolved);
  EXPECT_FALSE(decision.allowed);
  EXPECT_NE(decision.reason.find("127.0.0.1 (loopback), ::1 (loopback), 10.0.0.1 (private)"), std::string::npos)
      << decision.reason;
  EXPECT_NE(decision.reason.find("and 2 more"), std::string::npos) << decision.reason;
}

}  // namespace
}  // namespace zwrm::proxy
