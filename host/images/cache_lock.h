// An exclusive lock on a cache entry, so that parallel zwrm processes build
// a kernel or an image once and the others wait for it.
#pragma once

#include <string>

#include "common/error.h"
#include "common/unique_fd.h"

namespace zwrm::images {

class CacheLock {
 public:
  // Creates the lock file if needed and blocks until the lock is held.
  static Result<CacheLock> acquire(const std::string& path);

 private:
  explicit CacheLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;  // flock(2) is released when this closes
};

}  // namespace zwrm::images
