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

}  // namespace zwrm::supervisor
