// Runs helper programs (mkfs.ext4, mmdebstrap, the kernel build) and
// collects what they print.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace zwrm::sys {

struct ProcessOptions {
  // Extra KEY=VALUE entries added to (or replacing in) the inherited
  // environment.
  std::vector<std::string> extra_env;
  std::string cwd;
  // Bytes written to the child's stdin; without it stdin is /dev/null.
  std::optional<std::string> stdin_data;
  // Called with each line the child prints on stdout or stderr, as it comes.
  std::function<void(std::string_view line)> on_line;
  // Kills the child (SIGKILL) after this long; zero means no limit.
  std::chrono::milliseconds timeout{0};
};

struct ProcessResult {
  int exit_code = -1;    // valid when signal == 0
  int signal = 0;        // the signal that ended the child, or 0
  bool timed_out = false;
  std::string output;    // stdout and stderr interleaved, last 64 KiB only

  bool succeeded() const { return signal == 0 && exit_code == 0 && !timed_out; }
  // One line for error messages: "exited with status 2: <last output line>".
  std::string describe() const;
};

// Runs argv[0] (looked up in PATH) and waits for it. Fails only when the
// child could not be started; a child that fails is a ProcessResult.
Result<ProcessResult> run_process(const std::vector<std::string>& argv,
                                  const ProcessOptions& options = {});

// Returns the full path of a program found in PATH, or an empty string.
std::string find_program(std::string_view name);

}  // namespace zwrm::sys
