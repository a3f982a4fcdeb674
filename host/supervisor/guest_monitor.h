// Watches a running guest from the host: whether it still replies to pings
// (a guest kernel that halted or hung sends nothing), and whether the run is
// idle (no terminal input or output, no guest CPU use) for its idle deadline.
//
// The supervisor feeds it events and the clock; it only decides when to
// ping and what has expired, so it is tested without a VM.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace zwrm::supervisor {

class GuestMonitor {
 public:
  using Clock = std::chrono::steady_clock;

  // A guest silent this long gets a ping.
  static constexpr std::chrono::seconds kPingAfter{10};
  // A guest silent this long is taken for dead. The init replies to pings
  // from its event loop, which stays responsive while output is throttled.
  static constexpr std::chrono::seconds kUnresponsiveAfter{30};
  // With an idle deadline, the guest is sampled every quarter of it, within
  // these bounds.
  static constexpr std::chrono::milliseconds kMinSampleInterval{1000};
  static constexpr std::chrono::milliseconds kMaxSampleInterval{5000};
  // A guest busy for more than this share of one vCPU over a sample
  // interval is active. A sleeping guest uses well under 1 % (timer ticks).
  static constexpr double kBusyShare = 0.02;

  GuestMonitor(std::optional<std::chrono::milliseconds> idle_timeout, unsigned cpus)
      : idle_timeout_(idle_timeout), cpus_(cpus) {}

  // The guest is ready: starts the idle clock.
  void start(Clock::time_point now);
  // Any frame from the guest proves it is alive.
  void on_guest_frame(Clock::time_point now);
  // Terminal input, command output or an extended deadline.
  void on_activity(Clock::time_point now) { last_activity_ = now; }
  // A pong with the guest's busy CPU time since boot.
  void on_pong(std::uint64_t cpu_busy_ms, Clock::time_point now);

  // True when a ping is due; ping_sent() records that one went out.
  bool ping_due(Clock::time_point now) const;
  void ping_sent(Clock::time_point now);

  bool unresponsive(Clock::time_point now) const { return started_ && now - last_frame_ >= kUnresponsiveAfter; }
  bool idle(Clock::time_point now) const;
  // The next moment one of the above can change, for the event loop's timeout.
  std::optional<Clock::time_point> next_wakeup() const;

 private:
  Clock::duration sample_interval() const;

  std::optional<std::chrono::milliseconds> idle_timeout_;
  unsigned cpus_;
  bool started_ = false;
  Clock::time_point last_frame_{};
  Clock::time_point last_activity_{};
  Clock::time_point last_ping_{};
  bool ping_outstanding_ = false;
  std::optional<std::uint64_t> last_cpu_busy_ms_;
  Clock::time_point last_cpu_sample_{};
};

}  // namespace zwrm::supervisor
