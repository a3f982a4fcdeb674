// Boot steps of the guest init, run as PID 1 from the initramfs.
//
// Disks are found by the serial number the host gives each virtio-blk device
// (zwrm-root, zwrm-workspace), not by probe order. The root file system is
// the template image mounted read-only as the lower layer of an overlay whose
// upper layer is a tmpfs, so every write outside /workspace vanishes with the
// VM. The host never sees or mounts anything the guest writes except through
// the volume's block device.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/unique_fd.h"
#include "protocol/message.h"

namespace zwrm::guest {

inline constexpr const char* kControlPortName = "zwrm.control";
inline constexpr const char* kRootSerial = "zwrm-root";
inline constexpr const char* kWorkspaceSerial = "zwrm-workspace";
inline constexpr std::uint32_t kAgentUid = 1000;
inline constexpr std::uint32_t kAgentGid = 1000;

// Mounts /dev (devtmpfs), /proc and /sys inside the initramfs.
Status mount_early_file_systems();

// Returns true when the kernel command line holds `word` as a whole word.
bool kernel_cmdline_has(const char* word);

// Opens the virtio-serial port named kControlPortName, waiting up to a few
// seconds for it to appear.
Result<UniqueFd> open_control_port();

// Applies the host's setup: wall clock, entropy, hostname, loopback up.
Status apply_setup(const protocol::Setup& setup);

// Mounts the template image as the read-only lower layer of an overlay root,
// the volume (when attached) at /workspace with the agent's home inside it,
// and switches into that root. Returns an error naming the failed step.
Status mount_root_and_switch();

}  // namespace zwrm::guest
