// The interface every VMM backend implements: it turns a VmConfig into the
// VMM's command line. The supervisor starts that command in the jail
// (host/jail) with its descriptors in place. Everything guest-facing (the
// control channel and the console) reaches the supervisor through two
// sockets, never through files the VMM writes. The VMM opens no host file by
// a path the user or guest could change.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"

namespace zwrm::vmm {

enum class Accel { kAuto, kKvm, kTcg };

const char* accel_name(Accel accel);
// Parses "auto", "kvm" or "tcg".
Result<Accel> parse_accel(const std::string& text);

// The VMM's descriptors when it starts: control channel, console, then the
// disks' (see Disk).
inline constexpr int kControlFd = 3;
inline constexpr int kConsoleFd = 4;
inline constexpr int kFirstDiskFd = 5;

struct Disk {
  std::string path;  // used when fd is -1 (benchmarks and tests of the backend)
  int fd = -1;       // the VMM's descriptor for the disk image, opened for it
  // For a writable disk: a second, read-only descriptor of the same file.
  // QEMU opens an image read-only before it opens it for writing, and
  // /dev/fdset hands out only descriptors with the matching access mode.
  int read_only_fd = -1;
  std::string serial;  // the guest finds each disk by this (zwrm-root, zwrm-workspace)
  bool read_only = false;
};

struct VmConfig {
  // The VM's name on the VMM's command line (zwrm-RUNID), which identifies
  // the run a VMM process belongs to.
  std::string name;
  std::string kernel;     // bzImage for QEMU, at its path inside the VMM's jail
  std::string initramfs;
  std::string cmdline;    // appended to the backend's base kernel command line
  unsigned cpus = 1;
  std::uint64_t memory_mib = 512;
  std::vector<Disk> disks;
  Accel accel = Accel::kTcg;  // never kAuto here: resolve it first (accel.h)
  // Whether the VMM gets the virtio-serial control port (kControlFd) and
  // the serial console socket (kConsoleFd). Without a console socket the
  // console goes to stdout (the probe boot).
  bool control = false;
  bool console = false;
};

class Vmm {
 public:
  virtual ~Vmm() = default;

  virtual const char* name() const = 0;

  // Returns the full command line of the VMM for config.
  virtual std::vector<std::string> command_line(const VmConfig& config) const = 0;
};

// QEMU's microvm machine. qemu_binary empty means qemu-system-x86_64 from PATH.
std::unique_ptr<Vmm> make_qemu_microvm(std::string qemu_binary = {});

}  // namespace zwrm::vmm
