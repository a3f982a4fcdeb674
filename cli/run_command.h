// Pieces shared by the commands that start a run (`zwrm run`, `zwrm agent`).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/prepare.h"
#include "common/error.h"

namespace zwrm::cli {

// Adds the per-run options: settings overrides, --accel, -e and --root.
void add_run_options(CLI::App& command, RunOptions& options);

// Returns the guest command as CLI11 collected it. With positionals_at_end,
// parsing of zwrm's own options stops at the first positional argument, so
// the command's options are never taken for zwrm's. `agent` collects its
// TEMPLATE and NAME first and then keeps a `--` that follows them.
std::vector<std::string> guest_command(std::vector<std::string> command);

// Rejects an option given with an empty value (`--disk ''`), which would
// otherwise mean the same as leaving it out.
Status check_no_empty_values(const CLI::App& command);

// Prepares and runs the request, attached; returns zwrm's exit code.
int start_run(RunOptions& options, std::vector<std::string> command);

}  // namespace zwrm::cli
