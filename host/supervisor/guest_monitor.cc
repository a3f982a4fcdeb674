#include "host/supervisor/guest_monitor.h"

#include <algorithm>

namespace zwrm::supervisor {

void GuestMonitor::start(Clock::time_point now) {
  started_ = true;
  last_frame_ = now;
  last_activity_ = now;
  // With an idle deadline, ping at once: the first pong gives the CPU
  // baseline that later pongs are compared with.
  last_ping_ = idle_timeout_ ? now - sample_interval() : now;
}

void GuestMonitor::on_guest_frame(Clock::time_point now) {
  last_frame_ = now;
  ping_outstanding_ = false;
}

void GuestMonitor::on_pong(std::uint64_t cpu_busy_ms, Clock::time_point now) {
  if (last_cpu_busy_ms_) {
    const double interval_ms = std::chrono::duration<double, std::milli>(now - last_cpu_sample_).count();
    const double busy_ms = static_cast<double>(cpu_busy_ms - std::min(cpu_busy_ms, *last_cpu_busy_ms_));
    if (interval_ms > 0 && busy_ms > kBusyShare * interval_ms) last_activity_ = now;
  }
  last_cpu_busy_ms_ = cpu_busy_ms;
  last_cpu_sample_ = now;
}

GuestMonitor::Clock::duration GuestMonitor::sample_interval() const {
  if (!idle_timeout_) return kPingAfter;
  return std::clamp(*idle_timeout_ / 4, kMinSampleInterval, kMaxSampleInterval);
}

bool GuestMonitor::ping_due(Clock::time_point now) const {
  if (!started_ || ping_outstanding_) return false;
  if (idle_timeout_) return now - last_ping_ >= sample_interval();
  return now - last_frame_ >= kPingAfter;
}

void GuestMonitor::ping_sent(Clock::time_point now) {
  ping_outstanding_ = true;
  last_ping_ = now;
}

bool GuestMonitor::idle(Clock::time_point now) const {
  return started_ && idle_timeout_ && now - last_activity_ >= *idle_timeout_;
}

std::optional<GuestMonitor::Clock::time_point> GuestMonitor::next_wakeup() const {
  if (!started_) return std::nullopt;
  Clock::time_point next = last_frame_ + kUnresponsiveAfter;
  if (idle_timeout_) next = std::min(next, last_activity_ + *idle_timeout_);
  if (!ping_outstanding_) {
    next = std::min(next, idle_timeout_ ? last_ping_ + sample_interval() : last_frame_ + kPingAfter);
  }
  return next;
}

}  // namespace zwrm::supervisor
