// QEMU microvm backend: a machine without PCI, ACPI or firmware that boots a
// kernel directly and attaches virtio devices over MMIO (QEMU 7.2's
// docs/system/i386/microvm.rst).
#include "common/printable.h"
#include "host/sys/process.h"
#include "host/vmm/vmm.h"

namespace zwrm::vmm {

namespace {

// console=ttyS0: the only UART; quiet keeps the slow emulated UART from
// dominating boot time; reboot=t with QEMU's -no-reboot makes a guest
// reboot (and panic=-1, a panic) end the VMM process.
// QEMU's option syntax separates keys with commas; a comma inside a value
// is written twice.
std::string escape_option_value(const std::string& value) {
  std::string escaped;
  for (char c : value) {
    escaped.push_back(c);
    if (c == ',') escaped.push_back(',');
  }
  return escaped;
}

constexpr const char* kBaseCmdline = "console=ttyS0 quiet reboot=t panic=-1 rdinit=/init";

class QemuMicrovm final : public Vmm {
 public:
  explicit QemuMicrovm(std::string binary) : binary_(std::move(binary)) {}

  const char* name() const override { return "qemu-microvm"; }

  std::vector<std::string> command_line(const VmConfig& config) const override {
    const bool kvm = config.accel == Accel::kKvm;
    std::vector<std::string> args = {
        binary_,
        "-M", "microvm,acpi=off,x-option-roms=off",
        // tb-size caps TCG's translation cache at 64 MiB (QEMU 7.2 reserves
        // 1 GiB by default), which the run's cgroup memory ceiling counts on.
        "-accel", kvm ? "kvm" : "tcg,tb-size=64",
        "-cpu", kvm ? "host" : "max",
        "-smp", std::to_string(config.cpus),
        "-m", std::to_string(config.memory_mib) + "M",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-kernel", config.kernel,
        "-initrd", config.initramfs,
        "-append", std::string(kBaseCmdline) + (config.cmdline.empty() ? "" : " " + config.cmdline),
        "-device", "virtio-rng-device",
        // QEMU's own seccomp filter: no obsolete system calls, no setuid or
        // capability changes, no fork/exec, no scheduler or affinity changes,
        // so a guest that takes over the VMM cannot start programs from it.
        "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    };
    if (!config.name.empty()) args.insert(args.end(), {"-name", config.name});
    if (config.console) {
      args.insert(args.end(), {"-chardev", "socket,id=console,fd=" + std::to_string(kConsoleFd),
                               "-serial", "chardev:console"});
    } else {
      args.insert(args.end(), {"-serial", "stdio"});
    }
    if (config.control) {
      args.insert(args.end(), {"-device", "virtio-serial-device",
                               "-chardev", "socket,id=control,fd=" + std::to_string(kControlFd),
                               "-device", "virtserialport,chardev=control,name=zwrm.control"});
    }
    for (std::size_t i = 0; i < config.disks.size(); ++i) {
      const Disk& disk = config.disks[i];
      const std::string id = "disk" + std::to_string(i);
      std::string file = escape_option_value(disk.path);
      if (disk.fd >= 0) {
        // QEMU opens /dev/fdset/N by duplicating the descriptor added to set N.
        const std::string set = ",set=" + std::to_string(disk.fd);
        args.insert(args.end(), {"-add-fd", "fd=" + std::to_string(disk.fd) + set});
        if (disk.read_only_fd >= 0) {
          args.insert(args.end(), {"-add-fd", "fd=" + std::to_string(disk.read_only_fd) + set});
        }
        file = "/dev/fdset/" + std::to_string(disk.fd);
      }
      std::string drive = "id=" + id + ",file=" + file + ",format=raw,if=none";
      drive += disk.read_only ? ",readonly=on" : ",discard=unmap,detect-zeroes=unmap";
      args.insert(args.end(), {"-drive", drive, "-device",
                               "virtio-blk-device,drive=" + id + ",serial=" + disk.serial});
    }
    return args;
  }

 private:
  std::string binary_;
};

}  // namespace

const char* accel_name(Accel accel) {
  switch (accel) {
    case Accel::kAuto: return "auto";
    case Accel::kKvm: return "kvm";
    case Accel::kTcg: return "tcg";
  }
  return "unknown";
}

Result<Accel> parse_accel(const std::string& text) {
  if (text == "auto") return Accel::kAuto;
  if (text == "kvm") return Accel::kKvm;
  if (text == "tcg") return Accel::kTcg;
  return fail("invalid accelerator '" + printable(text) + "'; use auto, kvm or tcg");
}

std::unique_ptr<Vmm> make_qemu_microvm(std::string qemu_binary) {
  if (qemu_binary.empty()) qemu_binary = sys::find_program("qemu-system-x86_64");
  if (qemu_binary.empty()) qemu_binary = "qemu-system-x86_64";
  return std::make_unique<QemuMicrovm>(std::move(qemu_binary));
}

}  // namespace zwrm::vmm
