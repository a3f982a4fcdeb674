// Deleting template image cache entries safely: abandoned build trees,
// which may still have the host's /proc or /dev mounted in them, and every
// cached image of a template, for `zwrm template rm`.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "host/sys/paths.h"

namespace zwrm::images {

// Removes a build tree, refusing (and saying how to unmount) while a file
// system is mounted under it, because deleting it would then delete files
// of the host's /dev or /proc.
Status remove_build_directory(const std::string& directory);

struct RemovedImages {
  std::size_t count = 0;        // cache entries removed
  std::uint64_t size_bytes = 0;  // their image files
};

// Removes every cached image of the template called name, whatever its
// key, with its lock file, build log and abandoned builds. It checks every
// entry before deleting anything. It fails, deleting nothing, when a build
// of an entry runs (its lock is held) or when a process uses an entry,
// which is to have a file under it open or to name it on its command line,
// as the VMM of a running VM does.
// NOTE: a run that has checked the image but not yet started its VMM is
// not seen; the runs table would close that gap.
Result<RemovedImages> remove_template_images(const sys::Paths& paths, std::string_view name);

// Returns the ids of the processes, other than this one, that have a file
// under directory open or name a path under it on their command line.
// /proc entries that cannot be read are skipped, so without root the open
// files of other users' processes are not seen, only their command lines.
std::vector<pid_t> processes_using(const std::string& directory);

}  // namespace zwrm::images
