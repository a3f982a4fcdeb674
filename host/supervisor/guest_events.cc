#include "host/supervisor/guest_events.h"

#include <spdlog/spdlog.h>

#include <utility>
#include <vector>

#include "state/audit.h"

namespace zwrm::supervisor {

namespace {

using protocol::GuestEvent;

}  // namespace

GuestEventLog::GuestEventLog(state::Database& db, std::string project, std::string run, GuestEventLimits limits)
    : db_(db),
      project_(std::move(project)),
      run_(std::move(run)),
      limits_(limits),
      events_(limits.rate, limits.burst),
      batches_(limits.batch_rate, limits.batch_burst) {}

Status GuestEventLog::on_batch(std::span<const std::uint8_t> payload, Clock::time_point now) {
  auto batch = protocol::decode_guest_events(payload);
  if (!batch) return tl::unexpected(batch.error());
  guest_dropped_ += batch->dropped;
  unreported_drops_ += batch->dropped;

  std::vector<GuestRecord> accepted;
  if (!batch->events.empty()) {
    if (batches_.available(now) == 0) {
      count_host_drop(batch->events.size());
    } else {
      batches_.spend(1);
      for (const GuestEvent& event : batch->events) {
        GuestRecord record;
        if (admit(event, now, accepted.size(), record)) accepted.push_back(std::move(record));
      }
    }
  }
  const bool report_drops = drop_report_due(now);
  if (accepted.empty() && !report_drops) return {};

  Status written = state::transaction(db_, [&]() -> Status {
    for (GuestRecord& record : accepted) {
      state::Event event;
      event.project = project_;
      event.run = run_;
      event.source = state::EventSource::kGuest;
      event.type = std::move(record.type);
      event.data = std::move(record.data);
      event.actor = "guest";
      if (auto appended = state::append_event(db_, std::move(event)); !appended) {
        return tl::unexpected(appended.error());
      }
    }
    if (!report_drops) return {};
    auto appended = state::append_event(db_, drop_report());
    if (!appended) return tl::unexpected(appended.error());
    return {};
  });
  if (!written) {
    spdlog::error("cannot record {} guest events: {}", accepted.size(), written.error().message);
    count_host_drop(accepted.size());
    return {};
  }
  recorded_ += accepted.size();
  if (report_drops) mark_drops_reported(now);
  return {};
}

bool GuestEventLog::admit(const GuestEvent& event, Clock::time_point now, std::size_t accepted, GuestRecord& record) {
  if (recorded_ + accepted >= limits_.max_events) {
    if (!warned_max_events_) {
      spdlog::warn("run {} reached {} guest events; later ones are counted as dropped", run_, limits_.max_events);
      warned_max_events_ = true;
    }
    count_host_drop(1);
    return false;
  }
  if (events_.available(now) == 0) {
    count_host_drop(1);
    return false;
  }
  record = make_guest_record(event);
  if (!fit_guest_record(record, limits_.max_data_bytes)) {
    count_host_drop(1);
    return false;
  }
  events_.spend(1);
  return true;
}

void GuestEventLog::count_host_drop(std::uint64_t count) {
  host_dropped_ += count;
  unreported_drops_ += count;
}

bool GuestEventLog::drop_report_due(Clock::time_point now) const {
  return unreported_drops_ > 0 && (!last_drop_report_ || now - *last_drop_report_ >= kDropReportInterval);
}

state::Event GuestEventLog::drop_report() const {
  state::Event event;
  event.project = project_;
  event.run = run_;
  event.type = "guest.events_dropped";
  event.data = {{"dropped", unreported_drops_},
                {"total_dropped", guest_dropped_ + host_dropped_},
                {"guest_dropped", guest_dropped_},
                {"host_dropped", host_dropped_}};
  return event;
}

void GuestEventLog::mark_drops_reported(Clock::time_point now) {
  unreported_drops_ = 0;
  last_drop_report_ = now;
}

void GuestEventLog::handle_timers(Clock::time_point now) {
  if (!drop_report_due(now)) return;
  if (auto appended = state::append_event(db_, drop_report()); !appended) {
    spdlog::error("cannot record guest.events_dropped: {}", appended.error().message);
    // Retry at the next interval rather than at every wakeup.
    last_drop_report_ = now;
    return;
  }
  mark_drops_reported(now);
}

std::optional<GuestEventLog::Clock::time_point> GuestEventLog::next_wakeup() const {
  if (unreported_drops_ == 0) return std::nullopt;
  return last_drop_report_ ? *last_drop_report_ + kDropReportInterval : Clock::time_point{};
}

}  // namespace zwrm::supervisor
