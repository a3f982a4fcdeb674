// A token bucket for byte rates: tokens accrue at rate bytes per second up
// to burst, and each byte sent or received spends one.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace zwrm::proxy {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // rate 0 means unlimited. burst defaults to a tenth of a second of rate,
  // at least 16 KiB, so a transfer is smooth at 100 ms scale. A burst above
  // kMaxBurst is clamped to it. The bucket starts full.
  explicit TokenBucket(std::uint64_t rate = 0, std::uint64_t burst = 0);

  // Keeps the token count and the debt within a signed 64-bit integer.
  static constexpr std::uint64_t kMaxBurst = std::uint64_t{1} << 62;

  bool unlimited() const { return rate_ == 0; }
  // Bytes that may be spent now (after refilling up to now). Unlimited
  // buckets return the maximum uint64_t. A now earlier than the last call's
  // adds nothing.
  std::uint64_t available(Clock::time_point now);
  // Spends bytes; may exceed what is available, and the debt is repaid
  // before available() grows again. The debt is capped at kMaxBurst.
  void spend(std::uint64_t bytes);
  // Time until at least one token is available: zero when there is one now,
  // otherwise rounded up to whole milliseconds and at most kMaxWait, so that
  // now + wait_time() cannot overflow. A caller that wakes after kMaxWait
  // calls wait_time() again.
  std::chrono::milliseconds wait_time(Clock::time_point now);

  static constexpr std::chrono::milliseconds kMaxWait = std::chrono::hours(24);

 private:
  // Adds the tokens accrued since the last refill, up to burst_.
  void refill(Clock::time_point now);

  std::uint64_t rate_ = 0;   // bytes per second; 0 means unlimited
  std::uint64_t burst_ = 0;  // bytes
  // Whole tokens, negative while spending has gone into debt.
  std::int64_t tokens_ = 0;
  // The part of a token accrued beyond tokens_, in billionths of a byte:
  // refill adds elapsed_ns * rate_ / 1e9 tokens and keeps the remainder here.
  std::uint64_t fraction_ = 0;
  // Unset until the first call with a time point, so that bytes spent
  // before it are not forgiven by a refill from the clock's epoch.
  std::optional<Clock::time_point> last_refill_;
};

}  // namespace zwrm::proxy
