#include "host/supervisor/jailed_vmm.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "common/printable.h"
#include "host/jail/artifact.h"

namespace zwrm::supervisor {

namespace {

using json = nlohmann::json;

// Device nodes every VMM gets; /dev/kvm is added for KVM runs.
// NOTE: the jail has been tested under TCG only. Should QEMU under KVM need
// a file outside the jail (it gets no /proc or /sys), the run ends with
// vmm-crash and vmm.log names the file.
const std::vector<std::string> kDevices = {"/dev/null", "/dev/zero", "/dev/urandom"};

// The supplementary group that opens /dev/kvm, when the node is not open
// to everyone.
std::vector<gid_t> kvm_groups() {
  struct stat info {};
  if (::stat("/dev/kvm", &info) != 0) return {};
  if ((info.st_mode & (S_IROTH | S_IWOTH)) == (S_IROTH | S_IWOTH)) return {};
  return {info.st_gid};
}

std::string downgrade_hint(jail::Step step) {
  switch (step) {
    case jail::Step::kOwnUser:
      return "; run zwrm as root, or pass --jail partial to run the VMM as your own user (recorded)";
    case jail::Step::kNamespaces:
      return "; pass --jail partial to run the VMM without its own namespaces and root (recorded)";
  }
  return {};
}

void disable(jail::Options& options, jail::Step step) {
  if (step == jail::Step::kOwnUser) options.own_user = false;
  if (step == jail::Step::kNamespaces) options.namespaces = false;
}

}  // namespace

Result<BootFiles> open_boot_files(const std::string& kernel, const std::string& initramfs, const std::string& image) {
  BootFiles files;
  for (auto [path, fd] : {std::pair{&kernel, &files.kernel}, {&initramfs, &files.initramfs}, {&image, &files.image}}) {
    auto opened = jail::open_artifact(*path, jail::Access::kReadOnly);
    if (!opened) return tl::unexpected(opened.error());
    *fd = std::move(*opened);
  }
  return files;
}

json JailedVmm::describe() const {
  json steps = json::array();
  for (const Skipped& entry : skipped) steps.push_back({{"step", jail::step_name(entry.step)}, {"reason", entry.reason}});
  return {{"mode", jail::mode_name(mode)}, {"uid", uid}, {"gid", gid}, {"skipped", steps}};
}

std::vector<std::string> JailedVmm::warnings() const {
  std::vector<std::string> sentences;
  for (const Skipped& entry : skipped) {
    if (entry.step == jail::Step::kOwnUser && uid == 0) {
      // Without capabilities, uid 0 still owns the host's system files.
      sentences.push_back("the VMM runs as root (uid 0, without capabilities), not as a user of its own, so it "
                          "could write files root owns (" + entry.reason + ")");
    } else {
      const char* missing = entry.step == jail::Step::kOwnUser ? "its own user" : "its own namespaces and root";
      sentences.push_back(std::string("the VMM runs without ") + missing + " (" + entry.reason + ")");
    }
  }
  return sentences;
}

Result<JailedVmm> start_jailed_vmm(const vmm::Vmm& backend, vmm::VmConfig config, const BootFiles& files,
                                   const VmmDescriptors& descriptors, jail::Mode mode, const std::string& root_dir) {
  jail::Options options;
  options.root = root_dir;
  options.namespaces = mode != jail::Mode::kOff;
  options.own_user = mode != jail::Mode::kOff;
  options.uid = options.own_user ? jail::jail_id_for(::getpid()) : ::geteuid();
  options.gid = options.own_user ? jail::jail_id_for(::getpid()) : ::getegid();
  options.devices = kDevices;
  if (config.accel == vmm::Accel::kKvm) {
    options.devices.push_back("/dev/kvm");
    options.groups = kvm_groups();
  }
  options.files = {{files.kernel.get(), "kernel"}, {files.initramfs.get(), "initramfs"}};
  struct stat volume {};
  if (::fstat(descriptors.volume, &volume) != 0) return fail_errno("cannot inspect the volume");
  options.file_size = static_cast<rlim_t>(volume.st_size);
  // Reopening through /proc/self/fd gives the same file, whatever its path
  // names now.
  const UniqueFd volume_read_only(
      ::open(("/proc/self/fd/" + std::to_string(descriptors.volume)).c_str(), O_RDONLY | O_CLOEXEC));
  if (!volume_read_only) return fail_errno("cannot reopen the volume read-only");
  options.fds = {-1, descriptors.log, descriptors.log, descriptors.control, descriptors.console,
                 files.image.get(), descriptors.volume, volume_read_only.get()};
  config.control = true;
  config.console = true;
  config.disks = {{{}, vmm::kFirstDiskFd, -1, "zwrm-root", true},
                  {{}, vmm::kFirstDiskFd + 1, vmm::kFirstDiskFd + 2, "zwrm-workspace", false}};

  JailedVmm started;
  started.mode = mode;
  if (options.own_user && ::geteuid() != 0) {
    if (mode == jail::Mode::kFull) {
      return fail("the VMM jail needs root to give the VMM its own user" + downgrade_hint(jail::Step::kOwnUser));
    }
    options.own_user = false;
    started.skipped.push_back({jail::Step::kOwnUser, "zwrm does not run as root"});
  }
  if (mode == jail::Mode::kOff) {
    started.skipped = {{jail::Step::kNamespaces, "--jail off"}, {jail::Step::kOwnUser, "--jail off"}};
  }

  for (;;) {
    config.kernel = options.file_path(0);
    config.initramfs = options.file_path(1);
    options.argv = backend.command_line(config);
    if (::access(options.argv.front().c_str(), X_OK) != 0) {
      return fail_errno(printable(options.argv.front()) + " cannot be executed; install the qemu-system-x86 package");
    }
    auto pid = jail::spawn(options);
    if (pid) {
      started.pid = *pid;
      started.uid = options.own_user ? options.uid : ::geteuid();
      started.gid = options.own_user ? options.gid : ::getegid();
      return started;
    }
    const std::optional<jail::Step> step = pid.error().step;
    if (!step || mode != jail::Mode::kPartial) {
      std::string message = "cannot start the VMM: " + pid.error().error.message;
      if (step) message += downgrade_hint(*step);
      return fail(message, pid.error().error.errno_value);
    }
    spdlog::warn("jail: running the VMM without {} ({}), as --jail partial allows", jail::step_name(*step),
                 pid.error().error.message);
    started.skipped.push_back({*step, pid.error().error.message});
    disable(options, *step);
  }
}

}  // namespace zwrm::supervisor
