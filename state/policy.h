// The egress policy of each agent: rule texts in canonical form (see
// host/proxy/policy.h for their syntax). The supervisor reads them for
// every new connection, so a change applies to live runs at once. Listed in
// the order of their text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "state/database.h"

namespace zwrm::state {

struct PolicyRule {
  std::string rule;
  std::int64_t added_at_ms = 0;
};

Result<std::vector<PolicyRule>> list_policy_rules(Database& db, const std::string& agent);
// Adds a rule. Returns false when the agent had it already.
Result<bool> add_policy_rule(Database& db, const std::string& agent, const std::string& rule);
// Removes a rule. Returns false when the agent did not have it.
Result<bool> remove_policy_rule(Database& db, const std::string& agent, const std::string& rule);

// Gives the agent its template's default rules, once: the first call for an
// agent adds them and marks the agent seeded, later calls change nothing, so
// rules the user removed stay removed. Returns whether it added them.
Result<bool> seed_policy(Database& db, const std::string& agent, const std::vector<std::string>& rules);

}  // namespace zwrm::state
