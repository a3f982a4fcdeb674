// Agents: the named, persistent configuration of one project. An agent owns
// its volume (mounted at /workspace in every run), its settings (template,
// CPUs, memory, deadlines), its environment and its secrets. Runs are
// ephemeral; the agent is what a user comes back to.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "state/database.h"

namespace zwrm::state {

struct Agent {
  std::string name;  // also the project name: volumes/<name>.ext4, the guest's hostname
  std::string template_name;
  std::string volume_path;
  std::uint64_t volume_bytes = 0;
  unsigned cpus = 1;
  std::uint64_t memory_mib = 512;
  std::optional<std::int64_t> timeout_ms;       // hard deadline of each run; none when unset
  std::optional<std::int64_t> idle_timeout_ms;  // idle deadline of each run; none when unset
  // Egress limits of each run; unset means zwrm's default (see cli/settings).
  std::optional<std::int64_t> egress_rate;      // bytes per second out of the guest
  std::optional<std::int64_t> ingress_rate;     // bytes per second into the guest
  std::optional<std::int64_t> egress_quota;     // bytes both ways per run
  std::optional<std::int64_t> max_connections;  // open egress connections at once
  std::int64_t created_at_ms = 0;
  std::int64_t updated_at_ms = 0;
};

Result<std::optional<Agent>> find_agent(Database& db, const std::string& name);
// Inserts the agent. Returns false, changing nothing, when an agent of that
// name exists already.
Result<bool> insert_agent(Database& db, const Agent& agent);
// Replaces the settings of an existing agent (all fields but name and
// created_at_ms). Fails when the agent does not exist.
Status update_agent(Database& db, const Agent& agent);
// Deletes the agent with its environment and secrets. Returns false when
// there was no such agent.
Result<bool> delete_agent(Database& db, const std::string& name);
Result<std::vector<Agent>> list_agents(Database& db);

// The agent's environment: KEY=VALUE pairs applied to every process it runs.
Result<std::vector<std::pair<std::string, std::string>>> agent_env(Database& db, const std::string& agent);
Status set_agent_env(Database& db, const std::string& agent, const std::string& key, const std::string& value);
// Returns false when the key was not set.
Result<bool> unset_agent_env(Database& db, const std::string& agent, const std::string& key);

}  // namespace zwrm::state
