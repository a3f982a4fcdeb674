#include "cli/settings.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

#include "common/printable.h"
#include "host/images/volume.h"
#include "host/sys/units.h"

namespace zwrm::cli {

namespace {

// Guests below this cannot hold the kernel, the init and a shell with room
// to work; the template's own needs may be higher.
constexpr std::uint64_t kMinimumMemory = 64ull << 20;
constexpr unsigned kMaximumCpus = 64;
constexpr unsigned kMaximumConnections = 4096;

Result<std::optional<std::int64_t>> parse_connections(const std::string& text) {
  const bool digits = !text.empty() && text.size() <= 5 && text.find_first_not_of("0123456789") == std::string::npos;
  const unsigned long value = digits ? std::stoul(text) : 0;
  if (value < 1 || value > kMaximumConnections) {
    return fail("invalid --max-connections '" + printable(text) + "'; use a whole number from 1 to " +
                std::to_string(kMaximumConnections));
  }
  return std::optional<std::int64_t>(static_cast<std::int64_t>(value));
}

}  // namespace

void add_settings_options(CLI::App& command, SettingsInput& input, const std::string& what,
                          const std::string& deadline_note) {
  command.add_option("--cpus", input.cpus, "Virtual CPUs " + what)->type_name("N");
  command.add_option("--memory", input.memory, "Memory " + what + ", such as 512M or 2G")->type_name("SIZE");
  command.add_option("--disk", input.disk, "Size of the volume, such as 10G; applies when it is created")
      ->type_name("SIZE");
  command.add_option("--timeout", input.timeout,
                     "Deadline " + what + ", such as 30s, 10m or 2h: the host ends the VM when it passes" +
                         deadline_note)
      ->type_name("DURATION");
  command.add_option("--idle-timeout", input.idle_timeout,
                     "Idle deadline " + what +
                         ": the VM ends after this long without terminal input or output, guest CPU use or egress" +
                         deadline_note)
      ->type_name("DURATION");
  command.add_option("--egress-rate", input.egress_rate,
                     "Bandwidth cap for data the guest sends out " + what + ", such as 10M (bytes per second)")
      ->type_name("RATE");
  command.add_option("--ingress-rate", input.ingress_rate,
                     "Bandwidth cap for data the guest receives " + what + ", such as 10M (bytes per second)")
      ->type_name("RATE");
  command.add_option("--egress-quota", input.egress_quota,
                     "Bytes a run may move through the egress proxy, both ways, before new connections are denied, "
                     "such as 5G")
      ->type_name("SIZE");
  command.add_option("--max-connections", input.max_connections,
                     "Egress connections a run may have open at once")
      ->type_name("N");
}

Result<std::uint64_t> parse_rate(const std::string& option, const std::string& text) {
  std::string size = text;
  if (size.size() > 2 && size.compare(size.size() - 2, 2, "/s") == 0) size.resize(size.size() - 2);
  auto bytes = sys::parse_size(size);
  if (!bytes) return fail("invalid " + option + ": " + bytes.error().message);
  if (*bytes < 1024) {
    return fail("invalid " + option + " '" + printable(text) + "'; use at least 1K (bytes per second), such as 10M");
  }
  return *bytes;
}

Result<unsigned> parse_cpus(const std::string& text) {
  const unsigned host_cpus = std::max(1u, std::thread::hardware_concurrency());
  const unsigned limit = std::min(host_cpus, kMaximumCpus);
  // Digits only: strtoul alone would also take " 1", "+1" and "-1".
  const bool digits = !text.empty() && text.size() <= 4 && text.find_first_not_of("0123456789") == std::string::npos;
  const unsigned long value = digits ? std::stoul(text) : 0;
  if (value < 1 || value > limit) {
    return fail("invalid --cpus '" + printable(text) + "'; use a whole number from 1 to " + std::to_string(limit) +
                " (this host has " + std::to_string(host_cpus) + " CPUs)");
  }
  return static_cast<unsigned>(value);
}

Result<std::uint64_t> parse_memory_mib(const std::string& text) {
  auto bytes = sys::parse_size(text);
  if (!bytes) return fail("invalid --memory: " + bytes.error().message);
  const std::uint64_t host_memory =
      static_cast<std::uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(::sysconf(_SC_PAGE_SIZE));
  if (*bytes < kMinimumMemory || *bytes > host_memory) {
    return fail("invalid --memory '" + printable(text) + "'; use from " + sys::format_size(kMinimumMemory) +
                " up to the host's " + sys::format_size(host_memory) + " with a unit, such as 512M or 2G");
  }
  return *bytes >> 20;
}

Result<std::uint64_t> parse_disk_bytes(const std::string& text) {
  auto disk = sys::parse_size(text);
  if (!disk) return fail("invalid --disk: " + disk.error().message);
  if (*disk < images::kMinimumVolumeSize) {
    return fail("invalid --disk '" + printable(text) + "': disk too small; use at least " +
                sys::format_size(images::kMinimumVolumeSize));
  }
  return *disk;
}

Result<std::optional<std::int64_t>> parse_deadline_ms(const std::string& option, const std::string& text,
                                                     bool allow_none) {
  if (text == "none") {
    if (allow_none) return std::optional<std::int64_t>();
    return fail("invalid " + option + " 'none' for one run; use `zwrm agent set NAME " + option +
                " none` to remove the agent's deadline");
  }
  auto duration = sys::parse_duration(text);
  if (!duration) return fail("invalid " + option + ": " + duration.error().message);
  if (duration->count() <= 0) return fail("invalid " + option + " '" + printable(text) + "'; it must be longer than zero");
  return std::optional<std::int64_t>(duration->count());
}

Status apply_settings(const SettingsInput& input, state::Agent& agent, bool allow_none) {
  if (!input.cpus.empty()) {
    auto cpus = parse_cpus(input.cpus);
    if (!cpus) return tl::unexpected(cpus.error());
    agent.cpus = *cpus;
  }
  if (!input.memory.empty()) {
    auto memory = parse_memory_mib(input.memory);
    if (!memory) return tl::unexpected(memory.error());
    agent.memory_mib = *memory;
  }
  if (!input.timeout.empty()) {
    auto timeout = parse_deadline_ms("--timeout", input.timeout, allow_none);
    if (!timeout) return tl::unexpected(timeout.error());
    agent.timeout_ms = *timeout;
  }
  if (!input.idle_timeout.empty()) {
    auto idle = parse_deadline_ms("--idle-timeout", input.idle_timeout, allow_none);
    if (!idle) return tl::unexpected(idle.error());
    agent.idle_timeout_ms = *idle;
  }
  const std::pair<const char*, const std::string*> rates[] = {{"--egress-rate", &input.egress_rate},
                                                              {"--ingress-rate", &input.ingress_rate}};
  for (const auto& [option, text] : rates) {
    if (text->empty()) continue;
    auto rate = parse_rate(option, *text);
    if (!rate) return tl::unexpected(rate.error());
    (std::string(option) == "--egress-rate" ? agent.egress_rate : agent.ingress_rate) = static_cast<std::int64_t>(*rate);
  }
  if (!input.egress_quota.empty()) {
    auto quota = sys::parse_size(input.egress_quota);
    if (!quota) return fail("invalid --egress-quota: " + quota.error().message);
    if (*quota < (1u << 20)) {
      return fail("invalid --egress-quota '" + printable(input.egress_quota) + "'; use at least 1M, such as 5G");
    }
    agent.egress_quota = static_cast<std::int64_t>(*quota);
  }
  if (!input.max_connections.empty()) {
    auto connections = parse_connections(input.max_connections);
    if (!connections) return tl::unexpected(connections.error());
    agent.max_connections = *connections;
  }
  return {};
}

}  // namespace zwrm::cli
