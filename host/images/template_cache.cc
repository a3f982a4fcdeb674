#include "host/images/template_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "common/unique_fd.h"
#include "host/images/template.h"
#include "host/sys/files.h"

namespace zwrm::images {

namespace {

constexpr std::size_t kKeyPrefixLength = 16;

// Decodes the octal escapes (\040 for a space) that /proc/self/mountinfo
// uses for space, tab, newline and backslash.
std::string unescape_mount_point(std::string_view escaped) {
  std::string path;
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    if (escaped[i] == '\\' && i + 3 < escaped.size()) {
      path += static_cast<char>(std::strtol(std::string(escaped.substr(i + 1, 3)).c_str(), nullptr, 8));
      i += 3;
    } else {
      path += escaped[i];
    }
  }
  return path;
}

// Refuses to delete a tree that still has a file system mounted in it (a
// build interrupted inside mmdebstrap), because removing it would delete
// files of the host's /dev or /proc.
Status check_nothing_mounted_under(const std::string& directory) {
  Result<std::string> mounts = sys::read_file("/proc/self/mountinfo");
  if (!mounts) return tl::unexpected(mounts.error());
  std::size_t start = 0;
  while (start < mounts->size()) {
    std::size_t end = mounts->find('\n', start);
    if (end == std::string::npos) end = mounts->size();
    const std::string line = mounts->substr(start, end - start);
    start = end + 1;

    // Field 5 is the mount point.
    std::size_t field_start = 0;
    for (int field = 1; field < 5 && field_start != std::string::npos; ++field) {
      field_start = line.find(' ', field_start);
      if (field_start != std::string::npos) ++field_start;
    }
    if (field_start == std::string::npos) continue;
    const std::string mount_point =
        unescape_mount_point(line.substr(field_start, line.find(' ', field_start) - field_start));
    if (mount_point == directory || mount_point.starts_with(directory + "/")) {
      return fail(mount_point + " is still mounted; unmount it with `umount -R " + directory +
                  "` and then remove " + directory);
    }
  }
  return {};
}

}  // namespace

Status remove_build_directory(const std::string& directory) {
  if (Status unmounted = check_nothing_mounted_under(directory); !unmounted) return unmounted;
  return sys::remove_tree(directory);
}


namespace {

bool is_hex(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Returns the entry stem (<name>-<key16>) that a file in the cache's
// templates directory belongs to, or an empty string when it belongs to
// another template.
std::string stem_of(std::string_view file, std::string_view name) {
  const std::size_t stem_length = name.size() + 1 + kKeyPrefixLength;
  if (file.size() < stem_length || !file.starts_with(name) || file[name.size()] != '-') return "";
  if (!is_hex(file.substr(name.size() + 1, kKeyPrefixLength))) return "";
  const std::string_view rest = file.substr(stem_length);
  if (rest.empty() || rest == ".lock" || rest == ".build.log" || rest.starts_with(".build-")) {
    return std::string(file.substr(0, stem_length));
  }
  return "";
}

std::vector<std::string> files_in(const std::string& directory) {
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& child : std::filesystem::directory_iterator(directory, error)) {
    files.push_back(child.path().filename().string());
  }
  return files;
}

// Returns whether the NUL-separated command line names a path under
// directory, as QEMU's "-drive file=DIRECTORY/rootfs.ext4,..." does.
bool command_line_names(const std::string& command_line, const std::string& directory) {
  return command_line.find(directory + "/") != std::string::npos;
}

bool has_open_file_under(const std::string& fd_directory, const std::string& directory) {
  std::error_code error;
  for (const auto& fd : std::filesystem::directory_iterator(fd_directory, error)) {
    std::error_code link_error;
    const std::filesystem::path target = std::filesystem::read_symlink(fd.path(), link_error);
    if (!link_error && target.string().starts_with(directory + "/")) return true;
  }
  return false;
}

// Locks every entry so that no build of it starts or runs while it is
// checked and removed.
Result<std::vector<UniqueFd>> lock_entries(const std::string& parent, const std::set<std::string>& stems) {
  std::vector<UniqueFd> locks;
  for (const std::string& stem : stems) {
    const std::string path = parent + "/" + stem + ".lock";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return fail_errno("cannot open lock file " + path);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        return fail("the template image " + stem + " is being built; wait for the build to end and retry", EBUSY);
      }
      return fail_errno("cannot lock " + path);
    }
    locks.push_back(std::move(fd));
  }
  return locks;
}

Status check_unused(const std::string& parent, const std::set<std::string>& stems) {
  for (const std::string& stem : stems) {
    const std::vector<pid_t> users = processes_using(parent + "/" + stem);
    if (users.empty()) continue;
    return fail("the template image in " + parent + "/" + stem + " is in use by process " +
                    std::to_string(users.front()) + " (a running VM); stop its run with `zwrm stop`, then retry",
                EBUSY);
  }
  return {};
}

Status remove_entry(const std::string& parent, const std::string& stem, const std::vector<std::string>& files,
                    RemovedImages& removed) {
  struct stat info {};
  const std::string directory = parent + "/" + stem;
  if (::lstat((directory + "/rootfs.ext4").c_str(), &info) == 0) removed.size_bytes += info.st_size;
  for (const std::string& file : files) {
    if (!file.starts_with(stem + ".build-")) continue;
    if (Status gone = remove_build_directory(parent + "/" + file); !gone) return gone;
  }
  if (Status gone = remove_build_directory(directory); !gone) return gone;
  for (const char* suffix : {".build.log", ".lock"}) {
    const std::string path = directory + suffix;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail_errno("cannot remove " + path);
  }
  removed.count += 1;
  return {};
}

}  // namespace

std::vector<pid_t> processes_using(const std::string& directory) {
  std::vector<pid_t> pids;
  const pid_t self = ::getpid();
  std::error_code error;
  for (const auto& process : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = process.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    const pid_t pid = static_cast<pid_t>(std::strtol(name.c_str(), nullptr, 10));
    if (pid == self) continue;

    Result<std::string> command_line = sys::read_file(process.path().string() + "/cmdline");
    const bool named = command_line && command_line_names(*command_line, directory);
    if (named || has_open_file_under(process.path().string() + "/fd", directory)) pids.push_back(pid);
  }
  return pids;
}

Result<RemovedImages> remove_template_images(const sys::Paths& paths, std::string_view name) {
  if (!is_valid_template_name(name)) return fail("invalid template name '" + std::string(name) + "'");
  const std::string parent = paths.cache + "/templates";
  const std::vector<std::string> files = files_in(parent);
  std::set<std::string> stems;
  for (const std::string& file : files) {
    if (std::string stem = stem_of(file, name); !stem.empty()) stems.insert(std::move(stem));
  }

  RemovedImages removed;
  if (stems.empty()) return removed;
  Result<std::vector<UniqueFd>> locks = lock_entries(parent, stems);
  if (!locks) return tl::unexpected(locks.error());
  if (Status unused = check_unused(parent, stems); !unused) return tl::unexpected(unused.error());
  for (const std::string& stem : stems) {
    if (Status gone = remove_entry(parent, stem, files, removed); !gone) return tl::unexpected(gone.error());
  }
  return removed;
}

}  // namespace zwrm::images
