// Choosing between KVM and TCG (software emulation).
//
// /dev/kvm existing is not enough: some hosts expose a KVM device that only
// runs specially built guests, and QEMU then dies on its first MSR write. So
// `auto` boots the real kernel once under KVM with a probe flag that makes
// the guest init power off at once, and uses KVM only when that succeeds.
// The verdict is cached per host boot, QEMU binary and kernel, so the probe
// costs one short boot per host boot.
#pragma once

#include <string>

#include "common/error.h"
#include "host/sys/paths.h"
#include "host/vmm/vmm.h"

namespace zwrm::vmm {

struct AccelChoice {
  Accel accel = Accel::kTcg;
  std::string reason;        // one sentence: why this accelerator
  bool newly_probed = false; // true when this call ran the probe (say so to the user once)
};

// Resolves `requested`. kKvm fails with the probe's reason when KVM does not
// work; kTcg always succeeds; kAuto falls back to TCG with the reason.
Result<AccelChoice> choose_accel(Accel requested, const sys::Paths& paths, Vmm& vmm, const std::string& kernel,
                                 const std::string& initramfs);

}  // namespace zwrm::vmm
