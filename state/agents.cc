#include "state/agents.h"

namespace zwrm::state {

namespace {

constexpr const char* kColumns =
    "name, template, volume_path, volume_bytes, cpus, memory_mib, timeout_ms, idle_timeout_ms, created_at, updated_at, "
    "egress_rate, ingress_rate, egress_quota, max_connections";

Agent read_agent(const Statement& row) {
  Agent agent;
  agent.name = row.text(0);
  agent.template_name = row.text(1);
  agent.volume_path = row.text(2);
  agent.volume_bytes = static_cast<std::uint64_t>(row.integer(3));
  agent.cpus = static_cast<unsigned>(row.integer(4));
  agent.memory_mib = static_cast<std::uint64_t>(row.integer(5));
  agent.timeout_ms = row.optional_integer(6);
  agent.idle_timeout_ms = row.optional_integer(7);
  agent.created_at_ms = row.integer(8);
  agent.updated_at_ms = row.integer(9);
  agent.egress_rate = row.optional_integer(10);
  agent.ingress_rate = row.optional_integer(11);
  agent.egress_quota = row.optional_integer(12);
  agent.max_connections = row.optional_integer(13);
  return agent;
}

std::string select_agents(const char* where) { return std::string("SELECT ") + kColumns + " FROM agents " + where; }

}  // namespace

Result<std::optional<Agent>> find_agent(Database& db, const std::string& name) {
  auto query = db.prepare(select_agents("WHERE name = ?").c_str());
  if (!query) return tl::unexpected(query.error());
  query->bind(1, name);
  auto row = query->step();
  if (!row) return tl::unexpected(row.error());
  if (!*row) return std::optional<Agent>();
  return std::optional<Agent>(read_agent(*query));
}

Result<bool> insert_agent(Database& db, const Agent& agent) {
  auto insert = db.prepare(
      "INSERT OR IGNORE INTO agents (name, template, volume_path, volume_bytes, cpus, memory_mib, timeout_ms, "
      "idle_timeout_ms, created_at, updated_at, egress_rate, ingress_rate, egress_quota, max_connections) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!insert) return tl::unexpected(insert.error());
  const std::int64_t now = agent.created_at_ms != 0 ? agent.created_at_ms : now_unix_ms();
  insert->bind(1, agent.name)
      .bind(2, agent.template_name)
      .bind(3, agent.volume_path)
      .bind(4, static_cast<std::int64_t>(agent.volume_bytes))
      .bind(5, static_cast<std::int64_t>(agent.cpus))
      .bind(6, static_cast<std::int64_t>(agent.memory_mib))
      .bind(7, agent.timeout_ms)
      .bind(8, agent.idle_timeout_ms)
      .bind(9, now)
      .bind(10, now)
      .bind(11, agent.egress_rate)
      .bind(12, agent.ingress_rate)
      .bind(13, agent.egress_quota)
      .bind(14, agent.max_connections);
  if (auto done = insert->run(); !done) return tl::unexpected(done.error());
  return sqlite3_changes(db.handle()) > 0;
}

Status update_agent(Database& db, const Agent& agent) {
  auto update = db.prepare(
      "UPDATE agents SET template = ?, volume_path = ?, volume_bytes = ?, cpus = ?, memory_mib = ?, timeout_ms = ?, "
      "idle_timeout_ms = ?, updated_at = ?, egress_rate = ?, ingress_rate = ?, egress_quota = ?, max_connections = ? "
      "WHERE name = ?");
  if (!update) return tl::unexpected(update.error());
  update->bind(1, agent.template_name)
      .bind(2, agent.volume_path)
      .bind(3, static_cast<std::int64_t>(agent.volume_bytes))
      .bind(4, static_cast<std::int64_t>(agent.cpus))
      .bind(5, static_cast<std::int64_t>(agent.memory_mib))
      .bind(6, agent.timeout_ms)
      .bind(7, agent.idle_timeout_ms)
      .bind(8, now_unix_ms())
      .bind(9, agent.egress_rate)
      .bind(10, agent.ingress_rate)
      .bind(11, agent.egress_quota)
      .bind(12, agent.max_connections)
      .bind(13, agent.name);
  if (auto done = update->run(); !done) return done;
  if (sqlite3_changes(db.handle()) == 0) return fail("no agent named " + agent.name + "; `zwrm agent ls` lists agents");
  return {};
}

Result<bool> delete_agent(Database& db, const std::string& name) {
  auto remove = db.prepare("DELETE FROM agents WHERE name = ?");
  if (!remove) return tl::unexpected(remove.error());
  remove->bind(1, name);
  if (auto done = remove->run(); !done) return tl::unexpected(done.error());
  return sqlite3_changes(db.handle()) > 0;
}

Result<std::vector<Agent>> list_agents(Database& db) {
  auto query = db.prepare(select_agents("ORDER BY name").c_str());
  if (!query) return tl::unexpected(query.error());
  std::vector<Agent> agents;
  for (;;) {
    auto row = query->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return agents;
    agents.push_back(read_agent(*query));
  }
}

Result<std::vector<std::pair<std::string, std::string>>> agent_env(Database& db, const std::string& agent) {
  auto query = db.prepare("SELECT key, value FROM agent_env WHERE agent = ? ORDER BY key");
  if (!query) return tl::unexpected(query.error());
  query->bind(1, agent);
  std::vector<std::pair<std::string, std::string>> env;
  for (;;) {
    auto row = query->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return env;
    env.emplace_back(query->text(0), query->text(1));
  }
}

Status set_agent_env(Database& db, const std::string& agent, const std::string& key, const std::string& value) {
  auto upsert = db.prepare(
      "INSERT INTO agent_env (agent, key, value) VALUES (?, ?, ?) ON CONFLICT (agent, key) DO UPDATE SET value = "
      "excluded.value");
  if (!upsert) return tl::unexpected(upsert.error());
  upsert->bind(1, agent).bind(2, key).bind(3, value);
  return upsert->run();
}

Result<bool> unset_agent_env(Database& db, const std::string& agent, const std::string& key) {
  auto remove = db.prepare("DELETE FROM agent_env WHERE agent = ? AND key = ?");
  if (!remove) return tl::unexpected(remove.error());
  remove->bind(1, agent).bind(2, key);
  if (auto done = remove->run(); !done) return tl::unexpected(done.error());
  return sqlite3_changes(db.handle()) > 0;
}

}  // namespace zwrm::state
