#include "host/supervisor/guest_events.h"

#include <spdlog/spdlog.h>

#include <utility>
#include <vector>

#include "state/audit.h"

namespace zwrm::supervisor {

namespace {

using nlohmann::json;
using protocol::GuestEvent;

constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD

// Returns the length of the valid UTF-8 sequence at the start of text, or 0
// when it does not start with one (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence_length(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const auto continuation = [&](std::size_t i, unsigned char low = 0x80, unsigned char high = 0xbf) {
    return i < text.size() && byte(i) >= low && byte(i) <= high;
  };
  const unsigned char first = byte(0);
  if (first < 0x80) return 1;
  if (first >= 0xc2 && first <= 0xdf) return continuation(1) ? 2 : 0;
  if (first >= 0xe0 && first <= 0xef) {
    const unsigned char low = first == 0xe0 ? 0xa0 : 0x80;
    const unsigned char high = first == 0xed ? 0x9f : 0xbf;
    return continuation(1, low, high) && continuation(2) ? 3 : 0;
  }
  if (first >= 0xf0 && first <= 0xf4) {
    const unsigned char low = first == 0xf0 ? 0x90 : 0x80;
    const unsigned char high = first == 0xf4 ? 0x8f : 0xbf;
    return continuation(1, low, high) && continuation(2) && continuation(3) ? 4 : 0;
  }
  return 0;
}

// Returns the longest prefix of valid UTF-8 text of at most max_bytes that
// does not split a character.
std::string utf8_prefix(const std::string& text, std::size_t max_bytes) {
  std::size_t end = 0;
  while (end < text.size()) {
    const std::size_t length = utf8_sequence_length(std::string_view(text).substr(end));
    if (length == 0 || end + length > max_bytes) break;
    end += length;
  }
  return text.substr(0, end);
}

// Returns value, or null for 0, the protocol's "unknown".
json known(std::uint32_t value) { return value == 0 ? json(nullptr) : json(value); }
json known(const std::string& value) { return value.empty() ? json(nullptr) : json(valid_utf8(value)); }

const char* record_type(GuestEvent::Kind kind) {
  switch (kind) {
    case GuestEvent::Kind::kExec: return "process.exec";
    case GuestEvent::Kind::kExit: return "process.exit";
    case GuestEvent::Kind::kFileCreate: return "file.create";
    case GuestEvent::Kind::kFileModify: return "file.modify";
    case GuestEvent::Kind::kFileDelete: return "file.delete";
    case GuestEvent::Kind::kFileRename: return "file.rename";
  }
  return "unknown";
}

}  // namespace

std::string valid_utf8(std::string_view text) {
  std::string result;
  result.reserve(text.size());
  while (!text.empty()) {
    const std::size_t length = utf8_sequence_length(text);
    if (length == 0) {
      result += kReplacement;
      text.remove_prefix(1);
    } else {
      result.append(text.substr(0, length));
      text.remove_prefix(length);
    }
  }
  return result;
}

GuestRecord make_guest_record(const GuestEvent& event) {
  GuestRecord record{record_type(event.kind), json::object()};
  json& data = record.data;
  data["pid"] = known(event.pid);
  switch (event.kind) {
    case GuestEvent::Kind::kExec: {
      const bool status_known = (event.flags & GuestEvent::kStatusUnreadable) == 0;
      data["ppid"] = known(event.ppid);
      data["uid"] = status_known ? json(event.uid) : json(nullptr);
      data["comm"] = known(event.comm);
      json argv = json::array();
      for (const std::string& arg : event.argv) argv.push_back(valid_utf8(arg));
      data["argv"] = std::move(argv);
      data["argv_truncated"] = (event.flags & GuestEvent::kArgvTruncated) != 0;
      data["argv_unreadable"] = (event.flags & GuestEvent::kArgvUnreadable) != 0;
      break;
    }
    case GuestEvent::Kind::kExit: {
      const bool signaled = (event.flags & GuestEvent::kSignaled) != 0;
      data["ppid"] = known(event.ppid);
      data["comm"] = known(event.comm);
      // As a shell reports it: the exit code, or 128 + the signal.
      data["exit_status"] = signaled ? 128 + event.status : event.status;
      data["signal"] = signaled ? json(event.status) : json(nullptr);
      break;
    }
    case GuestEvent::Kind::kFileRename:
      data["new_path"] = valid_utf8(event.new_path);
      [[fallthrough]];
    case GuestEvent::Kind::kFileCreate:
    case GuestEvent::Kind::kFileModify:
    case GuestEvent::Kind::kFileDelete:
      data["path"] = valid_utf8(event.path);
      data["directory"] = (event.flags & GuestEvent::kDirectory) != 0;
      data["path_truncated"] = (event.flags & GuestEvent::kPathTruncated) != 0;
      data["path_unresolved"] = (event.flags & GuestEvent::kPathUnresolved) != 0;
      break;
  }
  data["guest_time_ms"] = event.time_ms;
  return record;
}

bool fit_guest_record(GuestRecord& record, std::size_t max_bytes) {
  if (record.data.dump().size() <= max_bytes) return true;
  if (!record.data.contains("argv")) return false;
  // Control characters take 6 bytes each in JSON, so 32 arguments of 4 KiB
  // in all can need about 24 KiB. Halving the per-argument cap down to 16
  // bytes fits any exec event into about 3 KiB.
  const std::vector<std::string> argv = record.data["argv"].get<std::vector<std::string>>();
  for (std::size_t cap = protocol::kMaxEventArgBytes / 2; cap >= 16; cap /= 2) {
    json shortened = json::array();
    for (const std::string& arg : argv) shortened.push_back(utf8_prefix(arg, cap));
    record.data["argv"] = std::move(shortened);
    record.data["argv_truncated"] = true;
    if (record.data.dump().size() <= max_bytes) return true;
  }
  return false;
}

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
