#include "host/supervisor/guest_record.h"

#include <vector>

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

}  // namespace zwrm::supervisor
