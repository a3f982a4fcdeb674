// Runs: one row per microVM booted, written by its supervisor. A run is
// `starting` until its guest is ready, `running` until it ends, then
// `ended` with an exit code and a stop cause.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "state/database.h"

namespace zwrm::state {

struct Run {
  std::string id;
  std::string project;
  std::string template_name;
  std::string command;  // JSON array of argv
  std::string state;    // starting, running, ended
  std::string accel;
  unsigned cpus = 0;
  std::uint64_t memory_mib = 0;
  std::optional<std::int64_t> timeout_ms;
  std::optional<std::int64_t> idle_timeout_ms;
  std::optional<std::int64_t> deadline_at_ms;  // when the hard deadline falls, moved by `zwrm extend`
  pid_t supervisor_pid = 0;
  std::int64_t supervisor_start_ticks = 0;  // from /proc/PID/stat, tells a reused pid apart
  std::optional<std::int64_t> vmm_pid;
  std::int64_t created_at_ms = 0;
  std::optional<std::int64_t> ended_at_ms;
  std::optional<std::int64_t> exit_code;
  // exit, deadline, stopped, interrupted, guest-crash, guest-poweroff,
  // vmm-crash, protocol-error, boot-failed, client-lost, failed,
  // supervisor-lost
  std::string stop_cause;
  std::string stop_detail;  // one sentence for people
  std::string log_dir;
};

Status insert_run(Database& db, const Run& run);
Status mark_run_running(Database& db, const std::string& id, pid_t vmm_pid, const std::string& accel);
Status set_run_deadline(Database& db, const std::string& id, std::int64_t deadline_at_ms);
Status mark_run_ended(Database& db, const std::string& id, std::optional<int> exit_code, const std::string& cause,
                      const std::string& detail);

Result<std::vector<Run>> list_runs(Database& db, bool live_only);
// Returns ended runs other than the newest `skip` ended ones, newest first.
Result<std::vector<Run>> list_ended_runs_before(Database& db, int skip);
// Finds a run by its id or a unique prefix of at least 4 characters.
Result<Run> find_run(Database& db, const std::string& id_or_prefix);
// Returns the live run of a project, if one exists.
Result<std::optional<Run>> find_live_run_of_project(Database& db, const std::string& project);

// Returns the start time of a process in clock ticks since boot (field 22
// of /proc/PID/stat), or 0 when the process does not exist.
std::int64_t process_start_ticks(pid_t pid);
// True when the run's supervisor process is still the one that wrote the row
// and has not exited. An exited supervisor that its parent has not reaped
// yet (a zombie) counts as gone, so its run can be reaped at once.
bool supervisor_alive(const Run& run);

}  // namespace zwrm::state
