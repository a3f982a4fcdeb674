#include "host/proxy/token_bucket.h"

#include <algorithm>
#include <limits>

namespace zwrm::proxy {
namespace {

constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;
constexpr std::uint64_t kNanosPerMilli = 1'000'000;
constexpr std::uint64_t kMinBurst = 16 * 1024;

// Products of a nanosecond count and a rate overflow 64 bits (one second at
// 100 GiB/s is about 1.1e20 byte-nanoseconds), so they use 128 bits, which
// GCC and Clang provide on every 64-bit target.
using Wide = unsigned __int128;

}  // namespace

TokenBucket::TokenBucket(std::uint64_t rate, std::uint64_t burst) : rate_(rate) {
  if (burst == 0) burst = std::max(rate / 10, kMinBurst);
  burst_ = std::min(burst, kMaxBurst);
  tokens_ = static_cast<std::int64_t>(burst_);
}

void TokenBucket::refill(Clock::time_point now) {
  if (!last_refill_) {
    last_refill_ = now;
    return;
  }
  if (now <= *last_refill_) return;
  const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(now - *last_refill_).count();
  last_refill_ = now;

  // deficit is at most 2^63 because burst_ and the debt are each at most 2^62.
  const std::uint64_t deficit = burst_ - static_cast<std::uint64_t>(tokens_);
  const Wide units = Wide{static_cast<std::uint64_t>(elapsed)} * rate_ + fraction_;
  const Wide added = units / kNanosPerSecond;
  if (added >= deficit) {
    tokens_ = static_cast<std::int64_t>(burst_);
    fraction_ = 0;
    return;
  }
  tokens_ += static_cast<std::int64_t>(added);
  fraction_ = static_cast<std::uint64_t>(units % kNanosPerSecond);
}

std::uint64_t TokenBucket::available(Clock::time_point now) {
  if (unlimited()) return std::numeric_limits<std::uint64_t>::max();
  refill(now);
  return tokens_ > 0 ? static_cast<std::uint64_t>(tokens_) : 0;
}

void TokenBucket::spend(std::uint64_t bytes) {
  if (unlimited()) return;
  // room is tokens_ + kMaxBurst, which lies in [0, 2^63]. Unsigned
  // wraparound computes it exactly even when tokens_ is negative.
  const std::uint64_t room = static_cast<std::uint64_t>(tokens_) + kMaxBurst;
  if (bytes >= room) {
    tokens_ = -static_cast<std::int64_t>(kMaxBurst);
    return;
  }
  tokens_ -= static_cast<std::int64_t>(bytes);
}

std::chrono::milliseconds TokenBucket::wait_time(Clock::time_point now) {
  if (unlimited()) return std::chrono::milliseconds(0);
  refill(now);
  if (tokens_ >= 1) return std::chrono::milliseconds(0);

  // The first t with floor((t * rate_ + fraction_) / 1e9) >= needed, in ns,
  // then rounded up to milliseconds: one division by rate_ * 1e6 does both.
  const std::uint64_t needed = 1 - static_cast<std::uint64_t>(tokens_);
  const Wide units = Wide{needed} * kNanosPerSecond - fraction_;
  const Wide per_milli = Wide{rate_} * kNanosPerMilli;
  const Wide millis = (units + per_milli - 1) / per_milli;
  if (millis >= static_cast<Wide>(kMaxWait.count())) return kMaxWait;
  return std::chrono::milliseconds(static_cast<std::int64_t>(millis));
}

}  // namespace zwrm::proxy
