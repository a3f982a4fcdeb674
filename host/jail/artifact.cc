#include "host/jail/artifact.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/printable.h"

namespace zwrm::jail {

namespace {

Status check_opened(const struct stat& info, const std::string& path) {
  const std::string name = printable(path);
  if (!S_ISREG(info.st_mode)) return fail(name + " is not a regular file; remove it and let zwrm recreate it");
  if (info.st_uid != ::geteuid() && info.st_uid != 0) {
    return fail(name + " is owned by uid " + std::to_string(info.st_uid) +
                ", not by you or root; zwrm uses only files it can trust");
  }
  if (info.st_nlink != 1) {
    return fail(name + " has " + std::to_string(info.st_nlink) +
                " hard links; another name could change it, so remove the other links");
  }
  if ((info.st_mode & S_IWOTH) != 0) return fail(name + " is writable by every user; run chmod o-w on it");
  if ((info.st_mode & S_IWGRP) != 0 && info.st_gid != ::getegid() && info.st_gid != 0) {
    return fail(name + " is writable by group " + std::to_string(info.st_gid) +
                ", which is not yours; run chmod g-w on it");
  }
  return {};
}

}  // namespace

Result<UniqueFd> open_artifact(const std::string& path, Access access) {
  // O_NONBLOCK: opening a FIFO planted there must not wait for a writer.
  const int flags =
      (access == Access::kReadWrite ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  UniqueFd fd(::open(path.c_str(), flags));
  if (!fd) {
    if (errno == ELOOP) {
      return fail(printable(path) + " is a symbolic link; zwrm rejects links there, so replace it with the file itself",
                  ELOOP);
    }
    return fail_errno("cannot open " + printable(path));
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return fail_errno("cannot inspect " + printable(path));
  if (auto checked = check_opened(info, path); !checked) return tl::unexpected(checked.error());
  if (::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK) != 0) {
    return fail_errno("cannot set up " + printable(path));
  }
  return fd;
}

}  // namespace zwrm::jail
