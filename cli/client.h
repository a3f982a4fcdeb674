// The client side of a run: starts the run's supervisor as a separate
// process, hands it the request, and connects the user's stdin, stdout,
// stderr, terminal and signals to the run's main process until it ends.
#pragma once

#include "host/supervisor/run_request.h"

namespace zwrm::cli {

// Runs the request and returns the exit code for zwrm: the command's
// status, or one of supervisor/exit_codes.h.
int run_client(const supervisor::RunRequest& request);

}  // namespace zwrm::cli
