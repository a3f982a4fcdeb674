// Reading and writing a cgroup's control files (cpu.max, memory.max,
// cgroup.procs, ...), and the files each cgroup version uses for a run's
// limits and usage. Internal to host/cgroup.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "host/cgroup/limits.h"
#include "host/cgroup/run_cgroup.h"

namespace zwrm::cgroup {

// The run's directory in each controller, such as {"memory": "/sys/fs/cgroup/memory/zwrm/ab12"}.
// In v2 every controller maps to the same directory.
using ControllerDirectories = std::map<std::string, std::string>;

// Writes `value` to directory/file in one write(2), as the kernel parses a
// control file per write. The error names the file, the value, errno and
// what to do.
Status write_control(const std::string& directory, const std::string& file, std::string_view value);
Result<std::string> read_control(const std::string& directory, const std::string& file);
// Reads a file that contains one number, or "max" (v2), which reads as 0.
Result<std::uint64_t> read_number(const std::string& directory, const std::string& file);
// Reads the value of `key` from a file of "key value" lines (cpu.stat,
// memory.events); a missing key reads as 0.
Result<std::uint64_t> read_keyed(const std::string& directory, const std::string& file, std::string_view key);
// Returns the process ids in a cgroup.procs file.
Result<std::vector<pid_t>> read_procs(const std::string& directory);

// Writes cpu.max, memory.max, memory.swap.max and pids.max.
Status apply_limits_v2(const std::string& directory, const Limits& limits);
// Writes the cfs quota and period, the memory limit, the memory+swap limit
// (or swappiness 0 without swap accounting) and pids.max.
Status apply_limits_v1(const ControllerDirectories& directories, const Limits& limits);

Result<Usage> read_usage_v2(const std::string& directory);
Result<Usage> read_usage_v1(const ControllerDirectories& directories);

}  // namespace zwrm::cgroup
