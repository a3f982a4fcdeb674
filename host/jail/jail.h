// The VMM jail: how a run's VMM process is confined on the host.
//
// The VMM parses everything the guest sends, so zwrm treats it as possibly
// taken over by the guest. spawn() starts it as a child that
//   1. enters new mount, pid, ipc, uts, cgroup and network namespaces (the
//      network namespace stays empty: the guest has no network device);
//   2. mounts a tmpfs over an empty per-run directory and puts in it only
//      read-only /usr, the library links, a few device nodes, and the kernel
//      and initramfs from descriptors the caller opened. Then it remounts the
//      tmpfs read-only and pivots into it, detaching the host's tree;
//   3. switches to the run's own uid and gid with no capabilities, no
//      bounding set and SECBIT_NOROOT, then sets no_new_privs;
//   4. sets resource limits (open files, processes, no core dumps);
//   5. executes the VMM with an empty environment and only the descriptors
//      it was given.
// QEMU then installs its own seccomp filter (-sandbox on), which is the
// last layer and part of the VMM's command line, not of this file.
//
// Steps 1-2 (namespaces) and 3's uid switch (own user) need root. Where the
// host cannot apply one, spawn() fails and names the step; the caller decides
// whether the user allowed running without it (Mode).
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace zwrm::jail {

// How much of the jail a run insists on.
enum class Mode {
  kFull,     // every step, or the run does not start (the default)
  kPartial,  // every step the host allows; each skipped one is logged and recorded
  kOff,      // no namespaces and no own user: for hosts without root, and
             // for measuring what the jail costs; logged and recorded
};

const char* mode_name(Mode mode);
// Parses "full", "partial" or "off".
Result<Mode> parse_mode(const std::string& text);

// The steps that need privileges a host may lack.
enum class Step { kNamespaces, kOwnUser };

const char* step_name(Step step);

// The uid and gid of the jailed VMM of the supervisor with this pid. The
// range lies above the ids of users and containers. Each live supervisor
// has its own id, because pids are unique while it lives and its VMM dies
// with it.
inline constexpr uid_t kFirstJailId = 2'100'000'000;
uid_t jail_id_for(pid_t supervisor_pid);

// A file the VMM reads by path: bound read-only at /vmm/NAME inside the
// jail's root, or kept open and named /proc/self/fd/N without namespaces.
struct File {
  int fd = -1;
  std::string name;
};

struct Options {
  // argv[0] is an absolute path; its directory is bound read-only when it
  // is not under /usr.
  std::vector<std::string> argv;
  // An empty directory on the host that becomes the VMM's root (a tmpfs is
  // mounted over it in the VMM's own mount namespace, so the host's copy
  // stays empty).
  std::string root;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;         // supplementary groups, such as /dev/kvm's group
  std::vector<std::string> devices;  // host device nodes bound at the same path: /dev/null, /dev/kvm
  std::vector<File> files;
  // fds[i] becomes descriptor i of the VMM; -1 gives /dev/null. Every other
  // descriptor is closed.
  std::vector<int> fds;
  rlim_t open_files = 1024;
  // The largest file the VMM may write or grow (RLIMIT_FSIZE): the volume's
  // size, so a VMM taken over cannot grow the volume or its log past it.
  rlim_t file_size = RLIM_INFINITY;
  rlim_t processes = 256;  // threads count too; applied only with an own user
  bool namespaces = true;
  bool own_user = true;

  // The path under which the VMM finds files[index], given `namespaces`.
  std::string file_path(std::size_t index) const;
};

struct SpawnError {
  Error error;
  std::optional<Step> step;  // set when a privileged step failed
};

// Starts options.argv in the jail and returns its pid (in the caller's pid
// namespace) once it has executed. The child gets SIGKILL when the calling
// thread exits (PR_SET_PDEATHSIG, armed after the uid switch, which clears
// it). Preconditions: options.root exists and is empty.
tl::expected<pid_t, SpawnError> spawn(const Options& options);

}  // namespace zwrm::jail
