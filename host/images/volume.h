// Project volumes: one sparse ext4 image per project under
// $ZWRM_HOME/volumes, mounted at /workspace in every run of the project. The
// host creates the file system once and afterwards only hands the image to
// the VMM: it never mounts or parses what a guest wrote into it.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/unique_fd.h"
#include "host/sys/paths.h"

namespace zwrm::images {

inline constexpr std::uint64_t kDefaultVolumeSize = 10ull << 30;
// Below this an ext4 journal and the agent's home directory leave too little room.
inline constexpr std::uint64_t kMinimumVolumeSize = 64ull << 20;

struct Volume {
  std::string path;
  std::uint64_t size_bytes = 0;
  bool created = false;  // true when this call made it
};

// Returns the path a project's volume has (or will have).
std::string volume_path(const sys::Paths& paths, const std::string& project);

// Returns the project's volume, creating a sparse image of size_bytes with
// an ext4 file system owned by the guest's agent user when it does not exist
// yet. An existing volume keeps its size; asking for another size fails.
Result<Volume> ensure_volume(const sys::Paths& paths, const std::string& project, std::uint64_t size_bytes);

// Takes the exclusive lock that marks a volume as in use by one run. Fails
// with EWOULDBLOCK while another run holds it. The lock lives as long as the
// returned descriptor, so it ends with the holder's process whatever way it
// ends.
Result<UniqueFd> lock_volume(const std::string& path);

}  // namespace zwrm::images
