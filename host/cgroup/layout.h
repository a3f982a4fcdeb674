// The location of the cgroup controllers zwrm uses on this host, read from
// /proc/self/mountinfo and /proc/self/cgroup, never from assumed paths.
//
// zwrm needs cpu, memory and pids (and cpuacct on cgroup v1, where CPU time
// is counted by a controller of its own). A host has them either in the
// unified cgroup v2 hierarchy or as cgroup v1 hierarchies, one per mount
// (cpu and cpuacct are often mounted together). A controller is attached to
// at most one hierarchy, so a controller that is mounted as v1 is not
// available in v2 on that host.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace zwrm::cgroup {

enum class Version { kV1, kV2 };

// One cgroup or cgroup2 entry of /proc/<pid>/mountinfo.
struct Mount {
  std::string root;         // the directory of the hierarchy that is mounted, usually "/"
  std::string mount_point;  // such as /sys/fs/cgroup/memory
  bool v2 = false;
  std::vector<std::string> controllers;  // v1 only: from the super options, such as {"cpu", "cpuacct"}
};

// One line of /proc/<pid>/cgroup: "ID:CONTROLLERS:PATH".
struct Membership {
  int hierarchy_id = 0;
  std::vector<std::string> controllers;  // empty for the v2 line "0::PATH" and for named v1 hierarchies
  std::string path;                      // relative to the hierarchy's root, such as /user.slice
};

// One hierarchy that contains a part of a run's cgroup.
struct Hierarchy {
  std::vector<std::string> controllers;  // the controllers zwrm uses from this hierarchy
  std::string mount_point;
  std::string current;  // directory of the calling process's cgroup in this hierarchy
};

struct Layout {
  Version version = Version::kV2;
  std::vector<Hierarchy> hierarchies;  // v2: exactly one; v1: one per mount, in controller order
};

// The controllers zwrm needs in each version, in the order it reports them.
const std::vector<std::string>& required_controllers(Version version);

// Parses the cgroup and cgroup2 entries of a mountinfo file and skips all
// others. Octal escapes (\040 for a space) in paths are decoded. Fails on a
// cgroup entry with too few fields.
Result<std::vector<Mount>> parse_mountinfo(std::string_view text);
// Parses a /proc/<pid>/cgroup file. Fails on a line without two colons.
Result<std::vector<Membership>> parse_proc_cgroup(std::string_view text);

// Decides the version and finds each hierarchy's mount and the caller's
// cgroup in it. Chooses v1 when every required v1 controller is mounted as
// v1, and v2 when none is and a cgroup2 file system is mounted. Fails, naming
// the controllers and what to mount, on anything in between or on no cgroup
// file system. Whether a v2 hierarchy offers the controllers is checked
// later, in cgroup.controllers of the directory where zwrm creates groups.
Result<Layout> detect_layout(std::string_view mountinfo, std::string_view proc_cgroup);
// Reads /proc/self/mountinfo and /proc/self/cgroup and calls the above.
Result<Layout> detect_layout();

// Returns the directory of `hierarchy` in which zwrm keeps its zwrm/
// directory. For root (euid 0) that is the mount point, which is the top of
// the hierarchy in this process's mount namespace. For other users it is the delegated
// cgroup: the topmost ancestor of the caller's cgroup, up to the mount
// point, such that it and every directory below it down to the caller's
// cgroup are owned by euid. Fails with what to do when the caller's cgroup is
// not owned by euid.
Result<std::string> creation_parent(const Hierarchy& hierarchy, uid_t euid);

// Joins directories that differ in one path component into one line for
// logs: {"/a/cpu/x", "/a/memory/x"} becomes "/a/{cpu,memory}/x". Directories
// that differ in other ways are joined with ", ".
std::string brace_paths(const std::vector<std::string>& paths);

}  // namespace zwrm::cgroup
