// Powering the VM off from PID 1: end every process, flush the volume and
// reboot, which the kernel (reboot=t) and QEMU (-no-reboot) turn into the
// VMM's exit.
#pragma once

namespace zwrm::guest {

// Sends SIGTERM to every process, waits up to grace_ms for them to exit,
// SIGKILLs the rest, syncs, unmounts /workspace and reboots. Never returns.
[[noreturn]] void power_off(int grace_ms);

}  // namespace zwrm::guest
