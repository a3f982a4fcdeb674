#include "state/policy.h"

namespace zwrm::state {

Result<std::vector<PolicyRule>> list_policy_rules(Database& db, const std::string& agent) {
  auto query = db.prepare("SELECT rule, added_at FROM policy_rules WHERE agent = ? ORDER BY rule");
  if (!query) return tl::unexpected(query.error());
  query->bind(1, agent);
  std::vector<PolicyRule> rules;
  for (;;) {
    auto row = query->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return rules;
    rules.push_back({query->text(0), query->integer(1)});
  }
}

Result<bool> add_policy_rule(Database& db, const std::string& agent, const std::string& rule) {
  auto insert = db.prepare("INSERT OR IGNORE INTO policy_rules (agent, rule, added_at) VALUES (?, ?, ?)");
  if (!insert) return tl::unexpected(insert.error());
  insert->bind(1, agent).bind(2, rule).bind(3, now_unix_ms());
  if (auto done = insert->run(); !done) return tl::unexpected(done.error());
  return sqlite3_changes(db.handle()) > 0;
}

Result<bool> remove_policy_rule(Database& db, const std::string& agent, const std::string& rule) {
  auto remove = db.prepare("DELETE FROM policy_rules WHERE agent = ? AND rule = ?");
  if (!remove) return tl::unexpected(remove.error());
  remove->bind(1, agent).bind(2, rule);
  if (auto done = remove->run(); !done) return tl::unexpected(done.error());
  return sqlite3_changes(db.handle()) > 0;
}

Result<bool> seed_policy(Database& db, const std::string& agent, const std::vector<std::string>& rules) {
  bool seeded = false;
  auto done = transaction(db, [&]() -> Status {
    auto mark = db.prepare("UPDATE agents SET policy_seeded = 1 WHERE name = ? AND policy_seeded = 0");
    if (!mark) return tl::unexpected(mark.error());
    mark->bind(1, agent);
    if (auto marked = mark->run(); !marked) return marked;
    if (sqlite3_changes(db.handle()) == 0) return {};
    seeded = true;
    for (const std::string& rule : rules) {
      if (auto added = add_policy_rule(db, agent, rule); !added) return tl::unexpected(added.error());
    }
    return {};
  });
  if (!done) return tl::unexpected(done.error());
  return seeded;
}

}  // namespace zwrm::state
