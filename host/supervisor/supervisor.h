// The supervisor: one process per run that owns the VMM from start to
// teardown. It is started by a client (the CLI) with one end of a socket
// pair, receives a RunRequest there, boots the VM, relays the main process's
// streams, enforces the deadline from the host's monotonic clock, and on
// every exit path kills the VMM, removes the run directory, records the
// outcome and reports it to the client.
#pragma once

namespace zwrm::supervisor {

// Runs the supervisor on client_fd (already connected) and returns the
// process exit status: 0 when the run was carried through (whatever the
// command's own status), 1 when the supervisor itself could not start it.
int run_supervisor(int client_fd);

}  // namespace zwrm::supervisor
