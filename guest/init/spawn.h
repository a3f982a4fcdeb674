// Starts one process for an exec request: in its own session, as the
// requested user, with the request's environment and working directory, on
// pipes or on a new pseudo-terminal.
#pragma once

#include <sys/types.h>

#include "common/error.h"
#include "common/unique_fd.h"
#include "protocol/message.h"

namespace zwrm::guest {

struct SpawnedProcess {
  pid_t pid = -1;
  UniqueFd stdin_fd;   // write end; for a terminal, a duplicate of the master
  UniqueFd stdout_fd;  // read end; for a terminal, the master
  UniqueFd stderr_fd;  // read end; not used with a terminal
};

// Starts the process. Returns an ExitStatus of kind kFailedToStart (127 for
// a command not found, 126 for one that cannot be executed) as the error
// value when the exec itself failed, so the caller can report it like a
// shell would. All descriptors returned are non-blocking.
tl::expected<SpawnedProcess, protocol::ExitStatus> spawn_process(const protocol::ExecRequest& request);

}  // namespace zwrm::guest
