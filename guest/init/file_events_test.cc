#include "guest/init/file_events.h"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>

#include <gtest/gtest.h>

#include "protocol/message.h"

namespace zwrm::guest {
namespace {

// Appends one information record of a directory handle and a name, as the
// kernel lays it out.
void append_record(std::vector<std::uint8_t>& out, std::uint8_t type, const std::vector<std::uint8_t>& handle_data,
                   const std::string& name) {
  const std::size_t size = sizeof(fanotify_event_info_header) + sizeof(__kernel_fsid_t) + 8 + handle_data.size() +
                           (type == FAN_EVENT_INFO_TYPE_DFID ? 0 : name.size() + 1);
  const std::size_t padded = (size + 3) & ~std::size_t{3};
  fanotify_event_info_header header{};
  header.info_type = type;
  header.len = static_cast<std::uint16_t>(padded);
  const std::size_t start = out.size();
  out.resize(start + padded, 0);
  std::memcpy(out.data() + start, &header, sizeof header);
  const std::uint32_t handle_bytes = static_cast<std::uint32_t>(handle_data.size());
  const std::int32_t handle_type = 1;
  std::uint8_t* handle = out.data() + start + sizeof header + sizeof(__kernel_fsid_t);
  std::memcpy(handle, &handle_bytes, 4);
  std::memcpy(handle + 4, &handle_type, 4);
  std::memcpy(handle + 8, handle_data.data(), handle_data.size());
  if (type != FAN_EVENT_INFO_TYPE_DFID) std::memcpy(handle + 8 + handle_data.size(), name.c_str(), name.size() + 1);
}

// Builds one event: metadata, then the records appended by records().
std::vector<std::uint8_t> fanotify_event(std::uint64_t mask, int pid,
                                         const std::function<void(std::vector<std::uint8_t>&)>& records) {
  std::vector<std::uint8_t> info;
  records(info);
  fanotify_event_metadata metadata{};
  metadata.event_len = static_cast<std::uint32_t>(sizeof metadata + info.size());
  metadata.vers = FANOTIFY_METADATA_VERSION;
  metadata.metadata_len = sizeof metadata;
  metadata.mask = mask;
  metadata.fd = FAN_NOFD;
  metadata.pid = pid;
  std::vector<std::uint8_t> event(sizeof metadata + info.size());
  std::memcpy(event.data(), &metadata, sizeof metadata);
  if (!info.empty()) std::memcpy(event.data() + sizeof metadata, info.data(), info.size());
  return event;
}

TEST(FanotifyEvents, ParsesCreateAndRename) {
  std::vector<std::uint8_t> buffer = fanotify_event(FAN_CREATE, 42, [](auto& out) {
    append_record(out, FAN_EVENT_INFO_TYPE_DFID_NAME, {1, 2, 3, 4, 5, 6, 7, 8}, "notes.txt");
  });
  const std::vector<std::uint8_t> rename = fanotify_event(FAN_RENAME | FAN_ONDIR, 43, [](auto& out) {
    append_record(out, FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, {1, 1, 1, 1, 1, 1, 1, 1}, "old");
    append_record(out, FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, {2, 2, 2, 2, 2, 2, 2, 2}, "new");
  });
  buffer.insert(buffer.end(), rename.begin(), rename.end());

  const std::vector<FanotifyEvent> events = parse_fanotify_events(buffer);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].mask, FAN_CREATE);
  EXPECT_EQ(events[0].pid, 42);
  EXPECT_EQ(events[0].fd, FAN_NOFD);
  const FanotifyRecord* created = find_record(events[0]);
  ASSERT_NE(created, nullptr);
  EXPECT_EQ(created->name, "notes.txt");
  EXPECT_EQ(created->handle.size(), 8u + 8u) << "the file_handle header and its 8 bytes";

  const FanotifyRecord* old_entry = find_record(events[1], FAN_EVENT_INFO_TYPE_OLD_DFID_NAME);
  const FanotifyRecord* new_entry = find_record(events[1], FAN_EVENT_INFO_TYPE_NEW_DFID_NAME);
  ASSERT_NE(old_entry, nullptr);
  ASSERT_NE(new_entry, nullptr);
  EXPECT_EQ(old_entry->name, "old");
  EXPECT_EQ(new_entry->name, "new");
  EXPECT_EQ(find_record(events[1]), nullptr) << "a rename has no plain directory record";
}

TEST(FanotifyEvents, DirectoryRecordWithoutName) {
  const std::vector<std::uint8_t> buffer = fanotify_event(FAN_MODIFY, 42, [](auto& out) {
    append_record(out, FAN_EVENT_INFO_TYPE_DFID, {9, 9, 9, 9}, "");
  });
  const std::vector<FanotifyEvent> events = parse_fanotify_events(buffer);
  ASSERT_EQ(events.size(), 1u);
  const FanotifyRecord* record = find_record(events[0]);
  ASSERT_NE(record, nullptr);
  EXPECT_TRUE(record->name.empty());
}

TEST(FanotifyEvents, TruncatedBufferYieldsCompleteEventsOnly) {
  const std::vector<std::uint8_t> one = fanotify_event(FAN_DELETE, 42, [](auto& out) {
    append_record(out, FAN_EVENT_INFO_TYPE_DFID_NAME, {1, 2, 3, 4, 5, 6, 7, 8}, "gone");
  });
  std::vector<std::uint8_t> buffer = one;
  buffer.insert(buffer.end(), one.begin(), one.end());
  for (std::size_t size = 0; size < buffer.size(); ++size) {
    const std::size_t expected = size / one.size();
    EXPECT_EQ(parse_fanotify_events({buffer.data(), size}).size(), expected) << "prefix of " << size << " bytes";
  }
}

TEST(FanotifyEvents, MalformedRecordIsSkipped) {
  std::vector<std::uint8_t> buffer = fanotify_event(FAN_CREATE, 42, [](auto& out) {
    append_record(out, FAN_EVENT_INFO_TYPE_DFID_NAME, {1, 2, 3, 4, 5, 6, 7, 8}, "name");
  });
  // A handle longer than its record.
  const std::size_t handle_offset = sizeof(fanotify_event_metadata) + sizeof(fanotify_event_info_header) +
                                    sizeof(__kernel_fsid_t);
  const std::uint32_t too_long = 200;
  std::memcpy(buffer.data() + handle_offset, &too_long, sizeof too_long);
  const std::vector<FanotifyEvent> events = parse_fanotify_events(buffer);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].records.empty());
}

TEST(FanotifyEvents, WrongVersionStops) {
  std::vector<std::uint8_t> buffer = fanotify_event(FAN_CREATE, 42, [](auto&) {});
  buffer[4] = FANOTIFY_METADATA_VERSION + 1;
  EXPECT_TRUE(parse_fanotify_events(buffer).empty());
}

TEST(EventPath, JoinsDirectoryAndName) {
  const EventPath path = make_event_path(std::string("/workspace/src"), "main.c", "/workspace");
  EXPECT_EQ(path.path, "/workspace/src/main.c");
  EXPECT_FALSE(path.truncated);
  EXPECT_FALSE(path.unresolved);
  EXPECT_EQ(make_event_path(std::string("/workspace"), "a", "/workspace").path, "/workspace/a");
  EXPECT_EQ(make_event_path(std::string("/workspace/d"), ".", "/workspace").path, "/workspace/d");
  EXPECT_EQ(make_event_path(std::string("/workspace/d"), "", "/workspace").path, "/workspace/d");
}

TEST(EventPath, UnknownOrOutsideDirectoryIsUnresolved) {
  const EventPath gone = make_event_path(std::nullopt, "file", "/workspace");
  EXPECT_EQ(gone.path, "file");
  EXPECT_TRUE(gone.unresolved);
  EXPECT_TRUE(make_event_path(std::string("/"), "file", "/workspace").unresolved);
  EXPECT_TRUE(make_event_path(std::string("/workspace2"), "file", "/workspace").unresolved);
  EXPECT_EQ(make_event_path(std::nullopt, "", "/workspace").path, ".");
}

TEST(EventPath, LongPathIsCut) {
  const EventPath path = make_event_path(std::string("/workspace"), std::string(2000, 'n'), "/workspace");
  EXPECT_EQ(path.path.size(), protocol::kMaxEventPathBytes);
  EXPECT_TRUE(path.truncated);
}

// Needs CAP_DAC_READ_SEARCH for open_by_handle_at, so it is skipped without.
TEST(ResolveDirectory, HandleOfExistingAndRemovedDirectory) {
  char pattern[] = "/tmp/file-events-test.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string root = pattern;
  const std::string directory = root + "/sub";
  ASSERT_EQ(::mkdir(directory.c_str(), 0700), 0);

  alignas(file_handle) std::uint8_t storage[sizeof(file_handle) + MAX_HANDLE_SZ];
  auto* handle = reinterpret_cast<file_handle*>(storage);
  handle->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (::name_to_handle_at(AT_FDCWD, directory.c_str(), handle, &mount_id, 0) != 0) {
    std::filesystem::remove_all(root);
    GTEST_SKIP() << "this file system gives no file handles: " << std::strerror(errno);
  }
  const std::vector<std::uint8_t> bytes(storage, storage + 8 + handle->handle_bytes);
  const int mount_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(mount_fd, 0);

  const std::optional<std::string> resolved = resolve_directory(mount_fd, bytes);
  if (!resolved && errno == EPERM) {
    ::close(mount_fd);
    std::filesystem::remove_all(root);
    GTEST_SKIP() << "open_by_handle_at needs CAP_DAC_READ_SEARCH";
  }
  ASSERT_TRUE(resolved.has_value());
  EXPECT_EQ(*resolved, std::filesystem::canonical(directory).string());

  ASSERT_EQ(::rmdir(directory.c_str()), 0);
  EXPECT_FALSE(resolve_directory(mount_fd, bytes).has_value()) << "a removed directory resolves to nothing";
  ::close(mount_fd);
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace zwrm::guest
