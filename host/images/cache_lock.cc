#include "host/images/cache_lock.h"

#include <fcntl.h>
#include <sys/file.h>

namespace zwrm::images {

Result<CacheLock> CacheLock::acquire(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return fail_errno("cannot open lock file " + path);
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return fail_errno("cannot lock " + path);
  }
  return CacheLock(std::move(fd));
}

}  // namespace zwrm::images
