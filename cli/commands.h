// One function per command group: each adds its subcommands to the CLI11
// app, parses nothing itself beyond options, and delegates to the library.
// A command's callback sets the process exit code through `exit_code`.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "common/error.h"
#include "host/sys/paths.h"
#include "state/database.h"

namespace zwrm::cli {

struct Context {
  int exit_code = 0;
};

void add_run_commands(CLI::App& app, Context& context);     // run
void add_agent_commands(CLI::App& app, Context& context);   // agent and its subcommands
void add_env_commands(CLI::App& app, Context& context);     // env set, unset, ls
void add_secret_commands(CLI::App& app, Context& context);  // secret set, ls, rm
void add_policy_commands(CLI::App& app, Context& context);  // policy allow, deny, ls, test
void add_status_commands(CLI::App& app, Context& context);  // ps, stop, logs
void add_image_commands(CLI::App& app, Context& context);   // kernel, template
void add_audit_commands(CLI::App& app, Context& context);   // audit and its subcommands
void add_copy_commands(CLI::App& app, Context& context);    // cp

// Prints "zwrm: error: MESSAGE" on stderr and returns the zwrm error exit code.
int report_error(const Error& error);

// Resolves paths and opens the database, reaping runs whose supervisor died.
struct Session {
  sys::Paths paths;
  std::unique_ptr<state::Database> db;
};
Result<Session> open_session();

}  // namespace zwrm::cli
