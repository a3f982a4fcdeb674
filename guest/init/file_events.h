// File events under /workspace from fanotify. The group only notifies
// (FAN_CLASS_NOTIF) and reports each event as the directory's file handle
// and the entry's name (FAN_REPORT_DFID_NAME). Its mark covers the whole
// volume (FAN_MARK_FILESYSTEM), so changes made through /home/agent, a bind
// mount of /workspace/.home, are seen too and named by their /workspace
// path.
//
// Events: FAN_CREATE, FAN_MODIFY (each write, so callers coalesce),
// FAN_DELETE and FAN_RENAME, which carries the old and the new directory and
// name in one event (Linux 5.17 and later), each also for directories
// (FAN_ONDIR). The paths are resolved when the event is read, so a directory
// removed or renamed in the meantime gives no path or its new one.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"

namespace zwrm::guest {

// One information record of an event: a directory and an entry's name.
struct FanotifyRecord {
  std::uint8_t type = 0;  // FAN_EVENT_INFO_TYPE_DFID_NAME, _DFID, _OLD_DFID_NAME or _NEW_DFID_NAME
  std::vector<std::uint8_t> handle;  // a struct file_handle, header included, for open_by_handle_at
  std::string name;  // empty for a record without a name
};

struct FanotifyEvent {
  std::uint64_t mask = 0;
  int fd = -1;    // FAN_NOFD in this mode; a caller closes any other value
  int pid = 0;    // the process that caused the event
  std::vector<FanotifyRecord> records;
};

// Opens a fanotify group as described above and marks the file system
// mounted at mount_point. Fails when nothing is mounted there (the run has
// no volume) or the kernel lacks fanotify.
Result<UniqueFd> open_fanotify(const char* mount_point);

// Splits what one read from the fanotify descriptor returned into events.
// Stops at the first event whose lengths do not fit the buffer; records of
// other types are skipped.
std::vector<FanotifyEvent> parse_fanotify_events(std::span<const std::uint8_t> buffer);

// Returns the record of type, or the first record with a directory when
// type is 0 (the record of an event other than a rename).
const FanotifyRecord* find_record(const FanotifyEvent& event, std::uint8_t type = 0);

// Returns the path of the directory a handle names, as seen from the init's
// root, or nullopt when the directory is gone. mount_fd is any descriptor on
// the marked file system.
std::optional<std::string> resolve_directory(int mount_fd, const std::vector<std::uint8_t>& handle);

struct EventPath {
  std::string path;
  bool truncated = false;   // cut to kMaxEventPathBytes
  bool unresolved = false;  // the directory is unknown, so path is only the entry's name
};

// Joins a resolved directory and an entry's name ("." or empty: the
// directory itself) into a path under root. A directory outside root counts
// as unresolved, as does nullopt.
EventPath make_event_path(const std::optional<std::string>& directory, std::string_view name, std::string_view root);

}  // namespace zwrm::guest
