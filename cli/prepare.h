// Turning what the user typed into a RunRequest: validating every option,
// resolving the agent's settings (creating the agent with its template's
// defaults on first use), building or finding the kernel, initramfs and
// template image, creating the volume on first use, and choosing the
// accelerator. All of this happens in the CLI, before a supervisor exists,
// so progress and errors reach the user's terminal directly.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "host/supervisor/run_request.h"
#include <nlohmann/json.hpp>

#include "cli/settings.h"
#include "host/images/template.h"
#include "state/agents.h"
#include "state/database.h"
#include "host/sys/paths.h"

namespace zwrm::cli {

struct RunOptions {
  std::string project = "default";  // the agent's name
  // Empty: the agent's template, or minimal for a new agent. Given on `zwrm
  // run`, it overrides an existing agent's template for this run only.
  std::string template_name;
  // Set for `zwrm agent TEMPLATE NAME`: an existing agent's template must be
  // TEMPLATE, so a typo does not run one agent's secrets in another tool.
  bool template_must_match = false;
  std::vector<std::string> command;  // empty: the template's default command
  std::vector<std::string> env;      // -e KEY=VALUE, over the agent's environment
  // Per-run overrides of the agent's settings; disk only applies when the
  // volume is created.
  SettingsInput overrides;
  std::string accel = "auto";
  bool root = false;
  bool tty = false;
  bool detach = false;  // --detach: needs a deadline
  bool allow_no_limits = false;  // --no-limits
  std::string jail = "full";     // --jail full|partial|off
  std::vector<std::string> publish;  // --publish [ADDR:]HOSTPORT:GUESTPORT
};

Result<supervisor::RunRequest> prepare_run(const RunOptions& options, const sys::Paths& paths, state::Database& db);

// Gives an agent its template's default egress rules the first time they
// are needed (see state::seed_policy). An agent whose template no longer
// exists keeps the rules it has.
Status seed_agent_policy(const sys::Paths& paths, state::Database& db, const state::Agent& agent);

// Returns the settings a new agent gets from its template's defaults.
Result<state::Agent> new_agent_settings(const sys::Paths& paths, const std::string& name,
                                        const images::TemplateDefinition& definition);

// Returns an agent's settings as recorded in agent.create and agent.change
// events.
nlohmann::json agent_event_data(const state::Agent& agent, bool volume_created);

// Prints one progress line on stderr: "zwrm: LINE".
void report_progress(std::string_view line);

}  // namespace zwrm::cli
