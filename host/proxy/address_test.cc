#include "host/proxy/address.h"

#include <arpa/inet.h>

#include <gtest/gtest.h>

namespace zwrm::proxy {
namespace {

using Family = IpAddress::Family;

// Builds an IPv6 address from its text without the IPv4 mapping that
// parse_ip_literal applies, as a resolver would return it.
IpAddress raw_v6(const char* text) {
  IpAddress address;
  address.family = Family::kV6;
  EXPECT_EQ(inet_pton(AF_INET6, text, address.bytes.data()), 1) << text;
  return address;
}

IpAddress ip(const char* text) {
  auto address = parse_ip_literal(text);
  EXPECT_TRUE(address) << text;
  return address.value_or(IpAddress{});
}

struct LiteralCase {
  const char* text;
  const char* formatted;
  Family family;
};

TEST(ParseIpLiteral, AcceptsEveryInetAtonSpelling) {
  const LiteralCase cases[] = {
      {"127.0.0.1", "127.0.0.1", Family::kV4},
      {"127.1", "127.0.0.1", Family::kV4},
      {"10.1.1", "10.1.0.1", Family::kV4},
      {"2130706433", "127.0.0.1", Family::kV4},
      {"0x7f000001", "127.0.0.1", Family::kV4},
      {"0X7F000001", "127.0.0.1", Family::kV4},
      {"017700000001", "127.0.0.1", Family::kV4},
      {"0x7f.0.0.1", "127.0.0.1", Family::kV4},
      {"0177.0.0.1", "127.0.0.1", Family::kV4},
      {"0x7f.1", "127.0.0.1", Family::kV4},
      {"0177.0x0.00.01", "127.0.0.1", Family::kV4},
      {"0", "0.0.0.0", Family::kV4},
      {"00", "0.0.0.0", Family::kV4},
      {"4294967295", "255.255.255.255", Family::kV4},
      {"1.0xffffff", "1.255.255.255", Family::kV4},
      {"1.2.0xffff", "1.2.255.255", Family::kV4},
      {"1.2.3.0xff", "1.2.3.255", Family::kV4},
      {"169.254.43518", "169.254.169.254", Family::kV4},
  };
  for (const auto& c : cases) {
    auto address = parse_ip_literal(c.text);
    ASSERT_TRUE(address) << c.text;
    EXPECT_EQ(address->family, c.family) << c.text;
    EXPECT_EQ(format_ip(*address), c.formatted) << c.text;
  }
}

TEST(ParseIpLiteral, AcceptsIpv6AndUnmapsIpv4) {
  const LiteralCase cases[] = {
      {"::1", "::1", Family::kV6},
      {"[::1]", "::1", Family::kV6},
      {"::", "::", Family::kV6},
      {"2001:db8::1", "2001:db8::1", Family::kV6},
      {"[2001:DB8:0:0:0:0:0:1]", "2001:db8::1", Family::kV6},
      {"::ffff:127.0.0.1", "127.0.0.1", Family::kV4},
      {"::ffff:7f00:1", "127.0.0.1", Family::kV4},
      {"[::ffff:169.254.169.254]", "169.254.169.254", Family::kV4},
      {"::127.0.0.1", "127.0.0.1", Family::kV4},
      {"::2", "0.0.0.2", Family::kV4},
      {"64:ff9b::7f00:1", "64:ff9b::7f00:1", Family::kV6},
      {"fe80::1", "fe80::1", Family::kV6},
  };
  for (const auto& c : cases) {
    auto address = parse_ip_literal(c.text);
    ASSERT_TRUE(address) << c.text;
    EXPECT_EQ(address->family, c.family) << c.text;
    EXPECT_EQ(format_ip(*address), c.formatted) << c.text;
  }
}

TEST(ParseIpLiteral, RejectsNonLiterals) {
  for (const char* text :
       {"", "256.1.1.1", "1.2.3.256", "1.2.3.0x100", "4294967296", "0x100000000", "1.16777216", "1.2.65536",
        "1..2", ".1", "1.", "1.2.3.4.", "1.2.3.4.5", "08", "09.1.1.1", "0x", "0x.1", "0xg", "1.2.3.4 ", " 1.2.3.4",
        "+1", "-1", "1.2.3.4x", "99999999999999999999", "example.com", "localhost", "fe80::1%eth0",
        "[fe80::1%eth0]", "[::1", "::1]", "[1.2.3.4]", "[]", ":::1", "1:2:3:4:5:6:7:8:9", "::ffff:127.1",
        "::ffff:0x7f.0.0.1"}) {
    EXPECT_FALSE(parse_ip_literal(text)) << text;
  }
}

TEST(FormatIp, WritesCanonicalText) {
  EXPECT_EQ(format_ip(ip("192.0.2.1")), "192.0.2.1");
  EXPECT_EQ(format_ip(ip("2001:db8:0:0:1:0:0:1")), "2001:db8::1:0:0:1");
  EXPECT_EQ(format_ip(ip("2001:0DB8::0001")), "2001:db8::1");
  EXPECT_EQ(format_ip(raw_v6("::ffff:10.0.0.1")), "::ffff:10.0.0.1");
}

TEST(ParseCidr, AcceptsCanonicalRanges) {
  const std::pair<const char*, const char*> cases[] = {
      {"10.0.0.0/8", "10.0.0.0/8"},
      {"192.0.2.7", "192.0.2.7/32"},
      {"192.0.2.7/32", "192.0.2.7/32"},
      {"0.0.0.0/0", "0.0.0.0/0"},
      {"100.64.0.0/10", "100.64.0.0/10"},
      {"fd00::/8", "fd00::/8"},
      {"FD00::/8", "fd00::/8"},
      {"[fd00::1]", "fd00::1/128"},
      {"[fd00::/8]", "fd00::/8"},
      {"::/0", "::/0"},
      {"::1", "::1/128"},
      {"2001:db8::/32", "2001:db8::/32"},
      {"64:ff9b::/96", "64:ff9b::/96"},
  };
  for (const auto& [text, formatted] : cases) {
    auto cidr = parse_cidr(text);
    ASSERT_TRUE(cidr) << text << ": " << cidr.error().message;
    EXPECT_EQ(format_cidr(*cidr), formatted) << text;
    auto again = parse_cidr(format_cidr(*cidr));
    ASSERT_TRUE(again) << text;
    EXPECT_EQ(*again, *cidr) << text;
  }
}

TEST(ParseCidr, RejectsOddSpellingsAndBadPrefixes) {
  for (const char* text :
       {"", "example.com", "127.1", "0x7f.0.0.1", "010.0.0.0/8", "2130706433", "10.0.0.0/", "10.0.0.0/33",
        "10.0.0.0/08", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8/8", "fd00::/129", "[10.0.0.0/8]", "[fd00::]/8",
        "[fd00::/8", "fe80::1%eth0/64", "10.0.0.1/8", "fd00::1/8", "::ffff:10.0.0.0/104", "::ffff:127.0.0.1",
        "::10.0.0.0/104", " 10.0.0.0/8"}) {
    EXPECT_FALSE(parse_cidr(text)) << text;
  }
}

TEST(ParseCidr, ErrorsNameTheFix) {
  auto host_bits = parse_cidr("10.0.0.1/8");
  ASSERT_FALSE(host_bits);
  EXPECT_NE(host_bits.error().message.find("\"10.0.0.1/8\""), std::string::npos) << host_bits.error().message;
  EXPECT_NE(host_bits.error().message.find("10.0.0.0/8"), std::string::npos) << host_bits.error().message;

  auto short_form = parse_cidr("127.1");
  ASSERT_FALSE(short_form);
  EXPECT_NE(short_form.error().message.find("127.0.0.1"), std::string::npos) << short_form.error().message;

  auto mapped = parse_cidr("::ffff:10.0.0.0/104");
  ASSERT_FALSE(mapped);
  EXPECT_NE(mapped.error().message.find("10.0.0.0/8"), std::string::npos) << mapped.error().message;
}

TEST(CidrContains, MatchesPrefixBits) {
  const Cidr private10 = parse_cidr("10.0.0.0/8").value();
  EXPECT_TRUE(private10.contains(ip("10.0.0.0")));
  EXPECT_TRUE(private10.contains(ip("10.255.255.255")));
  EXPECT_FALSE(private10.contains(ip("11.0.0.0")));
  EXPECT_FALSE(private10.contains(ip("9.255.255.255")));

  const Cidr cgn = parse_cidr("100.64.0.0/10").value();
  EXPECT_TRUE(cgn.contains(ip("100.127.255.255")));
  EXPECT_FALSE(cgn.contains(ip("100.128.0.0")));
  EXPECT_FALSE(cgn.contains(ip("100.63.255.255")));

  const Cidr host = parse_cidr("192.0.2.7").value();
  EXPECT_TRUE(host.contains(ip("192.0.2.7")));
  EXPECT_FALSE(host.contains(ip("192.0.2.8")));

  const Cidr unique_local = parse_cidr("fd00::/8").value();
  EXPECT_TRUE(unique_local.contains(ip("fd12::1")));
  EXPECT_FALSE(unique_local.contains(ip("fe00::1")));
}

TEST(CidrContains, ComparesOnlyTheSameFamily) {
  const Cidr all_v4 = parse_cidr("0.0.0.0/0").value();
  const Cidr all_v6 = parse_cidr("::/0").value();
  EXPECT_TRUE(all_v4.contains(ip("203.0.113.9")));
  EXPECT_FALSE(all_v4.contains(ip("2001:db8::1")));
  EXPECT_TRUE(all_v6.contains(ip("2001:db8::1")));
  EXPECT_FALSE(all_v6.contains(ip("203.0.113.9")));
}

TEST(CidrContains, SeesMappedAddressesAsIpv4) {
  const Cidr private10 = parse_cidr("10.0.0.0/8").value();
  EXPECT_TRUE(private10.contains(raw_v6("::ffff:10.1.2.3")));
  EXPECT_FALSE(parse_cidr("::/0").value().contains(raw_v6("::ffff:10.1.2.3")));
}

TEST(SpecialRange, NamesEveryIpv4Range) {
  const std::pair<const char*, const char*> cases[] = {
      {"0.0.0.0", "unspecified"},
      {"0.255.255.255", "unspecified"},
      {"10.0.0.1", "private"},
      {"172.16.0.1", "private"},
      {"172.31.255.255", "private"},
      {"192.168.1.1", "private"},
      {"100.64.0.1", "carrier-grade NAT"},
      {"100.127.255.255", "carrier-grade NAT"},
      {"100.100.100.200", "metadata"},
      {"127.0.0.1", "loopback"},
      {"127.255.255.254", "loopback"},
      {"169.254.0.1", "link-local"},
      {"169.254.169.254", "metadata"},
      {"192.0.0.8", "reserved"},
      {"192.0.2.1", "documentation"},
      {"198.51.100.1", "documentation"},
      {"203.0.113.1", "documentation"},
      {"198.18.0.1", "benchmarking"},
      {"198.19.255.255", "benchmarking"},
      {"224.0.0.1", "multicast"},
      {"239.255.255.250", "multicast"},
      {"240.0.0.1", "reserved"},
      {"255.255.255.254", "reserved"},
      {"255.255.255.255", "broadcast"},
      {"192.88.99.1", "6to4"},
  };
  for (const auto& [text, name] : cases) {
    auto range = special_range(ip(text));
    ASSERT_TRUE(range) << text;
    EXPECT_EQ(*range, name) << text;
  }
}

TEST(SpecialRange, NamesEveryIpv6Range) {
  const std::pair<const char*, const char*> cases[] = {
      {"::", "unspecified"},
      {"::1", "loopback"},
      {"fc00::1", "unique-local"},
      {"fd12:3456::1", "unique-local"},
      {"fe80::1", "link-local"},
      {"febf:ffff::1", "link-local"},
      {"ff02::1", "multicast"},
      {"2001:db8::1", "documentation"},
      {"3fff::1", "documentation"},
      {"64:ff9b::7f00:1", "NAT64"},
      {"64:ff9b:1::1", "NAT64"},
      {"2002:7f00:1::1", "6to4"},
      {"2001::1", "Teredo"},
      {"2001:0:ffff::1", "Teredo"},
      {"100::1", "discard-only"},
      {"fd00:ec2::254", "metadata"},
      {"2001:1::1", "reserved"},
      {"2001:1ff::1", "reserved"},
      {"5f00::1", "reserved"},
      {"fec0::1", "reserved"},
      {"4000::1", "reserved"},
      {"1::1", "reserved"},
  };
  for (const auto& [text, name] : cases) {
    auto range = special_range(ip(text));
    ASSERT_TRUE(range) << text;
    EXPECT_EQ(*range, name) << text;
  }
}

TEST(SpecialRange, ReturnsNulloptForPublicAddresses) {
  for (const char* text :
       {"8.8.8.8", "1.1.1.1", "93.184.216.34", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0",
        "126.255.255.255", "128.0.0.0", "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0",
        "192.0.1.1", "192.0.3.1", "192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0",
        "223.255.255.255", "2606:4700::1111", "2001:4860:4860::8888", "2001:200::1", "2a00:1450::1",
        "3fff:1000::1"}) {
    EXPECT_FALSE(special_range(ip(text))) << text;
  }
}

TEST(SpecialRange, ClassifiesResolvedIpv6ByWhereItLeads) {
  EXPECT_EQ(special_range(raw_v6("::ffff:127.0.0.1")), "loopback");
  EXPECT_EQ(special_range(raw_v6("::ffff:169.254.169.254")), "metadata");
  EXPECT_FALSE(special_range(raw_v6("::ffff:8.8.8.8")));
  // An IPv4-compatible address is not routed to IPv4, so it stays IPv6.
  EXPECT_EQ(special_range(raw_v6("::8.8.8.8")), "reserved");
}

}  // namespace
}  // namespace zwrm::proxy
