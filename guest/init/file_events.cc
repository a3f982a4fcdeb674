#include "guest/init/file_events.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "protocol/message.h"

namespace zwrm::guest {

namespace {

constexpr std::uint64_t kFileEventMask = FAN_CREATE | FAN_MODIFY | FAN_DELETE | FAN_RENAME | FAN_ONDIR;
// fanotify_event_info_fid: a header, the file system id, then a struct
// file_handle (u32 handle_bytes, s32 handle_type, handle_bytes of handle).
constexpr std::size_t kFidRecordHeader = sizeof(fanotify_event_info_header) + sizeof(__kernel_fsid_t);
constexpr std::size_t kFileHandleHeader = 8;
constexpr std::string_view kDeletedSuffix = " (deleted)";

bool is_directory_record(std::uint8_t type) {
  return type == FAN_EVENT_INFO_TYPE_DFID_NAME || type == FAN_EVENT_INFO_TYPE_DFID ||
         type == FAN_EVENT_INFO_TYPE_OLD_DFID_NAME || type == FAN_EVENT_INFO_TYPE_NEW_DFID_NAME;
}

// Parses one information record; returns nullopt when it is malformed or of
// a type without a directory.
std::optional<FanotifyRecord> parse_record(std::span<const std::uint8_t> bytes) {
  fanotify_event_info_header header;
  std::memcpy(&header, bytes.data(), sizeof header);
  if (!is_directory_record(header.info_type) || bytes.size() < kFidRecordHeader + kFileHandleHeader) {
    return std::nullopt;
  }
  std::uint32_t handle_bytes = 0;
  std::memcpy(&handle_bytes, bytes.data() + kFidRecordHeader, sizeof handle_bytes);
  const std::size_t handle_end = kFidRecordHeader + kFileHandleHeader + handle_bytes;
  if (handle_bytes > MAX_HANDLE_SZ || handle_end > bytes.size()) return std::nullopt;

  FanotifyRecord record;
  record.type = header.info_type;
  record.handle.assign(bytes.begin() + kFidRecordHeader, bytes.begin() + static_cast<std::ptrdiff_t>(handle_end));
  if (header.info_type != FAN_EVENT_INFO_TYPE_DFID) {
    // The name follows the handle, ends in NUL and may be padded after it.
    const auto rest = bytes.subspan(handle_end);
    const void* nul = std::memchr(rest.data(), '\0', rest.size());
    if (nul == nullptr) return std::nullopt;
    record.name.assign(reinterpret_cast<const char*>(rest.data()),
                       static_cast<const std::uint8_t*>(nul) - rest.data());
  }
  return record;
}

}  // namespace

Result<UniqueFd> open_fanotify(const char* mount_point) {
  struct stat root {};
  struct stat mounted {};
  if (::stat("/", &root) != 0 || ::stat(mount_point, &mounted) != 0) {
    return fail_errno(std::string("cannot stat ") + mount_point);
  }
  // Without a volume, /workspace is a directory of the root overlay, whose
  // changes vanish with the VM and are not reported.
  if (root.st_dev == mounted.st_dev) return fail(std::string("no volume is mounted on ") + mount_point);

  UniqueFd fd(::fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME,
                              O_RDONLY | O_CLOEXEC | O_LARGEFILE));
  if (!fd) return fail_errno("cannot create a fanotify group");
  if (::fanotify_mark(fd.get(), FAN_MARK_ADD | FAN_MARK_FILESYSTEM, kFileEventMask, AT_FDCWD, mount_point) != 0) {
    return fail_errno(std::string("cannot watch the file system on ") + mount_point + " with fanotify");
  }
  return fd;
}

std::vector<FanotifyEvent> parse_fanotify_events(std::span<const std::uint8_t> buffer) {
  std::vector<FanotifyEvent> events;
  while (buffer.size() >= sizeof(fanotify_event_metadata)) {
    fanotify_event_metadata metadata;
    std::memcpy(&metadata, buffer.data(), sizeof metadata);
    if (metadata.vers != FANOTIFY_METADATA_VERSION || metadata.metadata_len < sizeof metadata ||
        metadata.event_len < metadata.metadata_len || metadata.event_len > buffer.size()) {
      break;
    }
    FanotifyEvent event;
    event.mask = metadata.mask;
    event.fd = metadata.fd;
    event.pid = metadata.pid;

    auto info = buffer.subspan(metadata.metadata_len, metadata.event_len - metadata.metadata_len);
    while (info.size() >= sizeof(fanotify_event_info_header)) {
      fanotify_event_info_header header;
      std::memcpy(&header, info.data(), sizeof header);
      if (header.len < sizeof header || header.len > info.size()) break;
      if (auto record = parse_record(info.first(header.len)); record) event.records.push_back(std::move(*record));
      info = info.subspan(header.len);
    }
    events.push_back(std::move(event));
    buffer = buffer.subspan(metadata.event_len);
  }
  return events;
}

const FanotifyRecord* find_record(const FanotifyEvent& event, std::uint8_t type) {
  for (const FanotifyRecord& record : event.records) {
    if (type == 0 ? record.type == FAN_EVENT_INFO_TYPE_DFID_NAME || record.type == FAN_EVENT_INFO_TYPE_DFID
                  : record.type == type) {
      return &record;
    }
  }
  return nullptr;
}

std::optional<std::string> resolve_directory(int mount_fd, const std::vector<std::uint8_t>& handle) {
  if (handle.size() < kFileHandleHeader || handle.size() > kFileHandleHeader + MAX_HANDLE_SZ) return std::nullopt;
  alignas(file_handle) std::uint8_t storage[kFileHandleHeader + MAX_HANDLE_SZ];
  std::memcpy(storage, handle.data(), handle.size());
  UniqueFd directory(::open_by_handle_at(mount_fd, reinterpret_cast<file_handle*>(storage), O_PATH | O_CLOEXEC));
  if (!directory) return std::nullopt;

  char target[PATH_MAX];
  const std::string link = "/proc/self/fd/" + std::to_string(directory.get());
  const ssize_t size = ::readlink(link.c_str(), target, sizeof target);
  if (size <= 0 || static_cast<std::size_t>(size) >= sizeof target) return std::nullopt;
  std::string path(target, static_cast<std::size_t>(size));
  if (path.ends_with(kDeletedSuffix)) return std::nullopt;
  return path;
}

EventPath make_event_path(const std::optional<std::string>& directory, std::string_view name, std::string_view root) {
  EventPath result;
  const bool under_root =
      directory && (*directory == root || (directory->starts_with(root) && (*directory)[root.size()] == '/'));
  if (!under_root) {
    result.unresolved = true;
    result.path = name.empty() ? "." : std::string(name);
  } else if (name.empty() || name == ".") {
    result.path = *directory;
  } else {
    result.path = *directory + "/" + std::string(name);
  }
  if (result.path.size() > protocol::kMaxEventPathBytes) {
    result.path.resize(protocol::kMaxEventPathBytes);
    result.truncated = true;
  }
  return result;
}

}  // namespace zwrm::guest
