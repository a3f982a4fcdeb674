#include "host/vmm/accel.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "host/sys/files.h"
#include "host/sys/process.h"

namespace zwrm::vmm {

namespace {

// A working KVM boots and powers off in well under a second; a broken one
// fails at once. Ten seconds leaves room for a loaded host.
constexpr std::chrono::seconds kProbeTimeout{10};

struct ProbeResult {
  bool works = false;
  std::string reason;
};

ProbeResult probe_kvm(Vmm& vmm, const std::string& kernel, const std::string& initramfs) {
  if (::access("/dev/kvm", R_OK | W_OK) != 0) {
    return {false, std::string("/dev/kvm is not usable (") + std::strerror(errno) + ")"};
  }
  VmConfig config;
  config.kernel = kernel;
  config.initramfs = initramfs;
  config.cmdline = "zwrm.probe";
  config.cpus = 1;
  config.memory_mib = 128;
  config.accel = Accel::kKvm;
  sys::ProcessOptions options;
  options.timeout = kProbeTimeout;
  auto result = sys::run_process(vmm.command_line(config), options);
  if (!result) return {false, result.error().message};
  if (result->succeeded() && result->output.find("zwrm-init: probe ok") != std::string::npos) {
    return {true, "a probe boot under KVM succeeded"};
  }
  return {false, "a probe boot under KVM failed (QEMU " + result->describe() + ")"};
}

std::string probe_cache_key(const std::string& kernel, const std::string& qemu) {
  auto boot_id = sys::read_file("/proc/sys/kernel/random/boot_id");
  struct stat info {};
  ::stat(qemu.c_str(), &info);
  return sys::sha256_hex((boot_id ? *boot_id : std::string()) + "\n" + kernel + "\n" + qemu + "\n" +
                         std::to_string(info.st_mtim.tv_sec))
      .substr(0, 16);
}

}  // namespace

Result<AccelChoice> choose_accel(Accel requested, const sys::Paths& paths, Vmm& vmm, const std::string& kernel,
                                 const std::string& initramfs) {
  if (requested == Accel::kTcg) return AccelChoice{Accel::kTcg, "TCG was requested", false};

  const std::string qemu = vmm.command_line(VmConfig{}).front();
  const std::string cache_file = paths.cache + "/accel-" + probe_cache_key(kernel, qemu);
  ProbeResult probe;
  bool newly_probed = false;
  if (auto cached = sys::read_file(cache_file); cached && !cached->empty()) {
    probe.works = (*cached)[0] == '1';
    probe.reason = cached->substr(std::min<std::size_t>(2, cached->size()));
  } else {
    probe = probe_kvm(vmm, kernel, initramfs);
    newly_probed = true;
    (void)sys::write_file_atomic(cache_file, std::string(probe.works ? "1" : "0") + " " + probe.reason);
  }

  if (probe.works) return AccelChoice{Accel::kKvm, probe.reason, newly_probed};
  if (requested == Accel::kKvm) {
    return fail("KVM was requested but " + probe.reason + "; use --accel tcg or --accel auto");
  }
  return AccelChoice{Accel::kTcg, probe.reason, newly_probed};
}

}  // namespace zwrm::vmm
