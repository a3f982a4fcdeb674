#include "host/images/volume.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/images/cache_lock.h"
#include "host/sys/files.h"
#include "host/sys/process.h"
#include "host/sys/units.h"

namespace zwrm::images {

namespace {

// The guest's unprivileged agent user owns the volume's root directory.
constexpr const char* kRootOwner = "root_owner=1000:1000";

Status make_file_system(const std::string& path, std::uint64_t size_bytes) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return fail_errno("cannot create volume " + path);
  if (::ftruncate(fd.get(), static_cast<off_t>(size_bytes)) != 0) {
    if (errno == EFBIG) {
      return fail("cannot create a " + sys::format_size(size_bytes) + " volume at " + path +
                      ": the file is larger than the host file system allows; choose a smaller --disk",
                  EFBIG);
    }
    return fail_errno("cannot size volume " + path);
  }
  fd.reset();

  auto made = sys::run_process({"mkfs.ext4", "-q", "-F", "-m", "0", "-L", "workspace", "-E",
                                std::string(kRootOwner) + ",lazy_itable_init=1,lazy_journal_init=1", path});
  if (!made) return tl::unexpected(made.error());
  if (!made->succeeded()) return fail("mkfs.ext4 on " + path + " " + made->describe());
  return {};
}

}  // namespace

std::string volume_path(const sys::Paths& paths, const std::string& project) {
  return paths.volumes + "/" + project + ".ext4";
}

Result<Volume> ensure_volume(const sys::Paths& paths, const std::string& project, std::uint64_t size_bytes) {
  Volume volume;
  volume.path = volume_path(paths, project);
  auto lock = CacheLock::acquire(volume.path + ".create-lock");
  if (!lock) return tl::unexpected(lock.error());

  struct stat info {};
  if (::lstat(volume.path.c_str(), &info) == 0) {
    if (S_ISLNK(info.st_mode)) {
      return fail("volume " + volume.path + " is a symbolic link; zwrm rejects links there, so move it away");
    }
    if (!S_ISREG(info.st_mode)) return fail("volume " + volume.path + " is not a regular file; move it away");
    volume.size_bytes = static_cast<std::uint64_t>(info.st_size);
    if (size_bytes != 0 && size_bytes != volume.size_bytes) {
      return fail("project " + project + " already has a " + sys::format_size(volume.size_bytes) +
                  " volume; --disk only applies when a volume is created");
    }
    return volume;
  }

  volume.size_bytes = size_bytes != 0 ? size_bytes : kDefaultVolumeSize;
  if (volume.size_bytes < kMinimumVolumeSize) {
    return fail("disk size " + sys::format_size(volume.size_bytes) + " is too small; use at least " +
                sys::format_size(kMinimumVolumeSize));
  }
  // mkfs writes into a temporary name so a failed creation leaves nothing
  // that a later run would take for a volume.
  const std::string staging = volume.path + ".new";
  ::unlink(staging.c_str());
  if (auto made = make_file_system(staging, volume.size_bytes); !made) {
    ::unlink(staging.c_str());
    return tl::unexpected(made.error());
  }
  if (::rename(staging.c_str(), volume.path.c_str()) != 0) return fail_errno("cannot move volume into " + volume.path);
  volume.created = true;
  return volume;
}

Result<UniqueFd> lock_volume(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return fail_errno("cannot open volume " + path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return fail_errno("cannot lock volume " + path);
  return fd;
}

}  // namespace zwrm::images
