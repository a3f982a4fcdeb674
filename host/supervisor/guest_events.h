// Guest-reported audit events on the host: decodes each guest-events batch
// (protocol/message.h), bounds what a guest can put into the audit log, and
// records the events with source guest and actor "guest".
//
// The guest init bounds its own events (guest/init/audit_events.h), but
// nothing a guest sends is trusted, so the supervisor applies limits of its
// own to each run. They are a token bucket of events, a token bucket of
// batches (each batch is one database transaction), a maximum number of
// events per run and a maximum size of one event's data. What the guest
// dropped and what the host drops are counted. The supervisor puts the
// total into run.end, and a guest.events_dropped event records drops as they
// happen, at most once per kDropReportInterval.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "host/proxy/token_bucket.h"
#include "host/supervisor/guest_record.h"
#include "protocol/message.h"
#include "state/audit.h"
#include "state/database.h"

namespace zwrm::supervisor {

struct GuestEventLimits {
  // Events per second and the burst above it. The guest init sends at most
  // 200 per second with bursts of 100, so an unmodified guest normally stays
  // within these and the host drops what a modified guest sends beyond them.
  std::uint64_t rate = 200;
  std::uint64_t burst = 400;
  // Batches that carry events, per second, and their burst. The guest init
  // sends a batch 100 ms after its first event or once it has 64 events, so
  // about 14 per second at its own limit.
  std::uint64_t batch_rate = 20;
  std::uint64_t batch_burst = 40;
  // Events recorded per run; later ones are counted only. At 200 per second
  // this is more than 8 minutes of the heaviest activity.
  std::uint64_t max_events = 100'000;
  // Bytes of one event's JSON data. An exec event over it has its arguments
  // cut further; any other event over it is dropped.
  std::size_t max_data_bytes = 16 * 1024;
};

inline constexpr std::chrono::seconds kDropReportInterval{10};

class GuestEventLog {
 public:
  using Clock = std::chrono::steady_clock;

  // Records into db for the run of agent project. The database must outlive
  // this object.
  GuestEventLog(state::Database& db, std::string project, std::string run, GuestEventLimits limits = {});

  // Decodes one guest-events payload and records the events the limits
  // admit, in one transaction. A malformed payload returns an Error, which
  // is a protocol violation. A failed database write is logged and its
  // events are counted as dropped.
  Status on_batch(std::span<const std::uint8_t> payload, Clock::time_point now);

  // Records guest.events_dropped when drops are unreported and the last
  // report is kDropReportInterval old.
  void handle_timers(Clock::time_point now);
  // When handle_timers has a report to write; nullopt when none is pending.
  std::optional<Clock::time_point> next_wakeup() const;

  std::uint64_t recorded() const { return recorded_; }
  // Events the guest reported as dropped plus those the host dropped.
  std::uint64_t dropped() const { return guest_dropped_ + host_dropped_; }

 private:
  // Returns whether the event passes the per-run limits, given the events
  // of its batch accepted before it, and spends from them if so. Fills
  // record when it does.
  bool admit(const protocol::GuestEvent& event, Clock::time_point now, std::size_t accepted, GuestRecord& record);
  bool drop_report_due(Clock::time_point now) const;
  // Returns the guest.events_dropped event for the unreported drops.
  state::Event drop_report() const;
  void mark_drops_reported(Clock::time_point now);
  void count_host_drop(std::uint64_t count);

  state::Database& db_;
  std::string project_;
  std::string run_;
  GuestEventLimits limits_;
  proxy::TokenBucket events_;
  proxy::TokenBucket batches_;
  std::uint64_t recorded_ = 0;
  std::uint64_t guest_dropped_ = 0;
  std::uint64_t host_dropped_ = 0;
  std::uint64_t unreported_drops_ = 0;
  std::optional<Clock::time_point> last_drop_report_;
  bool warned_max_events_ = false;
};

}  // namespace zwrm::supervisor
