// The client side of a run: starts the run's supervisor as a separate
// process, hands it the request, and connects the user's stdin, stdout,
// stderr, terminal and signals to the run's main process until it ends.
#pragma once

#include <string>

#include "host/supervisor/run_request.h"

namespace zwrm::cli {

// Runs the request and returns the exit code for zwrm: the command's
// status, or one of supervisor/exit_codes.h. Sets *run_id, when given, to
// the run's id once the supervisor reported the run's end.
int run_client(const supervisor::RunRequest& request, std::string* run_id = nullptr);

}  // namespace zwrm::cli
