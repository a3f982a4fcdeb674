// `zwrm agent`: start an agent (`zwrm agent TEMPLATE NAME`) and manage agent
// records (create, ls, show, set, rm).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/prepare.h"
#include "cli/run_command.h"
#include "cli/settings.h"
#include "cli/terminal.h"
#include "common/printable.h"
#include "host/images/template.h"
#include "host/images/volume.h"
#include "host/sys/units.h"
#include "state/agents.h"
#include "state/audit.h"
#include "state/names.h"
#include "state/runs.h"
#include "state/policy.h"
#include "state/secrets.h"

namespace zwrm::cli {

namespace {

using nlohmann::json;

std::string optional_duration(const std::optional<std::int64_t>& ms) {
  return ms ? sys::format_duration(std::chrono::milliseconds(*ms)) : "none";
}

json agent_json(const state::Agent& agent) {
  json value = agent_event_data(agent, false);
  value.erase("volume_created");
  value["name"] = agent.name;
  value["created_at_ms"] = agent.created_at_ms;
  value["updated_at_ms"] = agent.updated_at_ms;
  return value;
}

Result<state::Agent> load_agent(state::Database& db, const std::string& name) {
  if (auto valid = state::validate_project_name(name); !valid) return tl::unexpected(valid.error());
  auto agent = state::find_agent(db, name);
  if (!agent) return tl::unexpected(agent.error());
  if (!*agent) return fail("no agent named " + name + "; `zwrm agent ls` lists agents");
  return std::move(**agent);
}

Status record(state::Database& db, const std::string& agent, const std::string& type, json data) {
  auto appended = state::append_event(db, {agent, "", state::EventSource::kHost, type, std::move(data)});
  if (!appended) return tl::unexpected(appended.error());
  return {};
}

// Fails when a live run uses the agent's volume.
Status check_not_running(state::Database& db, const std::string& name, const char* action) {
  auto live = state::find_live_run_of_project(db, name);
  if (!live) return tl::unexpected(live.error());
  if (*live) {
    return fail("cannot " + std::string(action) + " agent " + name + " while run " + (*live)->id +
                " uses it; stop it with `zwrm stop " + (*live)->id + "` first");
  }
  return {};
}

int create_agent(const std::string& name, const SettingsInput& input) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  if (auto valid = state::validate_project_name(name); !valid) return report_error(valid.error());
  auto existing = state::find_agent(*session->db, name);
  if (!existing) return report_error(existing.error());
  if (*existing) return report_error({"agent " + name + " exists already; change it with `zwrm agent set " + name + "`"});
  if (input.template_name.empty()) return report_error({"missing --template; `zwrm template ls` lists templates"});

  auto definition = images::find_template(session->paths, input.template_name);
  if (!definition) return report_error(definition.error());
  auto agent = new_agent_settings(session->paths, name, *definition);
  if (!agent) return report_error(agent.error());
  if (auto applied = apply_settings(input, *agent, /*allow_none=*/true); !applied) return report_error(applied.error());
  if (!input.disk.empty()) {
    auto disk = parse_disk_bytes(input.disk);
    if (!disk) return report_error(disk.error());
    agent->volume_bytes = *disk;
  }

  auto volume = images::ensure_volume(session->paths, name, agent->volume_bytes);
  if (!volume) return report_error(volume.error());
  agent->volume_path = volume->path;
  agent->volume_bytes = volume->size_bytes;
  auto inserted = state::insert_agent(*session->db, *agent);
  if (!inserted) return report_error(inserted.error());
  if (!*inserted) return report_error({"agent " + name + " was created by another zwrm meanwhile"});
  if (auto recorded = record(*session->db, name, "agent.create", agent_event_data(*agent, volume->created)); !recorded) {
    return report_error(recorded.error());
  }
  if (auto seeded = seed_agent_policy(session->paths, *session->db, *agent); !seeded) return report_error(seeded.error());
  std::printf("created agent %s (template %s, %s volume%s)\n", name.c_str(), agent->template_name.c_str(),
              sys::format_size(agent->volume_bytes).c_str(), volume->created ? "" : ", existing");
  return 0;
}

// Grows the agent's volume file. The guest init grows the file system to the
// device's size at its next mount, so the host never touches the file system
// the guest wrote.
Status grow_volume(state::Agent& agent, std::uint64_t new_size) {
  if (new_size == agent.volume_bytes) return {};
  if (new_size < agent.volume_bytes) {
    return fail("cannot shrink the volume of agent " + agent.name + " from " + sys::format_size(agent.volume_bytes) +
                " to " + sys::format_size(new_size) + "; volumes only grow");
  }
  auto lock = images::lock_volume(agent.volume_path);
  if (!lock) return tl::unexpected(with_context(lock.error(), "cannot grow the volume of agent " + agent.name));
  if (::truncate(agent.volume_path.c_str(), static_cast<off_t>(new_size)) != 0) {
    return fail_errno("cannot grow volume " + agent.volume_path);
  }
  agent.volume_bytes = new_size;
  return {};
}

int set_agent(const std::string& name, const SettingsInput& input) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto agent = load_agent(*session->db, name);
  if (!agent) return report_error(agent.error());
  const state::Agent before = *agent;
  if (!input.template_name.empty()) {
    auto definition = images::find_template(session->paths, input.template_name);
    if (!definition) return report_error(definition.error());
    agent->template_name = definition->name;
  }
  if (auto applied = apply_settings(input, *agent, /*allow_none=*/true); !applied) return report_error(applied.error());
  std::optional<std::uint64_t> new_disk;
  if (!input.disk.empty()) {
    auto disk = parse_disk_bytes(input.disk);
    if (!disk) return report_error(disk.error());
    new_disk = *disk;
  }

  // Validation done; now change things.
  if (new_disk) {
    if (auto grown = grow_volume(*agent, *new_disk); !grown) return report_error(grown.error());
  }
  if (auto updated = state::update_agent(*session->db, *agent); !updated) return report_error(updated.error());
  json changes = json::object();
  const json old_values = agent_json(before);
  const json new_values = agent_json(*agent);
  for (const auto& [key, value] : new_values.items()) {
    if (key != "updated_at_ms" && old_values.value(key, json()) != value) changes[key] = value;
  }
  if (auto recorded = record(*session->db, name, "agent.change", {{"changes", changes}}); !recorded) {
    return report_error(recorded.error());
  }
  std::printf("updated agent %s\n", name.c_str());
  return 0;
}

int list_agents(bool as_json) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto agents = state::list_agents(*session->db);
  if (!agents) return report_error(agents.error());
  if (as_json) {
    for (const state::Agent& agent : *agents) std::printf("%s\n", agent_json(agent).dump().c_str());
    return 0;
  }
  std::printf("%-20s  %-10s  %4s  %8s  %8s  %-8s  %-8s  %s\n", "AGENT", "TEMPLATE", "CPUS", "MEMORY", "DISK", "TIMEOUT",
              "IDLE", "RUN");
  for (const state::Agent& agent : *agents) {
    auto live = state::find_live_run_of_project(*session->db, agent.name);
    const std::string run = live && *live ? (*live)->id : "-";
    std::printf("%-20s  %-10s  %4u  %8s  %8s  %-8s  %-8s  %s\n", agent.name.c_str(), agent.template_name.c_str(),
                agent.cpus, sys::format_size(agent.memory_mib << 20).c_str(),
                sys::format_size(agent.volume_bytes).c_str(), optional_duration(agent.timeout_ms).c_str(),
                optional_duration(agent.idle_timeout_ms).c_str(), run.c_str());
  }
  return 0;
}

std::string local_time(std::int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm parts{};
  ::localtime_r(&seconds, &parts);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &parts);
  return text;
}

int show_agent(const std::string& name, bool as_json) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto agent = load_agent(*session->db, name);
  if (!agent) return report_error(agent.error());
  auto env = state::agent_env(*session->db, name);
  if (!env) return report_error(env.error());
  auto secrets = state::list_secrets(*session->db, name);
  if (!secrets) return report_error(secrets.error());
  auto live = state::find_live_run_of_project(*session->db, name);
  if (auto seeded = seed_agent_policy(session->paths, *session->db, *agent); !seeded) return report_error(seeded.error());
  auto rules = state::list_policy_rules(*session->db, name);
  if (!rules) return report_error(rules.error());

  if (as_json) {
    json value = agent_json(*agent);
    value["env"] = json::object();
    for (const auto& [key, text] : *env) value["env"][key] = text;
    value["secrets"] = json::array();
    for (const state::SecretInfo& secret : *secrets) {
      value["secrets"].push_back({{"name", secret.name}, {"set_at_ms", secret.set_at_ms}});
    }
    value["live_run"] = live && *live ? json((*live)->id) : json(nullptr);
    value["policy"] = json::array();
    for (const state::PolicyRule& rule : *rules) value["policy"].push_back(rule.rule);
    std::printf("%s\n", value.dump(2).c_str());
    return 0;
  }
  std::printf("agent:         %s\n", agent->name.c_str());
  std::printf("template:      %s\n", agent->template_name.c_str());
  std::printf("cpus:          %u\n", agent->cpus);
  std::printf("memory:        %s\n", sys::format_size(agent->memory_mib << 20).c_str());
  std::printf("volume:        %s (%s)\n", agent->volume_path.c_str(), sys::format_size(agent->volume_bytes).c_str());
  std::printf("timeout:       %s\n", optional_duration(agent->timeout_ms).c_str());
  std::printf("idle timeout:  %s\n", optional_duration(agent->idle_timeout_ms).c_str());
  std::printf("egress rate:   %s/s\n", sys::format_size(agent->egress_rate.value_or(kDefaultEgressRate)).c_str());
  std::printf("ingress rate:  %s/s\n", sys::format_size(agent->ingress_rate.value_or(kDefaultIngressRate)).c_str());
  std::printf("egress quota:  %s per run\n", sys::format_size(agent->egress_quota.value_or(kDefaultEgressQuota)).c_str());
  std::printf("connections:   %lld at once\n",
              static_cast<long long>(agent->max_connections.value_or(kDefaultMaxConnections)));
  std::printf("created:       %s\n", local_time(agent->created_at_ms).c_str());
  std::printf("live run:      %s\n", live && *live ? (*live)->id.c_str() : "none");
  std::printf("environment:%s\n", env->empty() ? "   none" : "");
  for (const auto& [key, text] : *env) std::printf("  %s=%s\n", key.c_str(), printable(text).c_str());
  std::printf("secrets:%s\n", secrets->empty() ? "       none" : "");
  for (const state::SecretInfo& secret : *secrets) {
    std::printf("  %s (set %s)\n", secret.name.c_str(), local_time(secret.set_at_ms).c_str());
  }
  std::printf("egress allowed to:%s\n", rules->empty() ? " nothing" : "");
  for (const state::PolicyRule& rule : *rules) std::printf("  %s\n", rule.rule.c_str());
  return 0;
}

int remove_agent(const std::string& name, bool keep_volume, bool yes) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto agent = load_agent(*session->db, name);
  if (!agent) return report_error(agent.error());
  if (auto idle = check_not_running(*session->db, name, "remove"); !idle) return report_error(idle.error());

  struct stat info {};
  const bool volume_exists = ::lstat(agent->volume_path.c_str(), &info) == 0;
  const bool delete_volume = volume_exists && !keep_volume;
  if (delete_volume && !yes) {
    const std::string used = sys::format_size(static_cast<std::uint64_t>(info.st_blocks) * 512);
    if (!confirm("Delete agent " + name + " and its volume " + agent->volume_path + " (" + used + " used)?")) {
      return report_error({"agent " + name + " kept: deleting its volume needs confirmation; answer y, pass --yes, "
                           "or pass --keep-volume to keep the volume"});
    }
  }
  // The record goes first: if removing the volume then fails, the data
  // is still there and a new agent of the same name picks it up.
  auto deleted = state::delete_agent(*session->db, name);
  if (!deleted) return report_error(deleted.error());
  bool volume_deleted = false;
  if (delete_volume) {
    if (auto lock = images::lock_volume(agent->volume_path); !lock) {
      return report_error(with_context(lock.error(), "agent " + name + " removed, but not its volume"));
    }
    if (::unlink(agent->volume_path.c_str()) != 0) {
      return report_error({"agent " + name + " removed, but not its volume " + agent->volume_path + ": " +
                           std::strerror(errno)});
    }
    volume_deleted = true;
  }
  if (auto recorded = record(*session->db, name, "agent.delete",
                             {{"volume", agent->volume_path}, {"volume_deleted", volume_deleted}});
      !recorded) {
    return report_error(recorded.error());
  }
  std::string what_happened;
  if (volume_deleted) {
    what_happened = " and its volume";
  } else if (volume_exists) {
    what_happened = "; its volume is kept";
  }
  std::printf("removed agent %s%s\n", name.c_str(), what_happened.c_str());
  return 0;
}

}  // namespace

void add_agent_commands(CLI::App& app, Context& context) {
  auto options = std::make_shared<RunOptions>();
  auto command = std::make_shared<std::vector<std::string>>();
  CLI::App* agent = app.add_subcommand(
      "agent", "Start an agent for a project (zwrm agent TEMPLATE NAME), or manage agents (create, ls, show, set, rm)");
  agent->add_option("template", options->template_name, "Template of the agent: claude, codex, shell, minimal, ...");
  agent->add_option("name", options->project, "Agent (project) name: its volume and settings persist");
  add_run_options(*agent, *options);
  // No positionals_at_end here: options may follow TEMPLATE and NAME, and a
  // command goes after `--`.
  agent->add_option("command", *command, "A command to run instead of the template's default, after `--`")
      ->type_name("COMMAND");
  agent->callback([agent, options, command, &context] {
    if (!agent->get_subcommands().empty()) return;
    if (auto valid = check_no_empty_values(*agent); !valid) {
      context.exit_code = report_error(valid.error());
      return;
    }
    if (options->template_name.empty() || agent->get_option("name")->count() == 0) {
      context.exit_code = report_error({"missing TEMPLATE or NAME; usage: zwrm agent TEMPLATE NAME [-- COMMAND...]"});
      return;
    }
    options->template_must_match = true;
    options->tty = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
    context.exit_code = start_run(*options, guest_command(*command));
  });

  auto create_name = std::make_shared<std::string>();
  auto create_input = std::make_shared<SettingsInput>();
  CLI::App* create = agent->add_subcommand("create", "Create an agent and its volume");
  create->add_option("name", *create_name, "Agent name")->required();
  create->add_option("--template", create_input->template_name, "Template of the agent")->required()->type_name("NAME");
  add_settings_options(*create, *create_input, "of each run", "; \"none\" for no deadline");
  create->callback([create, create_name, create_input, &context] {
    if (auto valid = check_no_empty_values(*create); !valid) {
      context.exit_code = report_error(valid.error());
      return;
    }
    context.exit_code = create_agent(*create_name, *create_input);
  });

  auto ls_json = std::make_shared<bool>(false);
  CLI::App* ls = agent->add_subcommand("ls", "List agents with their settings");
  ls->add_flag("--json", *ls_json, "Print one JSON object per agent");
  ls->callback([ls_json, &context] { context.exit_code = list_agents(*ls_json); });

  auto show_name = std::make_shared<std::string>();
  auto show_json = std::make_shared<bool>(false);
  CLI::App* show = agent->add_subcommand("show", "Show an agent's settings, environment and secret names");
  show->add_option("name", *show_name, "Agent name")->required();
  show->add_flag("--json", *show_json, "Print a JSON object");
  show->callback([show_name, show_json, &context] { context.exit_code = show_agent(*show_name, *show_json); });

  auto set_name = std::make_shared<std::string>();
  auto set_input = std::make_shared<SettingsInput>();
  CLI::App* set = agent->add_subcommand("set", "Change an agent's settings; they apply from its next run");
  set->add_option("name", *set_name, "Agent name")->required();
  set->add_option("--template", set_input->template_name, "Template of the agent")->type_name("NAME");
  add_settings_options(*set, *set_input, "of each run", "; \"none\" removes the deadline");
  set->callback([set, set_name, set_input, &context] {
    if (auto valid = check_no_empty_values(*set); !valid) {
      context.exit_code = report_error(valid.error());
      return;
    }
    context.exit_code = set_agent(*set_name, *set_input);
  });

  auto rm_name = std::make_shared<std::string>();
  auto keep_volume = std::make_shared<bool>(false);
  auto yes = std::make_shared<bool>(false);
  CLI::App* rm = agent->add_subcommand("rm", "Remove an agent with its environment and secrets, and its volume");
  rm->add_option("name", *rm_name, "Agent name")->required();
  rm->add_flag("--keep-volume", *keep_volume, "Keep the volume; a new agent of the same name uses it again");
  rm->add_flag("-y,--yes", *yes, "Delete the volume without asking");
  rm->callback([rm_name, keep_volume, yes, &context] {
    context.exit_code = remove_agent(*rm_name, *keep_volume, *yes);
  });
}

}  // namespace zwrm::cli
