// The guest kernel: built once from Debian's linux-source-6.1 with the
// microVM config fragment shipped in share/zwrm/kernel, and cached under
// <cache>/kernels/<key>/ where key hashes the source tarball's content, the
// fragment and the build script. Any change to one of them gives a new key,
// so a cached kernel is never stale.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "host/sys/paths.h"

namespace zwrm::images {

struct Kernel {
  std::string bzimage;  // for QEMU
  std::string vmlinux;  // uncompressed ELF, for Firecracker
  std::string key;
  std::string digest;   // sha256 of bzimage
};

using Progress = std::function<void(std::string_view line)>;

// Returns the cached kernel, building it first when missing (about four
// minutes on two cores). Concurrent callers wait for one build. The source
// tarball is /usr/src/linux-source-6.1.tar.xz unless ZWRM_KERNEL_SOURCE
// names another.
Result<Kernel> ensure_kernel(const sys::Paths& paths, const Progress& progress);

}  // namespace zwrm::images
