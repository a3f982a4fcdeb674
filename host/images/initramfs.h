// The initramfs every guest boots: the guest init as /init plus the
// directories and the console device node it needs before mounting the
// template root. Built in memory as a "newc" cpio archive (the format the
// kernel unpacks, see Documentation/driver-api/early-userspace/buffer-format.rst
// in the kernel source), so no cpio tool and no root privileges are needed.
#pragma once

#include <string>

#include "common/error.h"
#include "host/sys/paths.h"

namespace zwrm::images {

struct Initramfs {
  std::string path;
  std::string init_digest;  // sha256 of the guest init binary inside
};

// Returns the cached initramfs for the current guest init binary
// (paths.init), writing it first when missing.
Result<Initramfs> ensure_initramfs(const sys::Paths& paths);

// Returns the archive bytes for an init binary's content (exposed for tests).
std::string build_initramfs_archive(const std::string& init_binary);

}  // namespace zwrm::images
