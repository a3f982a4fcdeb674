#include "host/sys/units.h"

#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>

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

// 2026-12-04T10:00:00Z in Unix milliseconds.
constexpr std::int64_t kDecemberFourth = 1'796'378'400'000;

// Sets TZ for the test and restores it afterwards, because plain dates and
// times are local.
class TimeZone {
 public:
  explicit TimeZone(const char* zone) {
    if (const char* previous = std::getenv("TZ")) previous_ = previous;
    ::setenv("TZ", zone, 1);
    ::tzset();
  }
  ~TimeZone() {
    if (previous_) {
      ::setenv("TZ", previous_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }

 private:
  std::optional<std::string> previous_;
};

TEST(Units, ParsesTimesBackFromNow) {
  const std::int64_t now = kDecemberFourth;
  EXPECT_EQ(parse_time("1h", now).value(), now - 3'600'000);
  EXPECT_EQ(parse_time("30m", now).value(), now - 1'800'000);
  EXPECT_EQ(parse_time("2d", now).value(), now - 172'800'000);
  EXPECT_EQ(parse_time("0s", now).value(), now);
}

TEST(Units, ParsesTimesWithZone) {
  EXPECT_EQ(parse_time("2026-12-04T10:00:00Z", 0).value(), kDecemberFourth);
  EXPECT_EQ(parse_time("2026-12-04 10:00:00z", 0).value(), kDecemberFourth);
  EXPECT_EQ(parse_time("2026-12-04T10:00:00.25Z", 0).value(), kDecemberFourth + 250);
  EXPECT_EQ(parse_time("2026-12-04T11:00:00+01:00", 0).value(), kDecemberFourth);
  EXPECT_EQ(parse_time("2026-12-04T05:00-0500", 0).value(), kDecemberFourth);
  EXPECT_EQ(parse_time("2026-12-04T12:00+02", 0).value(), kDecemberFourth);
}

TEST(Units, ParsesLocalTimes) {
  TimeZone zone("UTC-2");  // POSIX: two hours east of UTC
  EXPECT_EQ(parse_time("2026-12-04 12:00", 0).value(), kDecemberFourth);
  EXPECT_EQ(parse_time("2026-12-04T12:00:00", 0).value(), kDecemberFourth);
  EXPECT_EQ(parse_time("2026-12-04", 0).value(), kDecemberFourth - 12 * 3'600'000);
  EXPECT_EQ(format_local_time(kDecemberFourth + 999), "2026-12-04 12:00:00");
}

TEST(Units, RejectsBadTimes) {
  for (const char* text : {"", "2026", "90", "yesterday", "2026-12", "2026-13-01", "2026-02-30", "2026-12-04 24:00",
                           "2026-12-04 10", "2026-12-04 10:60", "2026-12-04T10:00:00.", "2026-12-04T10:00+1",
                           "2026-12-04T10:00 UTC", "2026-12-04x", "-1h"}) {
    EXPECT_FALSE(parse_time(text, kDecemberFourth)) << text;
  }
  auto bare = parse_time("2026", kDecemberFourth);
  ASSERT_FALSE(bare);
  EXPECT_NE(bare.error().message.find("invalid time '2026': a duration needs a unit"), std::string::npos)
      << bare.error().message;
  auto impossible = parse_time("2026-02-30", kDecemberFourth);
  ASSERT_FALSE(impossible);
  EXPECT_NE(impossible.error().message.find("no such date"), std::string::npos) << impossible.error().message;
}

}  // namespace
}  // namespace zwrm::sys
