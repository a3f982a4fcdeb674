#include "host/proxy/host_name.h"

#include <gtest/gtest.h>

#include <string>

namespace zwrm::proxy {
namespace {

using Family = IpAddress::Family;

struct HostCase {
  std::string raw;
  std::string host;
};

TEST(NormaliseHost, NormalisesNames) {
  const HostCase cases[] = {
      {"example.com", "example.com"},
      {"EXAMPLE.com.", "example.com"},
      {"%65xample.com", "example.com"},
      {"%45XAMPLE.COM", "example.com"},
      {"a%2eexample.com", "a.example.com"},
      {"BÜCHER.example", "xn--bcher-kva.example"},
      {"b%C3%BCcher.example", "xn--bcher-kva.example"},
      {"bu\xcc\x88" "cher.example", "xn--bcher-kva.example"},
      {"xn--BCHER-kva.example", "xn--bcher-kva.example"},
      {"faß.de", "xn--fa-hia.de"},
      {"💩.la", "xn--ls8h.la"},
      {"xn--ls8h.la", "xn--ls8h.la"},
      {"example.com。", "example.com"},
      {"ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"},
      {"r3---sn-4g5e6nz7.googlevideo.com", "r3---sn-4g5e6nz7.googlevideo.com"},
      {"_dmarc.example.com", "_dmarc.example.com"},
      {"a-b.example", "a-b.example"},
      {"localhost", "localhost"},
      {"1.example.com", "1.example.com"},
      {"example.0x1g", "example.0x1g"},
  };
  for (const auto& c : cases) {
    auto target = normalise_host(c.raw, 443);
    ASSERT_TRUE(target) << c.raw << ": " << target.error().message;
    EXPECT_EQ(target->host, c.host) << c.raw;
    EXPECT_FALSE(target->ip) << c.raw;
    EXPECT_EQ(target->port, 443) << c.raw;
  }
}

struct LiteralCase {
  std::string raw;
  std::string host;
  Family family;
};

TEST(NormaliseHost, RecognisesIpLiterals) {
  const LiteralCase cases[] = {
      {"[::ffff:169.254.169.254]", "169.254.169.254", Family::kV4},
      {"0x7f.1", "127.0.0.1", Family::kV4},
      {"0X7F.1", "127.0.0.1", Family::kV4},
      {"2130706433", "127.0.0.1", Family::kV4},
      {"127.0.0.1.", "127.0.0.1", Family::kV4},
      {"%31%32%37.0.0.1", "127.0.0.1", Family::kV4},
      {"１２７.０.０.１", "127.0.0.1", Family::kV4},
      {"[::1]", "::1", Family::kV6},
      {"::1", "::1", Family::kV6},
      {"%5B::1%5D", "::1", Family::kV6},
      {"[2001:DB8::1]", "2001:db8::1", Family::kV6},
      {"[::ffff:7f00:1]", "127.0.0.1", Family::kV4},
  };
  for (const auto& c : cases) {
    auto target = normalise_host(c.raw, 80);
    ASSERT_TRUE(target) << c.raw << ": " << target.error().message;
    EXPECT_EQ(target->host, c.host) << c.raw;
    ASSERT_TRUE(target->ip) << c.raw;
    EXPECT_EQ(target->ip->family, c.family) << c.raw;
    EXPECT_EQ(format_ip(*target->ip), c.host) << c.raw;
  }
}

TEST(NormaliseHost, RejectsInvalidHosts) {
  const std::string long_label(64, 'a');
  const std::string long_name = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') +
                                "." + std::string(62, 'd');  // 254 bytes
  const std::string cases[] = {
      "", ".", "..", "a..", "a..b", ".a", "exa mple.com", "a/b", "a@b", "a:b", "a*b.com", "a\\b",
      std::string("a\0b", 3), "a\x01" "b", "a\x7f" "b", "%", "%2", "%zz", "%2541", "%00", "a%2fb", "a%20b",
      "[1.2.3.4]", "[::1", "[example.com]", "[fe80::1%25eth0]", "fe80::1%eth0", "[]",
      "1.2.3.256", "256.0.0.1", "example.123", "foo.0x", "foo.0x1f", "1.2.3.4.5",
      "xn--zz.example", "xn--.example", "-ü.a", "\xc3", "ü.xn--zz", "a b.ü", "％41.ü",
      long_label + ".example", long_name,
  };
  for (const auto& raw : cases) {
    auto target = normalise_host(raw, 443);
    EXPECT_FALSE(target) << raw << " -> " << (target ? target->host : "");
  }
}

TEST(NormaliseHost, AcceptsMaximumLengths) {
  const std::string label(63, 'a');
  const std::string name = label + "." + label + "." + label + "." + std::string(61, 'd');  // 253 bytes
  auto at_limit = normalise_host(name, 443);
  ASSERT_TRUE(at_limit) << at_limit.error().message;
  EXPECT_EQ(at_limit->host, name);

  auto with_dot = normalise_host(name + ".", 443);
  ASSERT_TRUE(with_dot) << with_dot.error().message;
  EXPECT_EQ(with_dot->host, name);
}

TEST(NormaliseHost, ErrorsQuoteTheHost) {
  auto space = normalise_host("exa mple.com", 443);
  ASSERT_FALSE(space);
  EXPECT_NE(space.error().message.find("invalid host \"exa mple.com\""), std::string::npos) << space.error().message;

  auto control = normalise_host("a\x1b[2Jb", 443);
  ASSERT_FALSE(control);
  EXPECT_EQ(control.error().message.find('\x1b'), std::string::npos) << control.error().message;

  auto label = normalise_host(std::string(64, 'a') + ".com", 443);
  ASSERT_FALSE(label);
  EXPECT_NE(label.error().message.find("longer than 63 bytes"), std::string::npos) << label.error().message;
}

TEST(NormaliseHost, IsIdempotent) {
  for (const char* raw : {"EXAMPLE.com.", "BÜCHER.example", "💩.la", "0x7f.1", "[::ffff:169.254.169.254]",
                          "[2001:DB8::1]", "_dmarc.Example.com"}) {
    auto first = normalise_host(raw, 443);
    ASSERT_TRUE(first) << raw;
    auto second = normalise_host(first->host, 443);
    ASSERT_TRUE(second) << raw;
    EXPECT_EQ(second->host, first->host) << raw;
    EXPECT_EQ(second->ip, first->ip) << raw;
  }
}

struct AuthorityCase {
  std::string authority;
  std::uint16_t default_port;
  std::string host;
  std::uint16_t port;
  bool is_ip;
};

TEST(ParseAuthority, SplitsHostAndPort) {
  const AuthorityCase cases[] = {
      {"example.com:443", 0, "example.com", 443, false},
      {"example.com", 80, "example.com", 80, false},
      {"user:pw@example.com:443", 0, "example.com", 443, false},
      {"user@evil.example@example.com:8080", 80, "example.com", 8080, false},
      {"EXAMPLE.COM.:65535", 0, "example.com", 65535, false},
      {"example.com:00443", 0, "example.com", 443, false},
      {"example.com:1", 0, "example.com", 1, false},
      {"[::1]:8080", 0, "::1", 8080, true},
      {"[::1]", 443, "::1", 443, true},
      {"[::ffff:127.0.0.1]:80", 0, "127.0.0.1", 80, true},
      {"127.1:22", 0, "127.0.0.1", 22, true},
      {"BÜCHER.example:443", 0, "xn--bcher-kva.example", 443, false},
  };
  for (const auto& c : cases) {
    auto target = parse_authority(c.authority, c.default_port);
    ASSERT_TRUE(target) << c.authority << ": " << target.error().message;
    EXPECT_EQ(target->host, c.host) << c.authority;
    EXPECT_EQ(target->port, c.port) << c.authority;
    EXPECT_EQ(target->ip.has_value(), c.is_ip) << c.authority;
  }
}

TEST(ParseAuthority, RejectsInvalidAuthorities) {
  for (const char* authority :
       {"", ":443", "@:443", "example.com:0", "example.com:65536", "example.com:99999999999999999999",
        "example.com:", "example.com:-1", "example.com:+80", "example.com:0x50", "example.com:8 0", "example.com:80:",
        "::1", "::1:443", "2001:db8::1", "[::1]x", "[::1]:", "[::1", "[::1]]:80", "evil.example/x@example.com",
        "example.com#@evil.example", "example.com?@evil.example", "evil.example\\@example.com", "a b:80",
        "example.com:%34%34%33", "user@", "[1.2.3.4]:80"}) {
    EXPECT_FALSE(parse_authority(authority, 443)) << authority;
  }
}

TEST(ParseAuthority, RequiresPortWithoutDefault) {
  auto missing = parse_authority("example.com", 0);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("port is missing"), std::string::npos) << missing.error().message;
}

TEST(FormatTarget, BracketsIpv6) {
  EXPECT_EQ(format_target(parse_authority("Example.com:443", 0).value()), "example.com:443");
  EXPECT_EQ(format_target(parse_authority("[::1]:8080", 0).value()), "[::1]:8080");
  EXPECT_EQ(format_target(parse_authority("0x7f.1:80", 0).value()), "127.0.0.1:80");
  EXPECT_EQ(format_target(parse_authority("[::ffff:10.0.0.1]:80", 0).value()), "10.0.0.1:80");
}

TEST(FormatTarget, RoundTripsThroughParseAuthority) {
  for (const char* authority : {"example.com:443", "[2001:db8::1]:8443", "10.0.0.1:80", "xn--bcher-kva.example:1"}) {
    auto target = parse_authority(authority, 0);
    ASSERT_TRUE(target) << authority;
    EXPECT_EQ(format_target(*target), authority);
    auto again = parse_authority(format_target(*target), 0);
    ASSERT_TRUE(again) << authority;
    EXPECT_EQ(again->host, target->host);
    EXPECT_EQ(again->ip, target->ip);
    EXPECT_EQ(again->port, target->port);
  }
}

}  // namespace
}  // namespace zwrm::proxy
