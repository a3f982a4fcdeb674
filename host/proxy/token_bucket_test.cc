#include "host/proxy/token_bucket.h"

#include <gtest/gtest.h>

#include <limits>

namespace zwrm::proxy {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kGiB = 1024 * 1024 * 1024;

// An arbitrary start well after the clock's epoch.
const TokenBucket::Clock::time_point kStart{hours(1000)};

TEST(TokenBucket, UnlimitedByDefault) {
  TokenBucket bucket;
  EXPECT_TRUE(bucket.unlimited());
  bucket.spend(kGiB);
  EXPECT_EQ(bucket.available(kStart), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(bucket.wait_time(kStart), milliseconds(0));
}

TEST(TokenBucket, StartsFullAtBurst) {
  TokenBucket bucket(1000, 5000);
  EXPECT_FALSE(bucket.unlimited());
  EXPECT_EQ(bucket.available(kStart), 5000u);
  EXPECT_EQ(bucket.wait_time(kStart), milliseconds(0));
}

TEST(TokenBucket, DefaultBurst) {
  // A tenth of a second of rate, at least 16 KiB.
  EXPECT_EQ(TokenBucket(10 * 1024 * kKiB).available(kStart), 1024 * kKiB);
  EXPECT_EQ(TokenBucket(1000).available(kStart), 16 * kKiB);
  EXPECT_EQ(TokenBucket(160 * kKiB).available(kStart), 16 * kKiB);
}

TEST(TokenBucket, RefillsAtRate) {
  TokenBucket bucket(1000, 5000);
  ASSERT_EQ(bucket.available(kStart), 5000u);
  bucket.spend(5000);
  EXPECT_EQ(bucket.available(kStart), 0u);
  EXPECT_EQ(bucket.available(kStart + milliseconds(1)), 1u);
  EXPECT_EQ(bucket.available(kStart + milliseconds(500)), 500u);
  EXPECT_EQ(bucket.available(kStart + seconds(2)), 2000u);
  // Never above burst.
  EXPECT_EQ(bucket.available(kStart + hours(1)), 5000u);
}

TEST(TokenBucket, KeepsFractionalTokens) {
  // At 3 bytes per second one byte takes 333.3 ms; no part of it is lost
  // between calls.
  TokenBucket bucket(3, 100);
  ASSERT_EQ(bucket.available(kStart), 100u);
  bucket.spend(100);
  EXPECT_EQ(bucket.available(kStart + milliseconds(333)), 0u);
  EXPECT_EQ(bucket.available(kStart + milliseconds(334)), 1u);
  EXPECT_EQ(bucket.available(kStart + seconds(1)), 3u);

  // A thousand 1 ms steps at 1 byte per second add exactly one byte.
  TokenBucket slow(1, 10);
  ASSERT_EQ(slow.available(kStart), 10u);
  slow.spend(10);
  for (int step = 1; step < 1000; ++step) ASSERT_EQ(slow.available(kStart + milliseconds(step)), 0u) << step;
  EXPECT_EQ(slow.available(kStart + milliseconds(1000)), 1u);
}

TEST(TokenBucket, RepaysDebtFirst) {
  TokenBucket bucket(1000, 1000);
  ASSERT_EQ(bucket.available(kStart), 1000u);
  bucket.spend(3000);
  EXPECT_EQ(bucket.available(kStart), 0u);
  EXPECT_EQ(bucket.available(kStart + seconds(2)), 0u);
  EXPECT_EQ(bucket.available(kStart + milliseconds(2001)), 1u);
}

TEST(TokenBucket, WaitTime) {
  TokenBucket bucket(1000, 1000);
  ASSERT_EQ(bucket.available(kStart), 1000u);
  bucket.spend(1000);
  EXPECT_EQ(bucket.wait_time(kStart), milliseconds(1));
  bucket.spend(999);
  EXPECT_EQ(bucket.wait_time(kStart), milliseconds(1000));
  EXPECT_EQ(bucket.wait_time(kStart + milliseconds(400)), milliseconds(600));
  EXPECT_EQ(bucket.wait_time(kStart + milliseconds(1000)), milliseconds(0));

  // Rounded up: one byte at 3 bytes per second takes 333.3 ms.
  TokenBucket slow(3, 10);
  ASSERT_EQ(slow.available(kStart), 10u);
  slow.spend(10);
  EXPECT_EQ(slow.wait_time(kStart), milliseconds(334));
  // The partial token accrued so far shortens the wait.
  EXPECT_EQ(slow.wait_time(kStart + milliseconds(200)), milliseconds(134));
}

TEST(TokenBucket, WaitTimeIsEnough) {
  // Waiting the returned time always makes a token available.
  for (std::uint64_t rate : {std::uint64_t{1}, std::uint64_t{3}, std::uint64_t{7}, std::uint64_t{999},
                             std::uint64_t{1001}, 100 * kGiB}) {
    TokenBucket bucket(rate, 50);
    auto now = kStart;
    ASSERT_EQ(bucket.available(now), 50u);
    for (int round = 0; round < 20; ++round) {
      bucket.spend(bucket.available(now) + 17);
      const milliseconds wait = bucket.wait_time(now);
      ASSERT_GT(wait, milliseconds(0)) << rate;
      now += wait;
      ASSERT_GE(bucket.available(now), 1u) << rate << " round " << round;
    }
  }
}

TEST(TokenBucket, HighRatesDoNotOverflow) {
  const std::uint64_t rate = 100 * kGiB;
  TokenBucket bucket(rate);
  const std::uint64_t burst = rate / 10;
  ASSERT_EQ(bucket.available(kStart), burst);

  bucket.spend(burst);
  EXPECT_EQ(bucket.available(kStart + milliseconds(1)), rate / 1000);
  EXPECT_EQ(bucket.available(kStart + milliseconds(50)), rate / 20);
  // Years of idle time: the product of elapsed nanoseconds and rate is far
  // beyond 64 bits.
  EXPECT_EQ(bucket.available(kStart + hours(24 * 365 * 50)), burst);

  bucket.spend(burst + 3 * rate);
  EXPECT_EQ(bucket.wait_time(kStart + hours(24 * 365 * 50)), milliseconds(3001));
}

TEST(TokenBucket, CapsHugeDebtAndWait) {
  TokenBucket bucket(1, 10);
  ASSERT_EQ(bucket.available(kStart), 10u);
  bucket.spend(std::numeric_limits<std::uint64_t>::max());
  bucket.spend(std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(bucket.available(kStart + hours(24 * 365)), 0u);
  EXPECT_EQ(bucket.wait_time(kStart), TokenBucket::kMaxWait);

  TokenBucket huge_burst(kGiB, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(huge_burst.available(kStart), TokenBucket::kMaxBurst);
}

TEST(TokenBucket, IgnoresEarlierTimePoints) {
  TokenBucket bucket(1000, 1000);
  ASSERT_EQ(bucket.available(kStart), 1000u);
  bucket.spend(1000);
  EXPECT_EQ(bucket.available(kStart + milliseconds(10)), 10u);
  EXPECT_EQ(bucket.available(kStart), 10u);
  EXPECT_EQ(bucket.available(kStart + milliseconds(20)), 20u);
}

TEST(TokenBucket, DebtBeforeFirstTimePointIsKept) {
  TokenBucket bucket(1000, 1000);
  bucket.spend(1000);
  EXPECT_EQ(bucket.available(kStart), 0u);
  EXPECT_EQ(bucket.available(kStart + milliseconds(5)), 5u);
}

TEST(TokenBucket, SubMillisecondSteps) {
  TokenBucket bucket(kGiB, kGiB);
  ASSERT_EQ(bucket.available(kStart), kGiB);
  bucket.spend(kGiB);
  // 1 GiB/s is 1.073741824 bytes per nanosecond.
  EXPECT_EQ(bucket.available(kStart + nanoseconds(1)), 1u);
  EXPECT_EQ(bucket.available(kStart + nanoseconds(1000)), 1073u);
}

}  // namespace
}  // namespace zwrm::proxy
