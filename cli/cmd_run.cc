// `zwrm run` and `zwrm agent`: start a run and stay attached to it.
#include <unistd.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/prepare.h"
#include "host/supervisor/exit_codes.h"

namespace zwrm::cli {

namespace {

void add_resource_options(CLI::App& command, RunOptions& options) {
  command.add_option("--cpus", options.cpus, "Virtual CPUs of the VM (default 1)")->type_name("N");
  command.add_option("--memory", options.memory, "Memory of the VM, such as 512M or 2G (default 512M)")
      ->type_name("SIZE");
  command.add_option("--disk", options.disk,
                     "Size of the project's volume when it is created, such as 10G (default 10G)")
      ->type_name("SIZE");
  command.add_option("--timeout", options.timeout,
                     "Deadline for the whole run, such as 30s, 10m or 2h; the host ends the VM when it passes")
      ->type_name("DURATION");
  command.add_option("--accel", options.accel, "auto (KVM when it works, else TCG), kvm or tcg (default auto)")
      ->type_name("ACCEL");
  command.add_option("-e,--env", options.env, "Set an environment variable for the command; repeatable")
      ->type_name("KEY=VALUE");
  command.add_flag("--root", options.root, "Run the command as root in the guest instead of the agent user");
}

// Returns the guest command as CLI11 collected it. With positionals_at_end,
// parsing of zwrm's own options stops at the first positional argument, so
// the command's options are never taken for zwrm's. `agent` collects its
// TEMPLATE and PROJECT first and then keeps a `--` that follows them.
std::vector<std::string> guest_command(std::vector<std::string> command) {
  if (!command.empty() && command.front() == "--") command.erase(command.begin());
  return command;
}

// Rejects an option given with an empty value (`--disk ''`), which would
// otherwise mean the same as leaving it out.
Status check_no_empty_values(const CLI::App& command) {
  for (const CLI::Option* option : command.get_options()) {
    if (option->get_positional() || option->count() == 0 || option->get_type_size() == 0) continue;
    for (const std::string& value : option->results()) {
      if (value.empty()) return fail("invalid " + option->get_name() + " ''; give it a value or leave it out");
    }
  }
  return {};
}

int start_run(RunOptions& options, std::vector<std::string> command) {
  options.command = std::move(command);
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto request = prepare_run(options, session->paths);
  if (!request) return report_error(request.error());
  return run_client(*request);
}

}  // namespace

void add_run_commands(CLI::App& app, Context& context) {
  auto run_options = std::make_shared<RunOptions>();
  auto run_command = std::make_shared<std::vector<std::string>>();
  CLI::App* run = app.add_subcommand("run", "Run a command in a new microVM and print its output");
  run->add_option("--template", run_options->template_name, "Template of the VM's root file system (default minimal)")
      ->type_name("NAME");
  run->add_option("--project", run_options->project, "Project whose volume is mounted at /workspace (default: default)")
      ->type_name("NAME");
  add_resource_options(*run, *run_options);
  run->add_option("command", *run_command, "The command and its arguments, best after `--`")->type_name("COMMAND");
  run->positionals_at_end();
  run->callback([run, run_options, run_command, &context] {
    if (auto valid = check_no_empty_values(*run); !valid) {
      context.exit_code = report_error(valid.error());
      return;
    }
    std::vector<std::string> command = guest_command(*run_command);
    if (command.empty()) {
      context.exit_code = report_error({"no command given; usage: zwrm run [OPTIONS] -- COMMAND [ARG...]"});
      return;
    }
    run_options->tty = false;
    context.exit_code = start_run(*run_options, std::move(command));
  });

  auto agent_options = std::make_shared<RunOptions>();
  auto agent_command = std::make_shared<std::vector<std::string>>();
  CLI::App* agent = app.add_subcommand(
      "agent", "Start a template's agent for a project, interactively; a terminal when stdin is one");
  agent->add_option("template", agent_options->template_name, "Template: minimal, debian, ...")->required();
  agent->add_option("project", agent_options->project, "Project: its volume persists across runs")->required();
  add_resource_options(*agent, *agent_options);
  agent->add_option("command", *agent_command, "The command to run instead of the template's default, after `--`")
      ->type_name("COMMAND");
  agent->positionals_at_end();
  agent->callback([agent, agent_options, agent_command, &context] {
    if (auto valid = check_no_empty_values(*agent); !valid) {
      context.exit_code = report_error(valid.error());
      return;
    }
    agent_options->tty = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
    context.exit_code = start_run(*agent_options, guest_command(*agent_command));
  });
}

}  // namespace zwrm::cli
