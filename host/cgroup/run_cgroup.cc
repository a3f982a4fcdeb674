#include "host/cgroup/run_cgroup.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <thread>

#include <spdlog/spdlog.h>

#include "host/cgroup/control_files.h"
#include "host/sys/files.h"

namespace zwrm::cgroup {

namespace {

// How long remove() waits for the run's processes to leave. The supervisor
// calls it after reaping the VMM, so this only covers the kernel's own
// bookkeeping.
constexpr std::chrono::milliseconds kRemoveDeadline{2000};
constexpr std::chrono::milliseconds kPollInterval{10};
constexpr std::size_t kMaxRunIdLength = 64;
constexpr const char* kZwrmDirectory = "zwrm";

bool is_valid_run_id(const std::string& run_id) {
  if (run_id.empty() || run_id.size() > kMaxRunIdLength || run_id == "." || run_id == "..") return false;
  return std::all_of(run_id.begin(), run_id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

Status check_run_id(const std::string& run_id) {
  if (is_valid_run_id(run_id)) return {};
  return fail("invalid run id for a cgroup name; use 1 to " + std::to_string(kMaxRunIdLength) +
              " letters, digits, '_', '-' or '.', and not \".\" or \"..\"");
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find_first_of(" \n", start);
    if (end != start) words.emplace_back(text.substr(start, end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return words;
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string joined;
  for (const std::string& item : items) {
    if (!joined.empty()) joined += separator;
    joined += item;
  }
  return joined;
}

// Fails when the v2 cgroup `parent` does not offer every controller zwrm needs.
Status check_v2_controllers(const std::string& parent) {
  auto offered = read_control(parent, "cgroup.controllers");
  if (!offered) return tl::unexpected(with_context(offered.error(), "cannot read the cgroup v2 controllers"));
  const std::vector<std::string> available = split_words(*offered);
  std::vector<std::string> missing;
  for (const std::string& controller : required_controllers(Version::kV2)) {
    if (std::find(available.begin(), available.end(), controller) == available.end()) missing.push_back(controller);
  }
  if (missing.empty()) return {};
  return fail("the cgroup v2 hierarchy at " + parent + " does not offer the " + join(missing, ", ") +
              " controller (its cgroup.controllers lists \"" + join(available, " ") +
              "\"); as root, enable it in cgroup.subtree_control of each parent; as a user, ask for it to be "
              "delegated (systemd: Delegate=cpu memory pids for user@.service)");
}

// Enables the controllers zwrm needs for the children of v2 cgroup
// `directory`, writing only those not enabled yet, so that a delegated
// cgroup whose subtree_control is already right needs no write.
Status enable_v2_controllers(const std::string& directory) {
  auto enabled = read_control(directory, "cgroup.subtree_control");
  if (!enabled) return tl::unexpected(enabled.error());
  const std::vector<std::string> active = split_words(*enabled);
  std::string change;
  for (const std::string& controller : required_controllers(Version::kV2)) {
    if (std::find(active.begin(), active.end(), controller) != active.end()) continue;
    if (!change.empty()) change += ' ';
    change += "+" + controller;
  }
  if (change.empty()) return {};
  spdlog::info("enabling {} in {}/cgroup.subtree_control", change, directory);
  return write_control(directory, "cgroup.subtree_control", change);
}

Status make_zwrm_directory(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return {};
  const int error = errno;
  std::string message = "cannot create cgroup directory " + path + ": " + std::strerror(error);
  if (error == EACCES || error == EPERM) message += "; run zwrm as root, or in a cgroup delegated to this user";
  return tl::unexpected(Error{message, error});
}

// Returns the zwrm/ directory of `hierarchy`, created if missing. In v2 it
// first enables the controllers for the children of the creation parent and
// then of zwrm/, because a controller reaches a cgroup only through every
// cgroup.subtree_control above it.
Result<std::string> prepare_zwrm_directory(const Hierarchy& hierarchy, Version version) {
  auto parent = creation_parent(hierarchy, ::geteuid());
  if (!parent) return tl::unexpected(parent.error());
  const std::string zwrm = *parent + "/" + kZwrmDirectory;
  if (version == Version::kV2) {
    if (auto checked = check_v2_controllers(*parent); !checked) return tl::unexpected(checked.error());
    if (auto enabled = enable_v2_controllers(*parent); !enabled) return tl::unexpected(enabled.error());
  }
  if (auto made = make_zwrm_directory(zwrm); !made) return tl::unexpected(made.error());
  if (version == Version::kV2) {
    if (auto enabled = enable_v2_controllers(zwrm); !enabled) return tl::unexpected(enabled.error());
  }
  return zwrm;
}

Status remove_directory(const std::string& path) {
  if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return {};
  return fail_errno("cannot remove cgroup directory " + path);
}

// Returns the cgroup directory of process `pid` in each hierarchy of this
// host, keyed by the hierarchy's mount point.
Result<std::map<std::string, std::string>> directories_of(pid_t pid) {
  auto mountinfo = sys::read_file("/proc/self/mountinfo");
  if (!mountinfo) return tl::unexpected(mountinfo.error());
  auto proc_cgroup = sys::read_file("/proc/" + std::to_string(pid) + "/cgroup");
  if (!proc_cgroup) return tl::unexpected(proc_cgroup.error());
  auto layout = detect_layout(*mountinfo, *proc_cgroup);
  if (!layout) return tl::unexpected(layout.error());
  std::map<std::string, std::string> directories;
  for (const Hierarchy& hierarchy : layout->hierarchies) directories[hierarchy.mount_point] = hierarchy.current;
  return directories;
}

std::string version_name(Version version) { return version == Version::kV1 ? "cgroup v1" : "cgroup v2"; }

}  // namespace

Result<RunCgroup> RunCgroup::create(const std::string& run_id, const Limits& limits) {
  auto layout = detect_layout();
  if (!layout) return tl::unexpected(layout.error());
  return create(run_id, limits, *layout);
}

Result<RunCgroup> RunCgroup::create(const std::string& run_id, const Limits& limits, const Layout& layout) {
  if (auto valid = check_run_id(run_id); !valid) return tl::unexpected(valid.error());
  if (limits.cpus == 0) return fail("invalid CPU limit 0 for a run cgroup; use at least 1");

  RunCgroup cgroup;
  cgroup.run_id_ = run_id;
  cgroup.version_ = layout.version;
  for (const Hierarchy& hierarchy : layout.hierarchies) {
    auto zwrm = prepare_zwrm_directory(hierarchy, layout.version);
    if (!zwrm) return tl::unexpected(zwrm.error());
    cgroup.directories_.push_back({hierarchy.controllers, hierarchy.mount_point, *zwrm + "/" + run_id,
                                   hierarchy.current});
  }

  if (auto made = cgroup.make_run_directories(); !made) return tl::unexpected(made.error());
  auto applied = cgroup.version_ == Version::kV2 ? apply_limits_v2(cgroup.directories_.front().path, limits)
                                                 : apply_limits_v1(cgroup.by_controller(), limits);
  if (!applied) {
    for (const Directory& directory : cgroup.directories_) ::rmdir(directory.path.c_str());
    return tl::unexpected(with_context(applied.error(), "cannot set the limits of run " + run_id));
  }
  spdlog::info("created {}", cgroup.describe());
  return cgroup;
}

Status RunCgroup::make_run_directories() const {
  for (std::size_t i = 0; i < directories_.size(); ++i) {
    if (::mkdir(directories_[i].path.c_str(), 0755) == 0) continue;
    const int error = errno;
    std::string message = "cannot create cgroup directory " + directories_[i].path + ": " + std::strerror(error);
    if (error == EEXIST) message += "; another run has this id, or a stale group remains (see remove_stale)";
    for (std::size_t made = 0; made < i; ++made) ::rmdir(directories_[made].path.c_str());
    return tl::unexpected(Error{message, error});
  }
  return {};
}

ControllerDirectories RunCgroup::by_controller() const {
  ControllerDirectories directories;
  for (const Directory& directory : directories_) {
    for (const std::string& controller : directory.controllers) directories[controller] = directory.path;
  }
  return directories;
}

Result<RunCgroup> RunCgroup::locate(const std::string& run_id) {
  if (auto valid = check_run_id(run_id); !valid) return tl::unexpected(valid.error());
  auto layout = detect_layout();
  if (!layout) return tl::unexpected(layout.error());
  RunCgroup cgroup;
  cgroup.run_id_ = run_id;
  cgroup.version_ = layout->version;
  for (const Hierarchy& hierarchy : layout->hierarchies) {
    auto parent = creation_parent(hierarchy, ::geteuid());
    if (!parent) return tl::unexpected(parent.error());
    const std::string path = *parent + "/" + kZwrmDirectory + "/" + run_id;
    if (!sys::path_exists(path)) {
      return fail("run " + run_id + " has no cgroup: " + path + " does not exist", ENOENT);
    }
    cgroup.directories_.push_back({hierarchy.controllers, hierarchy.mount_point, path, hierarchy.current});
  }
  return cgroup;
}

Status RunCgroup::add_process(pid_t pid) {
  ZWRM_CHECK(!removed_);
  if (origins_.find(pid) == origins_.end()) {
    auto origin = directories_of(pid);
    if (!origin) {
      return tl::unexpected(with_context(origin.error(), "cannot find the cgroup of process " + std::to_string(pid)));
    }
    origins_[pid] = std::move(*origin);
  }
  for (const Directory& directory : directories_) {
    if (auto written = write_control(directory.path, "cgroup.procs", std::to_string(pid)); !written) {
      return tl::unexpected(with_context(written.error(), "cannot move process " + std::to_string(pid) +
                                                              " into the cgroup of run " + run_id_));
    }
  }
  spdlog::debug("moved process {} into the cgroup of run {}", pid, run_id_);
  return {};
}

Result<Usage> RunCgroup::usage() const {
  if (version_ == Version::kV2) return read_usage_v2(directories_.front().path);
  return read_usage_v1(by_controller());
}

Status RunCgroup::move_back(pid_t pid) {
  auto current = directories_of(pid);
  if (!current && current.error().errno_value == ENOENT) return {};  // the process has exited
  if (!current) return tl::unexpected(current.error());
  const auto recorded = origins_.find(pid);
  for (const Directory& directory : directories_) {
    const auto now = current->find(directory.mount_point);
    if (now == current->end() || now->second != directory.path) continue;
    std::string origin = directory.creator_origin;
    if (recorded != origins_.end() && recorded->second.count(directory.mount_point) != 0) {
      origin = recorded->second.at(directory.mount_point);
    }
    auto written = write_control(origin, "cgroup.procs", std::to_string(pid));
    if (!written && written.error().errno_value == ESRCH) return {};
    if (!written) {
      return tl::unexpected(with_context(written.error(), "cannot move process " + std::to_string(pid) +
                                                              " out of the cgroup of run " + run_id_));
    }
  }
  return {};
}

Status RunCgroup::wait_until_empty() const {
  const auto deadline = std::chrono::steady_clock::now() + kRemoveDeadline;
  for (;;) {
    std::vector<std::string> left;
    for (const Directory& directory : directories_) {
      auto pids = read_procs(directory.path);
      if (!pids && pids.error().errno_value == ENOENT) continue;
      if (!pids) return tl::unexpected(pids.error());
      for (pid_t pid : *pids) left.push_back(std::to_string(pid));
    }
    if (left.empty()) return {};
    if (std::chrono::steady_clock::now() >= deadline) {
      std::sort(left.begin(), left.end());
      left.erase(std::unique(left.begin(), left.end()), left.end());
      return fail("cannot remove the cgroup of run " + run_id_ + ": processes " + join(left, " ") +
                  " are still in it after " + std::to_string(kRemoveDeadline.count()) +
                  " ms; end them, then remove it again (remove_stale does once they have exited)", EBUSY);
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

Status RunCgroup::remove(pid_t pid) {
  if (removed_) return {};
  if (auto moved = move_back(pid); !moved) return moved;
  if (auto emptied = wait_until_empty(); !emptied) return emptied;

  // An exited process can keep a v1 group busy for a moment after it has
  // left cgroup.procs, so rmdir is retried on EBUSY until the deadline.
  const auto deadline = std::chrono::steady_clock::now() + kRemoveDeadline;
  for (const Directory& directory : directories_) {
    for (;;) {
      auto removed = remove_directory(directory.path);
      if (removed) break;
      if (removed.error().errno_value != EBUSY || std::chrono::steady_clock::now() >= deadline) return removed;
      std::this_thread::sleep_for(kPollInterval);
    }
  }
  removed_ = true;
  spdlog::info("removed {}", describe());
  return {};
}

std::string RunCgroup::describe() const {
  std::vector<std::string> controllers;
  std::vector<std::string> paths;
  for (const Directory& directory : directories_) {
    controllers.insert(controllers.end(), directory.controllers.begin(), directory.controllers.end());
    paths.push_back(directory.path);
  }
  return version_name(version_) + " (" + join(controllers, ", ") + ") at " + brace_paths(paths);
}

Result<Usage> read_usage(const std::string& run_id) {
  auto cgroup = RunCgroup::locate(run_id);
  if (!cgroup) return tl::unexpected(cgroup.error());
  return cgroup->usage();
}

namespace {

struct CloseDirectory {
  void operator()(DIR* stream) const { ::closedir(stream); }
};
using DirectoryStream = std::unique_ptr<DIR, CloseDirectory>;

// Removes `path` if no process is left in it; a busy or vanished group is
// not an error.
Status remove_if_empty(const std::string& path) {
  auto pids = read_procs(path);
  if (!pids && pids.error().errno_value == ENOENT) return {};
  if (!pids) return tl::unexpected(pids.error());
  if (!pids->empty()) {
    spdlog::debug("keeping cgroup {}: {} processes are still in it", path, pids->size());
    return {};
  }
  if (::rmdir(path.c_str()) == 0) {
    spdlog::info("removed stale cgroup {}", path);
    return {};
  }
  if (errno == ENOENT || errno == EBUSY) return {};
  return fail_errno("cannot remove stale cgroup " + path);
}

// Removes the stale groups in one zwrm/ directory and returns the first
// error after trying them all.
Status remove_stale_in(const std::string& zwrm, const std::vector<std::string>& live_run_ids) {
  DirectoryStream stream(::opendir(zwrm.c_str()));
  if (!stream) {
    if (errno == ENOENT) return {};
    return fail_errno("cannot list cgroup directory " + zwrm);
  }
  Status first_error;
  while (const dirent* entry = ::readdir(stream.get())) {
    const std::string name = entry->d_name;
    if (entry->d_type != DT_DIR || !is_valid_run_id(name)) continue;
    if (std::find(live_run_ids.begin(), live_run_ids.end(), name) != live_run_ids.end()) continue;
    auto removed = remove_if_empty(zwrm + "/" + name);
    if (!removed && first_error) first_error = removed;
  }
  return first_error;
}

}  // namespace

Status remove_stale(const std::vector<std::string>& live_run_ids) {
  auto layout = detect_layout();
  if (!layout) return tl::unexpected(layout.error());
  Status first_error;
  for (const Hierarchy& hierarchy : layout->hierarchies) {
    auto parent = creation_parent(hierarchy, ::geteuid());
    if (!parent) return tl::unexpected(parent.error());
    auto removed = remove_stale_in(*parent + "/" + kZwrmDirectory, live_run_ids);
    if (!removed && first_error) first_error = removed;
  }
  return first_error;
}

}  // namespace zwrm::cgroup
