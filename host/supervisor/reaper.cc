#include "host/supervisor/reaper.h"

#include "host/cgroup/run_cgroup.h"
#include "host/sys/files.h"
#include "state/audit.h"
#include "state/runs.h"

namespace zwrm::supervisor {

Result<int> reap_lost_runs(state::Database& db, const sys::Paths& paths) {
  auto runs = state::list_runs(db, /*live_only=*/true);
  if (!runs) return tl::unexpected(runs.error());
  int reaped = 0;
  for (const state::Run& run : *runs) {
    if (state::supervisor_alive(run)) continue;
    const std::string detail = "the supervisor (pid " + std::to_string(run.supervisor_pid) +
                               ") exited without ending the run";
    (void)sys::remove_tree(paths.runtime + "/" + run.id);
    if (auto ended = state::mark_run_ended(db, run.id, std::nullopt, "supervisor-lost", detail); !ended) {
      return tl::unexpected(ended.error());
    }
    auto appended = state::append_event(db, {run.project, run.id, state::EventSource::kHost, "run.end",
                                             {{"exit_code", nullptr}, {"cause", "supervisor-lost"}, {"detail", detail}}});
    if (!appended) return tl::unexpected(appended.error());
    ++reaped;
  }
  if (reaped > 0) {
    // The lost supervisors' cgroups are empty now that their VMMs are gone.
    auto live = state::list_runs(db, /*live_only=*/true);
    if (!live) return tl::unexpected(live.error());
    std::vector<std::string> live_ids;
    for (const state::Run& run : *live) live_ids.push_back(run.id);
    (void)cgroup::remove_stale(live_ids);
  }
  return reaped;
}

Result<int> prune_run_logs(state::Database& db, int keep) {
  auto runs = state::list_ended_runs_before(db, keep);
  if (!runs) return tl::unexpected(runs.error());
  int removed = 0;
  for (const state::Run& run : *runs) {
    if (run.log_dir.empty() || !sys::path_exists(run.log_dir)) continue;
    if (sys::remove_tree(run.log_dir)) ++removed;
  }
  return removed;
}

}  // namespace zwrm::supervisor
