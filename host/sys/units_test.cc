#include "host/sys/units.h"

#include <gtest/gtest.h>

namespace zwrm::sys {
namespace {

using std::chrono::milliseconds;

TEST(Units, ParsesDurations) {
  EXPECT_EQ(parse_duration("90").value(), milliseconds(90'000));
  EXPECT_EQ(parse_duration("5s").value(), milliseconds(5'000));
  EXPECT_EQ(parse_duration("1h30m").value(), milliseconds(5'400'000));
  EXPECT_EQ(parse_duration("500ms").value(), milliseconds(500));
  EXPECT_EQ(parse_duration("1.5s").value(), milliseconds(1'500));
  EXPECT_EQ(parse_duration("2d").value(), milliseconds(172'800'000));
}

TEST(Units, RejectsBadDurations) {
  for (const char* text : {"", "s", "5x", "-5s", "5 s", "1h30", "abc"}) {
    auto parsed = parse_duration(text);
    EXPECT_FALSE(parsed) << text;
  }
  auto error = parse_duration("5x");
  ASSERT_FALSE(error);
  EXPECT_NE(error.error().message.find("invalid duration '5x'"), std::string::npos);
  EXPECT_FALSE(parse_duration("100000d"));
}

TEST(Units, ParsesSizes) {
  EXPECT_EQ(parse_size("512M").value(), 512ull << 20);
  EXPECT_EQ(parse_size("10G").value(), 10ull << 30);
  EXPECT_EQ(parse_size("10GiB").value(), 10ull << 30);
  EXPECT_EQ(parse_size("1.5g").value(), 3ull << 29);
  EXPECT_EQ(parse_size("4096").value(), 4096u);
}

TEST(Units, RejectsBadSizes) {
  for (const char* text : {"", "G", "10X", "-1G", "10 G"}) {
    EXPECT_FALSE(parse_size(text)) << text;
  }
}

TEST(Units, FormatsSizesAndDurations) {
  EXPECT_EQ(format_size(10ull << 30), "10 GiB");
  EXPECT_EQ(format_size(3ull << 29), "1.5 GiB");
  EXPECT_EQ(format_size(100), "100 B");
  EXPECT_EQ(format_duration(milliseconds(850)), "850ms");
  EXPECT_EQ(format_duration(milliseconds(4'200)), "4.2s");
  EXPECT_EQ(format_duration(milliseconds(185'000)), "3m05s");
  EXPECT_EQ(format_duration(milliseconds(3'720'000)), "1h02m");
}

}  // namespace
}  // namespace zwrm::sys
