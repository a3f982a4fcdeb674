#include "host/cgroup/layout.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "host/sys/files.h"

namespace zwrm::cgroup {

namespace {

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}

bool is_octal(char c) { return c >= '0' && c <= '7'; }

// Decodes the \ooo escapes that the kernel writes for space, tab, newline and
// backslash in mountinfo paths.
std::string unescape_octal(std::string_view text) {
  std::string decoded;
  decoded.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size() && is_octal(text[i + 1]) && is_octal(text[i + 2]) &&
        is_octal(text[i + 3])) {
      decoded.push_back(static_cast<char>((text[i + 1] - '0') * 64 + (text[i + 2] - '0') * 8 + (text[i + 3] - '0')));
      i += 3;
    } else {
      decoded.push_back(text[i]);
    }
  }
  return decoded;
}

// Super options of a v1 mount name its controllers among flags such as "rw"
// and settings such as "name=systemd" or "release_agent=...".
std::vector<std::string> controllers_from_options(std::string_view options) {
  std::vector<std::string> controllers;
  for (std::string_view option : split(options, ',')) {
    if (option.empty() || option == "rw" || option == "ro" || option.find('=') != std::string_view::npos) continue;
    controllers.emplace_back(option);
  }
  return controllers;
}

bool contains(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string joined;
  for (const std::string& item : items) {
    if (!joined.empty()) joined += separator;
    joined += item;
  }
  return joined;
}

// True when `path` is `prefix` or below it, compared by whole components.
bool path_is_under(std::string_view path, std::string_view prefix) {
  if (prefix == "/") return !path.empty() && path.front() == '/';
  if (path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

// Maps a cgroup path from /proc/<pid>/cgroup to a directory under the mount.
Result<std::string> directory_of(const Mount& mount, const std::string& cgroup_path) {
  if (!path_is_under(cgroup_path, mount.root)) {
    return fail("this process's cgroup " + cgroup_path + " lies outside the cgroup mount at " + mount.mount_point +
                " (which shows " + mount.root + "); mount the hierarchy's root or run zwrm inside that cgroup");
  }
  std::string relative = mount.root == "/" ? cgroup_path : cgroup_path.substr(mount.root.size());
  if (relative == "/") relative.clear();
  return mount.mount_point + relative;
}

// Among mounts of one hierarchy (bind mounts show it more than once), picks
// the one that shows the most of it and still contains the caller's cgroup.
const Mount* best_mount(const std::vector<const Mount*>& candidates, const std::string& cgroup_path) {
  const Mount* best = nullptr;
  for (const Mount* mount : candidates) {
    if (!path_is_under(cgroup_path, mount->root)) continue;
    if (best == nullptr || mount->root.size() < best->root.size()) best = mount;
  }
  return best != nullptr ? best : (candidates.empty() ? nullptr : candidates.front());
}

const Membership* membership_for(const std::vector<Membership>& memberships, std::string_view controller) {
  for (const Membership& membership : memberships) {
    if (contains(membership.controllers, controller)) return &membership;
  }
  return nullptr;
}

const Membership* v2_membership(const std::vector<Membership>& memberships) {
  for (const Membership& membership : memberships) {
    if (membership.hierarchy_id == 0 && membership.controllers.empty()) return &membership;
  }
  return nullptr;
}

Result<Layout> v2_layout(const std::vector<Mount>& mounts, const std::vector<Membership>& memberships) {
  std::vector<const Mount*> v2_mounts;
  for (const Mount& mount : mounts) {
    if (mount.v2) v2_mounts.push_back(&mount);
  }
  if (v2_mounts.empty()) {
    return fail("no cgroup file system is mounted, so zwrm cannot limit a run's CPU, memory and processes; "
                "mount cgroup v2 with: mount -t cgroup2 cgroup2 /sys/fs/cgroup");
  }
  const Membership* membership = v2_membership(memberships);
  if (membership == nullptr) {
    return fail("cgroup v2 is mounted at " + v2_mounts.front()->mount_point +
                " but /proc/self/cgroup has no \"0::\" line for it");
  }
  const Mount* mount = best_mount(v2_mounts, membership->path);
  auto current = directory_of(*mount, membership->path);
  if (!current) return tl::unexpected(current.error());
  Layout layout;
  layout.version = Version::kV2;
  layout.hierarchies.push_back({required_controllers(Version::kV2), mount->mount_point, *current});
  return layout;
}

Result<Layout> v1_layout(const std::vector<Mount>& mounts, const std::vector<Membership>& memberships) {
  Layout layout;
  layout.version = Version::kV1;
  for (const std::string& controller : required_controllers(Version::kV1)) {
    std::vector<const Mount*> candidates;
    for (const Mount& mount : mounts) {
      if (!mount.v2 && contains(mount.controllers, controller)) candidates.push_back(&mount);
    }
    const Membership* membership = membership_for(memberships, controller);
    if (membership == nullptr) {
      return fail("the " + controller + " controller is mounted as cgroup v1 but /proc/self/cgroup has no line for it");
    }
    const Mount* mount = best_mount(candidates, membership->path);
    auto same_mount = [&](const Hierarchy& hierarchy) { return hierarchy.mount_point == mount->mount_point; };
    auto existing = std::find_if(layout.hierarchies.begin(), layout.hierarchies.end(), same_mount);
    if (existing != layout.hierarchies.end()) {
      existing->controllers.push_back(controller);
      continue;
    }
    auto current = directory_of(*mount, membership->path);
    if (!current) return tl::unexpected(current.error());
    layout.hierarchies.push_back({{controller}, mount->mount_point, *current});
  }
  return layout;
}

bool owned_by(const std::string& directory, uid_t uid) {
  struct stat info {};
  return ::stat(directory.c_str(), &info) == 0 && S_ISDIR(info.st_mode) && info.st_uid == uid;
}

std::string parent_directory(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

}  // namespace

const std::vector<std::string>& required_controllers(Version version) {
  static const std::vector<std::string> kV1 = {"cpu", "cpuacct", "memory", "pids"};
  static const std::vector<std::string> kV2 = {"cpu", "memory", "pids"};
  return version == Version::kV1 ? kV1 : kV2;
}

Result<std::vector<Mount>> parse_mountinfo(std::string_view text) {
  std::vector<Mount> mounts;
  for (std::string_view line : split(text, '\n')) {
    const std::size_t separator = line.find(" - ");
    if (separator == std::string_view::npos) continue;
    const std::vector<std::string_view> after = split(line.substr(separator + 3), ' ');
    if (after[0] != "cgroup" && after[0] != "cgroup2") continue;
    const std::vector<std::string_view> before = split(line.substr(0, separator), ' ');
    if (before.size() < 6 || after.size() < 3) {
      return fail("invalid cgroup entry in mountinfo: \"" + std::string(line) + "\"");
    }
    Mount mount;
    mount.root = unescape_octal(before[3]);
    mount.mount_point = unescape_octal(before[4]);
    mount.v2 = after[0] == "cgroup2";
    if (!mount.v2) mount.controllers = controllers_from_options(after[2]);
    mounts.push_back(std::move(mount));
  }
  return mounts;
}

Result<std::vector<Membership>> parse_proc_cgroup(std::string_view text) {
  std::vector<Membership> memberships;
  for (std::string_view line : split(text, '\n')) {
    if (line.empty()) continue;
    const std::size_t first = line.find(':');
    const std::size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) {
      return fail("invalid line in /proc/self/cgroup: \"" + std::string(line) + "\"");
    }
    Membership membership;
    const std::string_view id = line.substr(0, first);
    if (id.empty() || id.size() > 9 || !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return fail("invalid hierarchy id in /proc/self/cgroup: \"" + std::string(line) + "\"");
    }
    membership.hierarchy_id = std::stoi(std::string(id));
    membership.controllers = controllers_from_options(line.substr(first + 1, second - first - 1));
    membership.path = std::string(line.substr(second + 1));
    memberships.push_back(std::move(membership));
  }
  return memberships;
}

Result<Layout> detect_layout(std::string_view mountinfo, std::string_view proc_cgroup) {
  auto mounts = parse_mountinfo(mountinfo);
  if (!mounts) return tl::unexpected(mounts.error());
  auto memberships = parse_proc_cgroup(proc_cgroup);
  if (!memberships) return tl::unexpected(memberships.error());

  std::vector<std::string> on_v1;
  std::vector<std::string> missing;
  for (const std::string& controller : required_controllers(Version::kV1)) {
    const bool mounted = std::any_of(mounts->begin(), mounts->end(), [&](const Mount& mount) {
      return !mount.v2 && contains(mount.controllers, controller);
    });
    (mounted ? on_v1 : missing).push_back(controller);
  }

  if (on_v1.empty()) return v2_layout(*mounts, *memberships);
  if (missing.empty()) return v1_layout(*mounts, *memberships);
  return fail("this host mounts " + join(on_v1, ", ") + " as cgroup v1 but not " + join(missing, ", ") +
              ", and zwrm needs cpu, cpuacct, memory and pids in one cgroup version; mount the missing v1 "
              "controllers (for example: mount -t cgroup -o " + missing.front() + " cgroup /sys/fs/cgroup/" +
              missing.front() + ") or boot with systemd.unified_cgroup_hierarchy=1 for cgroup v2");
}

Result<Layout> detect_layout() {
  auto mountinfo = sys::read_file("/proc/self/mountinfo");
  if (!mountinfo) return tl::unexpected(mountinfo.error());
  auto proc_cgroup = sys::read_file("/proc/self/cgroup");
  if (!proc_cgroup) return tl::unexpected(proc_cgroup.error());
  return detect_layout(*mountinfo, *proc_cgroup);
}

Result<std::string> creation_parent(const Hierarchy& hierarchy, uid_t euid) {
  if (euid == 0) return hierarchy.mount_point;
  if (!owned_by(hierarchy.current, euid)) {
    return fail("cannot create cgroups as user " + std::to_string(euid) + ": this process's cgroup " +
                hierarchy.current + " is not delegated to this user; run zwrm as root, or inside a delegated "
                "cgroup (with systemd: systemd-run --user --scope -p Delegate=yes zwrm ...)");
  }
  std::string parent = hierarchy.current;
  while (parent != hierarchy.mount_point && parent.size() > hierarchy.mount_point.size()) {
    const std::string above = parent_directory(parent);
    if (!owned_by(above, euid)) break;
    parent = above;
  }
  return parent;
}

std::string brace_paths(const std::vector<std::string>& paths) {
  if (paths.size() == 1) return paths.front();
  std::vector<std::vector<std::string_view>> split_paths;
  for (const std::string& path : paths) split_paths.push_back(split(path, '/'));
  const std::size_t components = split_paths.front().size();
  std::size_t differing = components;
  for (const auto& parts : split_paths) {
    if (parts.size() != components) return join(paths, ", ");
  }
  for (std::size_t i = 0; i < components; ++i) {
    const bool same = std::all_of(split_paths.begin(), split_paths.end(),
                                  [&](const auto& parts) { return parts[i] == split_paths.front()[i]; });
    if (same) continue;
    if (differing != components) return join(paths, ", ");
    differing = i;
  }
  if (differing == components) return paths.front();

  std::string braced;
  for (std::size_t i = 0; i < components; ++i) {
    if (i > 0) braced += '/';
    if (i != differing) {
      braced += split_paths.front()[i];
      continue;
    }
    braced += '{';
    for (std::size_t p = 0; p < split_paths.size(); ++p) {
      if (p > 0) braced += ',';
      braced += split_paths[p][i];
    }
    braced += '}';
  }
  return braced;
}

}  // namespace zwrm::cgroup
