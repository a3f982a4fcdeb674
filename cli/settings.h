// An agent's settings as a user types them (on `zwrm agent create`, `zwrm
// agent set`, or as per-run overrides on `zwrm run` and `zwrm agent`), and
// their validation. Every check happens here, before anything is created,
// and every error quotes the value through printable().
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "common/error.h"
#include "state/agents.h"

namespace zwrm::cli {

// Values as typed; empty means "not given".
struct SettingsInput {
  std::string template_name;
  std::string cpus;
  std::string memory;
  std::string disk;
  std::string timeout;       // a duration, or "none" (agent create/set only)
  std::string idle_timeout;  // a duration, or "none" (agent create/set only)
  std::string egress_rate;      // a size per second, such as 10M or 10MB/s
  std::string ingress_rate;
  std::string egress_quota;     // a size, such as 5G
  std::string max_connections;  // a count
};

// Egress limits of a run when its agent sets none: high enough that no
// agent at work meets them, low enough that a runaway guest cannot take the
// host's whole link or fill it with connections.
inline constexpr std::uint64_t kDefaultEgressRate = 100ull << 20;   // bytes per second
inline constexpr std::uint64_t kDefaultIngressRate = 100ull << 20;  // bytes per second
inline constexpr std::uint64_t kDefaultEgressQuota = 20ull << 30;   // bytes per run, both directions
inline constexpr unsigned kDefaultMaxConnections = 128;

// Adds --cpus, --memory, --disk, --timeout, --idle-timeout and the egress
// limits (--egress-rate, --ingress-rate, --egress-quota, --max-connections)
// to command.
// `what` completes the help text: "of this run" or "of each run", and
// `deadline_note`, when not empty, ends the help of the two deadlines (what
// "none" does).
void add_settings_options(CLI::App& command, SettingsInput& input, const std::string& what,
                          const std::string& deadline_note = {});

Result<unsigned> parse_cpus(const std::string& text);
// Returns MiB.
Result<std::uint64_t> parse_memory_mib(const std::string& text);
Result<std::uint64_t> parse_disk_bytes(const std::string& text);
// Parses a deadline for `option` (named in errors). "none" gives nullopt
// when allow_none, and is an error otherwise.
Result<std::optional<std::int64_t>> parse_deadline_ms(const std::string& option, const std::string& text,
                                                     bool allow_none);

// Parses a rate for option: a size per second ("10M", "10MB/s"), at least
// 1 KiB/s. Returns bytes per second.
Result<std::uint64_t> parse_rate(const std::string& option, const std::string& text);

// Applies the given values of input to agent (template excepted), leaving
// the rest as they are. Disk is not applied: volumes change size elsewhere.
Status apply_settings(const SettingsInput& input, state::Agent& agent, bool allow_none);

}  // namespace zwrm::cli
