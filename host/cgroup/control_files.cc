#include "host/cgroup/control_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>

#include <spdlog/spdlog.h>

#include "common/unique_fd.h"
#include "host/sys/files.h"

namespace zwrm::cgroup {

namespace {

// The CFS period zwrm uses: 100 ms, the kernel's default.
constexpr std::uint64_t kCpuPeriodMicroseconds = 100000;
// v1 files show "no limit" as the largest page-aligned signed 64-bit value;
// anything from 2^62 up reads as no limit.
constexpr std::uint64_t kV1Unlimited = std::uint64_t{1} << 62;

std::string hint_for(int errno_value) {
  switch (errno_value) {
    case EACCES:
    case EPERM:
      return "; run zwrm as root, or delegate this cgroup to the user running it";
    case ENOENT:
      return "; the controller that owns this file is not enabled for this cgroup";
    case EBUSY:
      return "; the cgroup has processes of its own, so its children cannot get controllers";
    default:
      return "";
  }
}

tl::unexpected<Error> control_error(const std::string& operation, int errno_value) {
  return tl::unexpected(Error{operation + ": " + std::strerror(errno_value) + hint_for(errno_value), errno_value});
}

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

Result<std::uint64_t> parse_number(std::string_view text, const std::string& what) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) {
    return fail("invalid number \"" + std::string(text) + "\" in " + what);
  }
  return value;
}

std::string limit_or(std::uint64_t value, std::string_view unlimited) {
  return value == 0 ? std::string(unlimited) : std::to_string(value);
}

const std::string& directory_for(const ControllerDirectories& directories, const std::string& controller) {
  const auto found = directories.find(controller);
  ZWRM_CHECK(found != directories.end());
  return found->second;
}

}  // namespace

Status write_control(const std::string& directory, const std::string& file, std::string_view value) {
  const std::string path = directory + "/" + file;
  spdlog::debug("writing {} to {}", value, path);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) {
    const int error = errno;
    return control_error("cannot open " + path + " to write " + std::string(value), error);
  }
  const ssize_t written = ::write(fd.get(), value.data(), value.size());
  if (written < 0) {
    const int error = errno;
    return control_error("cannot write " + std::string(value) + " to " + path, error);
  }
  if (written != static_cast<ssize_t>(value.size())) {
    return fail("cannot write " + std::string(value) + " to " + path + ": the kernel took only " +
                std::to_string(written) + " bytes");
  }
  return {};
}

Result<std::string> read_control(const std::string& directory, const std::string& file) {
  return sys::read_file(directory + "/" + file);
}

Result<std::uint64_t> read_number(const std::string& directory, const std::string& file) {
  auto content = read_control(directory, file);
  if (!content) return tl::unexpected(content.error());
  const std::string value = trim(*content);
  if (value == "max") return 0;
  return parse_number(value, directory + "/" + file);
}

Result<std::uint64_t> read_keyed(const std::string& directory, const std::string& file, std::string_view key) {
  auto content = read_control(directory, file);
  if (!content) return tl::unexpected(content.error());
  std::string_view rest(*content);
  while (!rest.empty()) {
    const std::size_t end = rest.find('\n');
    const std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      return parse_number(line.substr(key.size() + 1), directory + "/" + file);
    }
  }
  return 0;
}

Result<std::vector<pid_t>> read_procs(const std::string& directory) {
  auto content = read_control(directory, "cgroup.procs");
  if (!content) return tl::unexpected(content.error());
  std::vector<pid_t> pids;
  std::string_view rest(*content);
  while (!rest.empty()) {
    const std::size_t end = rest.find('\n');
    const std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (line.empty()) continue;
    auto pid = parse_number(line, directory + "/cgroup.procs");
    if (!pid) return tl::unexpected(pid.error());
    pids.push_back(static_cast<pid_t>(*pid));
  }
  return pids;
}

Status apply_limits_v2(const std::string& directory, const Limits& limits) {
  const std::string cpu_max = std::to_string(limits.cpus * kCpuPeriodMicroseconds) + " " +
                              std::to_string(kCpuPeriodMicroseconds);
  spdlog::info("setting cpu.max to {}, memory.max to {}, pids.max to {} in {}", cpu_max,
               limit_or(limits.memory_bytes, "max"), limit_or(limits.pids, "max"), directory);
  if (auto written = write_control(directory, "cpu.max", cpu_max); !written) return written;
  if (auto written = write_control(directory, "memory.max", limit_or(limits.memory_bytes, "max")); !written) {
    return written;
  }
  if (sys::path_exists(directory + "/memory.swap.max")) {
    if (auto written = write_control(directory, "memory.swap.max", "0"); !written) return written;
  } else {
    spdlog::warn("{}/memory.swap.max is missing because this kernel does not account swap, so the run's "
                 "processes may swap", directory);
  }
  return write_control(directory, "pids.max", limit_or(limits.pids, "max"));
}

Status apply_limits_v1(const ControllerDirectories& directories, const Limits& limits) {
  const std::string& cpu = directory_for(directories, "cpu");
  const std::string& memory = directory_for(directories, "memory");
  const std::string& pids = directory_for(directories, "pids");
  const std::string quota = std::to_string(limits.cpus * kCpuPeriodMicroseconds);
  const std::string memory_limit = limit_or(limits.memory_bytes, "-1");
  spdlog::info("setting cpu.cfs_quota_us to {} per {} us, memory.limit_in_bytes to {}, pids.max to {}", quota,
               kCpuPeriodMicroseconds, memory_limit, limit_or(limits.pids, "max"));

  // The period first: a quota is checked against the period in force.
  if (auto written = write_control(cpu, "cpu.cfs_period_us", std::to_string(kCpuPeriodMicroseconds)); !written) {
    return written;
  }
  if (auto written = write_control(cpu, "cpu.cfs_quota_us", quota); !written) return written;

  // memsw must stay at or above the memory limit, so the memory limit goes
  // first in a new group, where memsw starts unlimited.
  if (auto written = write_control(memory, "memory.limit_in_bytes", memory_limit); !written) return written;
  if (sys::path_exists(memory + "/memory.memsw.limit_in_bytes")) {
    if (auto written = write_control(memory, "memory.memsw.limit_in_bytes", memory_limit); !written) return written;
  } else {
    // Without swap accounting (swapaccount=0 or no CONFIG_MEMCG_SWAP) the
    // group's swap cannot be capped; swappiness 0 only makes reclaim prefer
    // page cache over swapping anonymous memory.
    spdlog::warn("{} has no memory.memsw.limit_in_bytes because swap accounting is off; setting "
                 "memory.swappiness to 0, which discourages swap but does not forbid it",
                 memory);
    if (auto written = write_control(memory, "memory.swappiness", "0"); !written) return written;
  }

  return write_control(pids, "pids.max", limit_or(limits.pids, "max"));
}

Result<Usage> read_usage_v2(const std::string& directory) {
  Usage usage;
  auto cpu = read_keyed(directory, "cpu.stat", "usage_usec");
  if (!cpu) return tl::unexpected(cpu.error());
  usage.cpu = std::chrono::microseconds(*cpu);
  auto memory = read_number(directory, "memory.current");
  if (!memory) return tl::unexpected(memory.error());
  usage.memory_bytes = *memory;
  auto pids = read_number(directory, "pids.current");
  if (!pids) return tl::unexpected(pids.error());
  usage.pids = *pids;
  auto limit = read_number(directory, "memory.max");
  if (!limit) return tl::unexpected(limit.error());
  usage.memory_limit_bytes = *limit;
  auto oom_kills = read_keyed(directory, "memory.events", "oom_kill");
  if (!oom_kills) return tl::unexpected(oom_kills.error());
  usage.oom_kills = *oom_kills;
  return usage;
}

Result<Usage> read_usage_v1(const ControllerDirectories& directories) {
  const std::string& cpuacct = directory_for(directories, "cpuacct");
  const std::string& memory = directory_for(directories, "memory");
  const std::string& pids_directory = directory_for(directories, "pids");
  Usage usage;
  auto cpu_nanoseconds = read_number(cpuacct, "cpuacct.usage");
  if (!cpu_nanoseconds) return tl::unexpected(cpu_nanoseconds.error());
  usage.cpu = std::chrono::microseconds(*cpu_nanoseconds / 1000);
  auto memory_bytes = read_number(memory, "memory.usage_in_bytes");
  if (!memory_bytes) return tl::unexpected(memory_bytes.error());
  usage.memory_bytes = *memory_bytes;
  auto pids = read_number(pids_directory, "pids.current");
  if (!pids) return tl::unexpected(pids.error());
  usage.pids = *pids;
  auto limit = read_number(memory, "memory.limit_in_bytes");
  if (!limit) return tl::unexpected(limit.error());
  usage.memory_limit_bytes = *limit >= kV1Unlimited ? 0 : *limit;
  // memory.oom_control lists oom_kill from Linux 4.13 on; older kernels read as 0.
  auto oom_kills = read_keyed(memory, "memory.oom_control", "oom_kill");
  if (!oom_kills) return tl::unexpected(oom_kills.error());
  usage.oom_kills = *oom_kills;
  return usage;
}

}  // namespace zwrm::cgroup
