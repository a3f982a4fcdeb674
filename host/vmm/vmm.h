// The interface every VMM backend implements. The supervisor hands a backend
// a VmConfig and gets back a child process; everything guest-facing (the
// control channel and the console) reaches the supervisor through the two
// socket descriptors in the config, never through files the VMM writes.
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

struct Disk {
  std::string path;
  std::string serial;  // the guest finds each disk by this (zwrm-root, zwrm-workspace)
  bool read_only = false;
};

struct VmConfig {
  std::string kernel;     // bzImage for QEMU
  std::string initramfs;
  std::string cmdline;    // appended to the backend's base kernel command line
  unsigned cpus = 1;
  std::uint64_t memory_mib = 512;
  std::vector<Disk> disks;
  Accel accel = Accel::kTcg;  // never kAuto here: resolve it first (accel.h)
  // The VMM's ends of two stream socket pairs: the virtio-serial control
  // port and the serial console. -1 leaves the device out (the probe boot
  // has no control port and prints its console on stdout).
  int control_fd = -1;
  int console_fd = -1;
};

class Vmm {
 public:
  virtual ~Vmm() = default;

  virtual const char* name() const = 0;

  // Returns the full command line the VMM would run for config. The control
  // and console sockets appear as descriptors 3 and 4.
  virtual std::vector<std::string> command_line(const VmConfig& config) const = 0;

  // Starts the VMM as a child of the calling process with only stdin,
  // stdout, stderr and the two sockets open. The child gets SIGKILL when the
  // calling thread exits (PR_SET_PDEATHSIG), so no VMM outlives its
  // supervisor. stdout and stderr go to log_fd.
  virtual Result<pid_t> start(const VmConfig& config, int log_fd) = 0;
};

// QEMU's microvm machine. qemu_binary empty means qemu-system-x86_64 from PATH.
std::unique_ptr<Vmm> make_qemu_microvm(std::string qemu_binary = {});

}  // namespace zwrm::vmm
