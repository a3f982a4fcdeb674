// Starting a run's VMM in its jail (host/jail/jail.h): the supervisor opens
// the kernel, initramfs and template image itself (the volume is opened and
// locked earlier, in prepare_run) and the VMM gets only descriptors.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/unique_fd.h"
#include "host/jail/jail.h"
#include "host/vmm/vmm.h"

namespace zwrm::supervisor {

// The read-only files of a run, opened with jail::open_artifact.
struct BootFiles {
  UniqueFd kernel;
  UniqueFd initramfs;
  UniqueFd image;
};

Result<BootFiles> open_boot_files(const std::string& kernel, const std::string& initramfs, const std::string& image);

struct VmmDescriptors {
  int log = -1;      // the VMM's stdout and stderr
  int control = -1;  // the VMM's end of the control channel
  int console = -1;  // the VMM's end of the serial console
  int volume = -1;   // opened read-write and locked by the supervisor
};

// The started VMM's pid and the jail steps it runs under, for the run.jail
// audit event and the log.
struct JailedVmm {
  pid_t pid = -1;
  jail::Mode mode = jail::Mode::kFull;
  uid_t uid = 0;
  gid_t gid = 0;
  struct Skipped {
    jail::Step step;
    std::string reason;
  };
  std::vector<Skipped> skipped;  // the steps left out
  nlohmann::json describe() const;
  // One sentence per skipped step, for the user.
  std::vector<std::string> warnings() const;
};

// Starts backend's VMM for config (its kernel, initramfs and disk fields are
// filled in here) under mode, with root_dir as the jail's empty root.
// Under Mode::kFull, a step the host cannot apply fails the start, and the
// error names the --jail option. Under kPartial, such a step is skipped,
// logged as a warning and listed in the result.
Result<JailedVmm> start_jailed_vmm(const vmm::Vmm& backend, vmm::VmConfig config, const BootFiles& files,
                                   const VmmDescriptors& descriptors, jail::Mode mode, const std::string& root_dir);

}  // namespace zwrm::supervisor
