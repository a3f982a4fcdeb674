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
};

// Adds --cpus, --memory, --disk, --timeout and --idle-timeout to command.
// `what` completes the help text: "of this run" or "of the agent".
void add_settings_options(CLI::App& command, SettingsInput& input, const std::string& what);

Result<unsigned> parse_cpus(const std::string& text);
// Returns MiB.
Result<std::uint64_t> parse_memory_mib(const std::string& text);
Result<std::uint64_t> parse_disk_bytes(const std::string& text);
// Parses a deadline for `option` (named in errors). "none" gives nullopt
// when allow_none, and is an error otherwise.
Result<std::optional<std::int64_t>> parse_deadline_ms(const std::string& option, const std::string& text,
                                                     bool allow_none);

// Applies the given values of input to agent (template excepted), leaving
// the rest as they are. Disk is not applied: volumes change size elsewhere.
Status apply_settings(const SettingsInput& input, state::Agent& agent, bool allow_none);

}  // namespace zwrm::cli
