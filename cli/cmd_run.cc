// `zwrm run` and the run form of `zwrm agent TEMPLATE NAME`: start a run and
// stay attached to it.
#include <unistd.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/prepare.h"
#include "cli/run_command.h"
#include "host/supervisor/exit_codes.h"

namespace zwrm::cli {

void add_run_options(CLI::App& command, RunOptions& options) {
  add_settings_options(command, options.overrides, "of this run (default: the agent's)");
  command.add_option("--accel", options.accel, "auto (KVM when it works, else TCG), kvm or tcg (default auto)")
      ->type_name("ACCEL");
  // One value per -e, so a following `--` still starts the command.
  command.add_option("-e,--env", options.env, "Set an environment variable for the command; repeatable")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  command.add_flag("--root", options.root, "Run the command as root in the guest instead of the agent user");
  command.add_option("-p,--publish", options.publish,
                     "Forward a host port to a port in the guest, such as 8080:80; the host side binds 127.0.0.1 "
                     "unless ADDR is given; repeatable")
      ->type_name("[ADDR:]HOSTPORT:GUESTPORT")
      ->allow_extra_args(false);
  command.add_flag("--no-limits", options.allow_no_limits,
                   "Run even where the host cannot apply the run's cgroup limits (CPU, memory, tasks); recorded");
  command.add_option("--jail", options.jail,
                     "How the VMM is jailed: full (the default; refuse to run without every step), partial (skip "
                     "the steps this host cannot apply) or off (no namespaces or own user); recorded")
      ->type_name("MODE");
}

std::vector<std::string> guest_command(std::vector<std::string> command) {
  if (!command.empty() && command.front() == "--") command.erase(command.begin());
  return command;
}

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
  auto request = prepare_run(options, session->paths, *session->db);
  if (!request) return report_error(request.error());
  return run_client(*request);
}

void add_run_commands(CLI::App& app, Context& context) {
  auto options = std::make_shared<RunOptions>();
  auto command = std::make_shared<std::vector<std::string>>();
  CLI::App* run = app.add_subcommand("run", "Run a command in a new microVM and print its output");
  run->add_option("--template", options->template_name,
                  "Template for this run (default: the agent's, or minimal for a new agent)")
      ->type_name("NAME");
  run->add_option("--project,--agent", options->project,
                  "Agent (project) whose volume, settings, environment and secrets the run uses (default: default)")
      ->type_name("NAME");
  add_run_options(*run, *options);
  run->add_flag("-d,--detach", options->detach,
                "Start the run, print its id and return; it goes on until it ends or reaches its deadline "
                "(--timeout is required), and its output goes to `zwrm logs RUN --output`");
  run->add_option("command", *command, "The command and its arguments, best after `--`")->type_name("COMMAND");
  run->positionals_at_end();
  run->callback([run, options, command, &context] {
    if (auto valid = check_no_empty_values(*run); !valid) {
      context.exit_code = report_error(valid.error());
      return;
    }
    std::vector<std::string> argv = guest_command(*command);
    if (argv.empty()) {
      context.exit_code = report_error({"no command given; usage: zwrm run [OPTIONS] -- COMMAND [ARG...]"});
      return;
    }
    options->tty = false;
    context.exit_code = start_run(*options, std::move(argv));
  });
}

}  // namespace zwrm::cli
