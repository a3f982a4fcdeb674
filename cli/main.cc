// zwrm: run AI agents, each in its own microVM.
//
// main() only builds the command tree; every command lives in a cmd_*.cc
// file and delegates to the host and state libraries.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "host/supervisor/exit_codes.h"
#include "host/supervisor/reaper.h"
#include "host/supervisor/supervisor.h"
#include "host/sys/log.h"
#include "state/names.h"

namespace zwrm::cli {

int report_error(const Error& error) {
  std::fprintf(stderr, "zwrm: error: %s\n", error.message.c_str());
  return supervisor::kExitZwrmError;
}

Result<Session> open_session() {
  auto paths = sys::Paths::resolve();
  if (!paths) return tl::unexpected(paths.error());
  auto db = state::Database::open(paths->database);
  if (!db) return tl::unexpected(db.error());
  if (auto reaped = supervisor::reap_lost_runs(**db, *paths); !reaped) return tl::unexpected(reaped.error());
  if (auto pruned = supervisor::prune_run_logs(**db); !pruned) return tl::unexpected(pruned.error());
  return Session{std::move(*paths), std::move(*db)};
}

}  // namespace zwrm::cli

int main(int argc, char** argv) {
  // The supervisor is this same binary, started by the client with its
  // socket on descriptor 3; it is not a user command.
  if (argc == 2 && std::strcmp(argv[1], "__supervise") == 0) return zwrm::supervisor::run_supervisor(3);

  zwrm::sys::log_to_stderr("cli", spdlog::level::warn);
  CLI::App app{"zwrm runs AI agents each in its own microVM, with a persistent volume per project."};
  app.set_version_flag("--version", ZWRM_VERSION);
  app.require_subcommand(1);
  zwrm::cli::Context context;
  zwrm::cli::add_run_commands(app, context);
  zwrm::cli::add_agent_commands(app, context);
  zwrm::cli::add_env_commands(app, context);
  zwrm::cli::add_secret_commands(app, context);
  zwrm::cli::add_policy_commands(app, context);
  zwrm::cli::add_status_commands(app, context);
  zwrm::cli::add_image_commands(app, context);
  zwrm::cli::add_audit_commands(app, context);
  zwrm::cli::add_copy_commands(app, context);
  const auto subcommands = app.get_subcommands([](const CLI::App*) { return true; });
  const bool known = argc > 1 && std::any_of(subcommands.begin(), subcommands.end(),
                                             [&](const CLI::App* command) { return command->get_name() == argv[1]; });
  if (argc > 1 && argv[1][0] != '-' && !known) {
    std::fprintf(stderr, "zwrm: error: unknown command '%s'; see `zwrm --help`\n",
                 zwrm::state::printable(argv[1]).c_str());
    return zwrm::supervisor::kExitZwrmError;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);
    // Point at the help of the deepest command that was recognised.
    std::string command = "zwrm";
    for (const CLI::App* current = &app; !current->get_subcommands().empty();) {
      current = current->get_subcommands().front();
      command += " " + current->get_name();
    }
    std::string message = error.what();
    if (!message.empty()) message[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(message[0])));
    std::fprintf(stderr, "zwrm: error: %s; see `%s --help`\n", zwrm::printable(message).c_str(), command.c_str());
    return zwrm::supervisor::kExitZwrmError;
  }
  return context.exit_code;
}
