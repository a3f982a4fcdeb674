// Turning what the user typed into a RunRequest: validating every option,
// building or finding the kernel, initramfs and template image, creating
// the project's volume on first use, and choosing the accelerator. All of
// this happens in the CLI, before a supervisor exists, so progress and
// errors reach the user's terminal directly.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "host/supervisor/run_request.h"
#include "host/sys/paths.h"

namespace zwrm::cli {

struct RunOptions {
  std::string project = "default";
  std::string template_name = "minimal";
  std::vector<std::string> command;  // empty: the template's default command
  std::vector<std::string> env;      // -e KEY=VALUE
  std::string cpus = "1";
  std::string memory = "512M";
  std::string disk;       // empty: the default size, only used on creation
  std::string timeout;    // empty: no deadline
  std::string accel = "auto";
  bool root = false;
  bool tty = false;
};

Result<supervisor::RunRequest> prepare_run(const RunOptions& options, const sys::Paths& paths);

// Prints one progress line on stderr: "zwrm: LINE".
void report_progress(std::string_view line);

}  // namespace zwrm::cli
