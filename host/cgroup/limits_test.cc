#include "host/cgroup/limits.h"

#include <gtest/gtest.h>

namespace zwrm::cgroup {
namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;

TEST(VmmMemoryCeiling, AddsPageTablesAndFixedOverhead) {
  EXPECT_EQ(vmm_memory_ceiling(512 * kMiB), 512 * kMiB + 2 * kMiB + 192 * kMiB);
  EXPECT_EQ(vmm_memory_ceiling(4096 * kMiB), 4096 * kMiB + 16 * kMiB + 192 * kMiB);
}

TEST(VmmMemoryCeiling, CoversMeasuredOverhead) {
  // measure_overhead.sh peaks: 114 MiB of QEMU beyond guest RAM with
  // tb-size=64 and 8 MiB of supervisor.
  EXPECT_GT(vmm_memory_ceiling(512 * kMiB), 512 * kMiB + 114 * kMiB + 8 * kMiB);
}

TEST(RunPidsMax, CoversLargestVm) {
  // 64 vCPU threads, 64 I/O workers, QEMU's main and RCU threads, supervisor.
  EXPECT_GE(kRunPidsMax, 64u + 64u + 2u + 1u);
}

}  // namespace
}  // namespace zwrm::cgroup
