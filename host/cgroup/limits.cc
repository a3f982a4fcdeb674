#include "host/cgroup/limits.h"

namespace zwrm::cgroup {

namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr std::uint64_t kVmmFixedOverhead = 192 * kMiB;
// x86-64 maps a 4 KiB page with an 8-byte entry: 1/512 of the guest RAM,
// counted twice to cover the upper page-table levels and rounding.
constexpr std::uint64_t kPageTableDivisor = 256;

}  // namespace

std::uint64_t vmm_memory_ceiling(std::uint64_t guest_memory_bytes) {
  return guest_memory_bytes + guest_memory_bytes / kPageTableDivisor + kVmmFixedOverhead;
}

}  // namespace zwrm::cgroup
