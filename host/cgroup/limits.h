// The resource limits of one run's cgroup, which contains the supervisor and
// the VMM it starts, and how zwrm sizes them for a VM.
//
// The guest's own vCPUs and RAM are fixed in the VM config. These limits
// bound the host processes around the guest, so a VMM that the guest has
// taken over, or that misbehaves, cannot take the host's CPU, memory or
// process table.
#pragma once

#include <cstdint>

namespace zwrm::cgroup {

struct Limits {
  // CPU quota in whole CPUs: the group may run `cpus` CPU-seconds per second
  // (cpu.max in v2; cpu.cfs_quota_us over cpu.cfs_period_us in v1). At least 1.
  unsigned cpus = 1;
  // Hard ceiling on the group's memory, page cache included (memory.max in
  // v2, memory.limit_in_bytes in v1), with swap forbidden. 0 means no ceiling.
  std::uint64_t memory_bytes = 0;
  // Most tasks (processes and threads) in the group at once (pids.max).
  // 0 means no limit.
  std::uint64_t pids = 0;
};

// Task limit for a run's cgroup, for any VM size zwrm allows (at most 64
// vCPUs). QEMU's tasks are one thread per vCPU, the main loop, the RCU
// thread and up to 64 block I/O worker threads (the default size of QEMU's
// thread pool in 7.2). The supervisor adds one process. That is at most 131;
// the rest is headroom for helpers the supervisor may start. Measured with
// host/cgroup/measure_overhead.sh on QEMU 7.2 under TCG: 5 to 6 QEMU tasks
// with 1 vCPU and 6 to 7 with 2 vCPUs, and 1 supervisor task.
inline constexpr std::uint64_t kRunPidsMax = 256;

// Returns the memory ceiling for a run whose VM has `guest_memory_bytes` of
// RAM: the guest RAM, the host page tables that map it (8 bytes per 4 KiB
// page, doubled for margin) and a fixed 192 MiB for QEMU and the supervisor.
//
// The fixed part comes from host/cgroup/measure_overhead.sh with QEMU 7.2
// (Debian 12) under TCG with tb-size=64, a 512 MiB guest that fills its RAM,
// 1 and 2 vCPUs, on a 2-core x86-64 VM. QEMU's resident memory outside guest
// RAM peaked at 114 MiB: 62 MiB of TCG translation cache, which tb-size=64
// caps at 64 MiB, and at most 55 MiB of everything else (heap, stacks, the
// binary and libraries). The supervisor peaked at 8 MiB. So 192 MiB is
// 64 MiB of translation cache, 96 MiB for the rest of QEMU, 16 MiB for the
// supervisor and 16 MiB for kernel memory charged to the group (sockets,
// pipes). Under KVM there is no translation cache, so the margin is larger.
//
// NOTE: QEMU 7.2's default translation cache is 1 GiB, and the same
// measurement without tb-size reached 80 MiB of cache in 30 s and keeps
// growing with the guest code it runs. Until the VMM passes tb-size=64
// under TCG, a long TCG run can reach this ceiling and its QEMU be killed.
std::uint64_t vmm_memory_ceiling(std::uint64_t guest_memory_bytes);

}  // namespace zwrm::cgroup
