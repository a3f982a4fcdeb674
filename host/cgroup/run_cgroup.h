// A run's cgroup: CPU, memory and task limits on the supervisor and the VMM
// it starts, and the usage `zwrm ps` shows.
//
// The supervisor creates the run's cgroup, moves itself into it so that the
// VMM it forks next starts inside, and at the end moves itself out and
// removes the cgroup. Groups live in a zwrm/ directory of each hierarchy:
// for root at the top of the hierarchy (/sys/fs/cgroup/zwrm/<run> in v2),
// for other users in their delegated cgroup (see creation_parent() in
// layout.h). Works with cgroup v2 and with the v1 controllers cpu, cpuacct,
// memory and pids; layout.h explains how zwrm chooses.
//
// Security: the limits bound what a VMM that the guest has taken over can
// take from the host. The guest cannot reach the cgroup files, and the
// supervisor writes only numbers it computed into them. A RunCgroup is not
// safe for concurrent use from several threads.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "host/cgroup/layout.h"
#include "host/cgroup/limits.h"

namespace zwrm::cgroup {

// A snapshot of a run's resource use, children included.
struct Usage {
  std::chrono::microseconds cpu{0};    // CPU time used since the group was created
  std::uint64_t memory_bytes = 0;      // charged memory, page cache included
  std::uint64_t pids = 0;              // tasks (processes and threads) in the group now
  std::uint64_t memory_limit_bytes = 0;  // the memory ceiling in force, 0 when none
  std::uint64_t oom_kills = 0;         // processes the kernel OOM killer killed in the group
};

class RunCgroup {
 public:
  // Creates the cgroup of run `run_id` with `limits`. In v2 it enables the
  // cpu, memory and pids controllers in cgroup.subtree_control of the
  // creation parent and of zwrm/ first. Fails, naming the file, errno and
  // what to do, when a controller is missing or a file is not writable, and
  // leaves nothing behind then. Fails when the run's cgroup already exists.
  // `run_id` must be 1 to 64 characters of [A-Za-z0-9_.-], not "." or "..".
  static Result<RunCgroup> create(const std::string& run_id, const Limits& limits);
  // Does the same in `layout` instead of the one detect_layout() finds.
  static Result<RunCgroup> create(const std::string& run_id, const Limits& limits, const Layout& layout);

  // Moves process `pid` (all its threads) into the run's cgroup: into
  // cgroup.procs of the one v2 directory, or of each v1 hierarchy in turn.
  // Records where it came from, for remove(). Processes it forks later start
  // inside. Memory that the process used before the move stays charged to
  // its old group.
  Status add_process(pid_t pid);

  Result<Usage> usage() const;

  // Moves `pid` (normally the supervisor itself) back to the cgroup it came
  // from if it is still in the run's cgroup. Then waits up to 2 s for the
  // other processes to leave, as exited processes do once reaped, and
  // removes the run's directories. Calling it again after success does
  // nothing. Fails, listing the processes left, when some still run at the
  // deadline, and can then be called again.
  Status remove(pid_t pid);

  Version version() const { return version_; }
  // Returns one line for logs, such as "cgroup v1 (cpu, cpuacct, memory,
  // pids) at /sys/fs/cgroup/{cpu,cpuacct,memory,pids}/zwrm/<run>".
  std::string describe() const;

 private:
  friend Result<Usage> read_usage(const std::string& run_id);

  // The run's directory in one hierarchy.
  struct Directory {
    std::vector<std::string> controllers;
    std::string mount_point;
    std::string path;
    std::string creator_origin;  // the cgroup directory of the process that called create()
  };

  // Finds the directories of run `run_id` without creating anything.
  static Result<RunCgroup> locate(const std::string& run_id);

  Status make_run_directories() const;
  // Returns the run's directory for each controller.
  std::map<std::string, std::string> by_controller() const;
  Status move_back(pid_t pid);
  Status wait_until_empty() const;

  std::string run_id_;
  Version version_ = Version::kV2;
  std::vector<Directory> directories_;
  // For each process added, its cgroup directory before the move, keyed by
  // the mount point of each hierarchy.
  std::map<pid_t, std::map<std::string, std::string>> origins_;
  bool removed_ = false;
};

// Reads the usage of a live run from any process of the same user (for
// `zwrm ps`). Fails when the run has no cgroup.
Result<Usage> read_usage(const std::string& run_id);

// Removes the cgroups under zwrm/ whose run is not in `live_run_ids` and
// that have no processes left, as a supervisor that was killed with SIGKILL
// leaves them. Skips groups that still have processes. A group is empty
// between create() and add_process(), so `live_run_ids` must include runs
// that are still starting. Fails on the first directory it could not read
// or remove for another reason, after trying the rest.
Status remove_stale(const std::vector<std::string>& live_run_ids);

}  // namespace zwrm::cgroup
