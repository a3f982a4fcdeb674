// `zwrm env`: an agent's environment, applied to every process it starts.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/printable.h"
#include "state/agents.h"
#include "state/audit.h"
#include "state/names.h"

namespace zwrm::cli {

namespace {

bool is_variable_name(const std::string& key) {
  if (key.empty() || key.size() > 128 || std::isdigit(static_cast<unsigned char>(key[0]))) return false;
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

Status check_agent(state::Database& db, const std::string& name) {
  if (auto valid = state::validate_project_name(name); !valid) return valid;
  auto agent = state::find_agent(db, name);
  if (!agent) return tl::unexpected(agent.error());
  if (!*agent) return fail("no agent named " + name + "; `zwrm agent ls` lists agents");
  return {};
}

int set_env(const std::string& name, const std::vector<std::string>& entries) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  if (auto valid = check_agent(*session->db, name); !valid) return report_error(valid.error());
  std::vector<std::pair<std::string, std::string>> parsed;
  for (const std::string& entry : entries) {
    const std::size_t equals = entry.find('=');
    const std::string key = entry.substr(0, equals);
    if (equals == std::string::npos || !is_variable_name(key)) {
      return report_error({"invalid environment entry '" + printable(entry) +
                           "'; use KEY=VALUE with a KEY of letters, digits and '_' that does not start with a digit"});
    }
    if (!is_valid_utf8(entry)) {
      return report_error({"invalid environment entry '" + printable(entry) + "': the value is not valid UTF-8"});
    }
    parsed.emplace_back(key, entry.substr(equals + 1));
  }
  nlohmann::json keys = nlohmann::json::array();
  auto stored = state::transaction(*session->db, [&]() -> Status {
    for (const auto& [key, value] : parsed) {
      if (auto done = state::set_agent_env(*session->db, name, key, value); !done) return done;
      keys.push_back(key);
    }
    auto appended = state::append_event(*session->db, {name, "", state::EventSource::kHost, "env.set", {{"keys", keys}}});
    if (!appended) return tl::unexpected(appended.error());
    return {};
  });
  if (!stored) return report_error(stored.error());
  return 0;
}

int unset_env(const std::string& name, const std::vector<std::string>& keys) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  if (auto valid = check_agent(*session->db, name); !valid) return report_error(valid.error());
  nlohmann::json removed = nlohmann::json::array();
  auto done = state::transaction(*session->db, [&]() -> Status {
    for (const std::string& key : keys) {
      auto unset = state::unset_agent_env(*session->db, name, key);
      if (!unset) return tl::unexpected(unset.error());
      if (!*unset) return fail("agent " + name + " has no environment variable " + printable(key));
      removed.push_back(key);
    }
    auto appended = state::append_event(*session->db, {name, "", state::EventSource::kHost, "env.unset", {{"keys", removed}}});
    if (!appended) return tl::unexpected(appended.error());
    return {};
  });
  if (!done) return report_error(done.error());
  return 0;
}

int list_env(const std::string& name, bool as_json) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  if (auto valid = check_agent(*session->db, name); !valid) return report_error(valid.error());
  auto env = state::agent_env(*session->db, name);
  if (!env) return report_error(env.error());
  if (as_json) {
    nlohmann::json value = nlohmann::json::object();
    for (const auto& [key, text] : *env) value[key] = text;
    std::printf("%s\n", value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  for (const auto& [key, text] : *env) std::printf("%s=%s\n", key.c_str(), printable(text).c_str());
  return 0;
}

}  // namespace

void add_env_commands(CLI::App& app, Context& context) {
  CLI::App* env = app.add_subcommand("env", "Manage an agent's environment variables");
  env->require_subcommand(1);

  auto set_name = std::make_shared<std::string>();
  auto set_entries = std::make_shared<std::vector<std::string>>();
  CLI::App* set = env->add_subcommand("set", "Set variables for every process the agent runs");
  set->add_option("agent", *set_name, "Agent name")->required();
  set->add_option("entries", *set_entries, "KEY=VALUE pairs")->required()->type_name("KEY=VALUE");
  set->callback([set_name, set_entries, &context] { context.exit_code = set_env(*set_name, *set_entries); });

  auto unset_name = std::make_shared<std::string>();
  auto unset_keys = std::make_shared<std::vector<std::string>>();
  CLI::App* unset = env->add_subcommand("unset", "Remove variables");
  unset->add_option("agent", *unset_name, "Agent name")->required();
  unset->add_option("keys", *unset_keys, "Variable names")->required()->type_name("KEY");
  unset->callback([unset_name, unset_keys, &context] { context.exit_code = unset_env(*unset_name, *unset_keys); });

  auto ls_name = std::make_shared<std::string>();
  auto ls_json = std::make_shared<bool>(false);
  CLI::App* ls = env->add_subcommand("ls", "List the agent's variables");
  ls->add_option("agent", *ls_name, "Agent name")->required();
  ls->add_flag("--json", *ls_json, "Print a JSON object");
  ls->callback([ls_name, ls_json, &context] { context.exit_code = list_env(*ls_name, *ls_json); });
}

}  // namespace zwrm::cli
