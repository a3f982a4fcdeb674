// Cleaning up after supervisors that died without ending their run (killed
// with SIGKILL, or the host lost power). Their VMM died with them
// (PR_SET_PDEATHSIG); what remains is the run's row, still marked live, and
// its run directory.
#pragma once

#include "common/error.h"
#include "host/sys/paths.h"
#include "state/database.h"

namespace zwrm::supervisor {

// Marks every live run whose supervisor is gone as ended with cause
// supervisor-lost, records its end event and removes its run directory.
// Returns how many runs it reaped.
Result<int> reap_lost_runs(state::Database& db, const sys::Paths& paths);

// Number of ended runs whose log directories are kept; older ones go.
inline constexpr int kKeptRunLogs = 100;

// Removes the log directories of ended runs beyond the newest `keep`, so
// logs/ stays bounded (each run's console log is capped at 1 MiB). The runs'
// rows and events stay. Returns how many directories it removed.
Result<int> prune_run_logs(state::Database& db, int keep = kKeptRunLogs);

}  // namespace zwrm::supervisor
