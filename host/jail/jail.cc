#include "host/jail/jail.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "common/printable.h"
#include "common/unique_fd.h"
#include "host/jail/root_plan.h"

namespace zwrm::jail {

namespace {

constexpr int kNamespaceFlags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP |
                                CLONE_NEWNET;
constexpr const char* kHostname = "zwrm-vmm";
// The child reports a failure on this descriptor, which no VMM descriptor
// list reaches.
constexpr int kReportFd = 1000;
// How long the parent waits for the child to execute the VMM.
constexpr int kExecTimeoutMs = 10'000;

// The child's steps, in order. A failure is reported as one of them.
enum class ChildStep : int {
  kDeathSignal,
  kPrivateMounts,
  kRootTmpfs,
  kRootOp,
  kRootReadOnly,
  kPivotRoot,
  kHostname,
  kDropBounding,
  kGroups,
  kGid,
  kUid,
  kCapabilities,
  kNoNewPrivs,
  kParentGone,
  kDescriptors,
  kLimits,
  kExec,
};

const char* describe(ChildStep step) {
  switch (step) {
    case ChildStep::kDeathSignal: return "cannot arm the parent-death signal";
    case ChildStep::kPrivateMounts: return "cannot make the mounts private";
    case ChildStep::kRootTmpfs: return "cannot mount the jail's root tmpfs";
    case ChildStep::kRootOp: return "cannot build the jail's root";
    case ChildStep::kRootReadOnly: return "cannot make the jail's root read-only";
    case ChildStep::kPivotRoot: return "cannot pivot into the jail's root";
    case ChildStep::kHostname: return "cannot set the jail's hostname";
    case ChildStep::kDropBounding: return "cannot drop the capability bounding set";
    case ChildStep::kGroups: return "cannot set the VMM's groups";
    case ChildStep::kGid: return "cannot switch to the VMM's gid";
    case ChildStep::kUid: return "cannot switch to the VMM's uid";
    case ChildStep::kCapabilities: return "the VMM kept capabilities after the uid switch";
    case ChildStep::kNoNewPrivs: return "cannot set no_new_privs";
    case ChildStep::kParentGone: return "the supervisor ended while the VMM started";
    case ChildStep::kDescriptors: return "cannot set up the VMM's descriptors";
    case ChildStep::kLimits: return "cannot set the VMM's resource limits";
    case ChildStep::kExec: return "cannot execute the VMM";
  }
  return "unknown step";
}

std::optional<Step> privileged_step(ChildStep step) {
  switch (step) {
    case ChildStep::kPrivateMounts:
    case ChildStep::kRootTmpfs:
    case ChildStep::kRootOp:
    case ChildStep::kRootReadOnly:
    case ChildStep::kPivotRoot:
    case ChildStep::kHostname: return Step::kNamespaces;
    case ChildStep::kGroups:
    case ChildStep::kGid:
    case ChildStep::kUid:
    case ChildStep::kCapabilities: return Step::kOwnUser;
    default: return std::nullopt;
  }
}

struct ChildReport {
  ChildStep step;
  int index;  // the root operation, for kRootOp
  int error;
};

// Everything the child needs, prepared before the clone: the child of a
// multithreaded process may only make system calls.
struct ChildPlan {
  const Options* options;
  std::vector<RootOp> ops;
  std::vector<char*> argv;
  int alive_fd;  // read end of a pipe whose write end only the parent has open
};

[[noreturn]] void child_fail(ChildStep step, int index = -1) {
  const ChildReport report{step, index, errno};
  (void)!::write(kReportFd, &report, sizeof report);
  ::_exit(127);
}

void build_root(const ChildPlan& plan) {
  const Options& options = *plan.options;
  const char* root = options.root.c_str();
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) child_fail(ChildStep::kPrivateMounts);
  if (::mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k,nr_inodes=64") != 0) {
    child_fail(ChildStep::kRootTmpfs);
  }
  for (std::size_t i = 0; i < plan.ops.size(); ++i) {
    const RootOp& op = plan.ops[i];
    const int index = static_cast<int>(i);
    const char* target = op.target.c_str();
    switch (op.kind) {
      case RootOp::kDirectory:
        if (::mkdir(target, 0755) != 0 && errno != EEXIST) child_fail(ChildStep::kRootOp, index);
        continue;
      case RootOp::kSymlink:
        if (::symlink(op.source.c_str(), target) != 0) child_fail(ChildStep::kRootOp, index);
        continue;
      case RootOp::kBindFile:
      case RootOp::kAttachFile: {
        const int fd = ::open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) child_fail(ChildStep::kRootOp, index);
        ::close(fd);
        break;
      }
      case RootOp::kBindDir:
        if (::mkdir(target, 0755) != 0 && errno != EEXIST) child_fail(ChildStep::kRootOp, index);
        break;
    }
    const bool attached =
        op.kind == RootOp::kAttachFile
            ? ::syscall(SYS_move_mount, op.source_fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) == 0
            : ::mount(op.source.c_str(), target, nullptr, MS_BIND, nullptr) == 0;
    if (!attached) child_fail(ChildStep::kRootOp, index);
    const unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (op.read_only ? MS_RDONLY | MS_NODEV : 0);
    if (::mount(nullptr, target, nullptr, flags, nullptr) != 0) child_fail(ChildStep::kRootOp, index);
  }
  if (::mount(nullptr, root, nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    child_fail(ChildStep::kRootReadOnly);
  }
  // pivot_root(".", ".") stacks the old root under the new one; detaching it
  // leaves the VMM no path to the host's tree.
  if (::chdir(root) != 0 || ::syscall(SYS_pivot_root, ".", ".") != 0 || ::umount2(".", MNT_DETACH) != 0 ||
      ::chdir("/") != 0) {
    child_fail(ChildStep::kPivotRoot);
  }
  if (::sethostname(kHostname, std::strlen(kHostname)) != 0) child_fail(ChildStep::kHostname);
}

// Leaves the process without capabilities, now and after execve, whatever
// its uid: an empty bounding set, and SECBIT_NOROOT so that uid 0 (in the
// downgraded modes) gains none at execve. Without CAP_SETPCAP (a non-root
// caller) there is nothing to drop.
void drop_capabilities() {
  if (::prctl(PR_CAPBSET_READ, CAP_SETPCAP) != 1) return;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &header, data) != 0 || (data[0].effective & (1u << CAP_SETPCAP)) == 0) return;
  for (int cap = 0; ::prctl(PR_CAPBSET_READ, cap) >= 0; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap) != 0) child_fail(ChildStep::kDropBounding);
  }
  // Setuid fixup stays on: it is what clears the capabilities at the switch
  // to the run's own uid.
  const int bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                   SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  if (::prctl(PR_SET_SECUREBITS, bits) != 0) child_fail(ChildStep::kDropBounding);
}

// Raw system calls: glibc's wrappers would try to change the credentials of
// every thread of the parent, which the child does not have.
void switch_user(const Options& options) {
  if (::syscall(SYS_setgroups, options.groups.size(), options.groups.data()) != 0) child_fail(ChildStep::kGroups);
  if (::syscall(SYS_setresgid, options.gid, options.gid, options.gid) != 0) child_fail(ChildStep::kGid);
  if (::syscall(SYS_setresuid, options.uid, options.uid, options.uid) != 0) child_fail(ChildStep::kUid);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &header, data) != 0) child_fail(ChildStep::kCapabilities);
  if ((data[0].permitted | data[1].permitted | data[0].effective | data[1].effective) != 0) {
    errno = EPERM;
    child_fail(ChildStep::kCapabilities);
  }
}

// Moves options.fds to 0..n-1 through numbers above them, so no dup2
// clobbers a source still needed, then closes everything else but the
// report descriptor.
void arrange_descriptors(const Options& options) {
  const int count = static_cast<int>(options.fds.size());
  int moved[64];
  if (count > 64) child_fail(ChildStep::kDescriptors);
  for (int i = 0; i < count; ++i) {
    const int source = options.fds[i] >= 0 ? options.fds[i] : ::open("/dev/null", O_RDWR | O_CLOEXEC);
    moved[i] = ::fcntl(source, F_DUPFD_CLOEXEC, kReportFd + 1);
    if (moved[i] < 0) child_fail(ChildStep::kDescriptors);
  }
  for (int i = 0; i < count; ++i) {
    if (::dup2(moved[i], i) != i) child_fail(ChildStep::kDescriptors);
  }
  ::syscall(SYS_close_range, count, kReportFd - 1, 0);
  ::syscall(SYS_close_range, kReportFd + 1, ~0U, 0);
}

void set_limits(const Options& options) {
  const rlimit no_core{0, 0};
  const rlimit open_files{options.open_files, options.open_files};
  const rlimit processes{options.processes, options.processes};
  const rlimit file_size{options.file_size, options.file_size};
  if (::setrlimit(RLIMIT_CORE, &no_core) != 0 || ::setrlimit(RLIMIT_NOFILE, &open_files) != 0 ||
      ::setrlimit(RLIMIT_FSIZE, &file_size) != 0 ||
      (options.own_user && ::setrlimit(RLIMIT_NPROC, &processes) != 0)) {
    child_fail(ChildStep::kLimits);
  }
}

[[noreturn]] void run_child(const ChildPlan& plan) {
  const Options& options = *plan.options;
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(ChildStep::kDeathSignal);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int signal_number = 1; signal_number < NSIG; ++signal_number) ::signal(signal_number, SIG_DFL);

  if (options.namespaces) build_root(plan);
  drop_capabilities();
  if (options.own_user) switch_user(options);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(ChildStep::kNoNewPrivs);
  // The uid switch cleared the parent-death signal. Arm it again, then make
  // sure the parent did not end in between.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(ChildStep::kDeathSignal);
  pollfd alive{plan.alive_fd, POLLIN, 0};
  if (::poll(&alive, 1, 0) != 0) {
    errno = ESRCH;
    child_fail(ChildStep::kParentGone);
  }

  arrange_descriptors(options);
  set_limits(options);
  char* empty_environment[] = {nullptr};
  ::execve(plan.argv[0], plan.argv.data(), empty_environment);
  child_fail(ChildStep::kExec);
}

SpawnError spawn_error(std::string message, std::optional<Step> step = std::nullopt, int error = 0) {
  return SpawnError{Error{std::move(message), error}, step};
}

// Waits for the child to execute (the report descriptor closes) or to report
// a failure. Returns the failure, if any.
std::optional<SpawnError> wait_for_exec(int report_fd, const ChildPlan& plan) {
  pollfd ready{report_fd, POLLIN, 0};
  if (::poll(&ready, 1, kExecTimeoutMs) <= 0) return spawn_error("the VMM did not start within 10 s");
  ChildReport report{};
  const ssize_t count = ::read(report_fd, &report, sizeof report);
  if (count == 0) return std::nullopt;
  if (count != static_cast<ssize_t>(sizeof report)) return spawn_error("the VMM's jail failed without a report");
  std::string message = std::string(describe(report.step));
  if (report.step == ChildStep::kRootOp && report.index >= 0 &&
      static_cast<std::size_t>(report.index) < plan.ops.size()) {
    const RootOp& op = plan.ops[static_cast<std::size_t>(report.index)];
    message += " (" + op.reason + ": " + printable(op.source.empty() ? op.target : op.source) + ")";
  }
  if (report.step == ChildStep::kExec) message += " " + printable(plan.argv[0]);
  message += ": " + std::string(std::strerror(report.error));
  return spawn_error(std::move(message), privileged_step(report.step), report.error);
}

}  // namespace

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::kFull: return "full";
    case Mode::kPartial: return "partial";
    case Mode::kOff: return "off";
  }
  return "unknown";
}

Result<Mode> parse_mode(const std::string& text) {
  if (text == "full") return Mode::kFull;
  if (text == "partial") return Mode::kPartial;
  if (text == "off") return Mode::kOff;
  return fail("invalid jail mode '" + printable(text) + "'; use full, partial or off");
}

const char* step_name(Step step) {
  switch (step) {
    case Step::kNamespaces: return "namespaces";
    case Step::kOwnUser: return "own-user";
  }
  return "unknown";
}

uid_t jail_id_for(pid_t supervisor_pid) { return kFirstJailId + static_cast<uid_t>(supervisor_pid); }

std::string Options::file_path(std::size_t index) const {
  if (namespaces) return "/vmm/" + files.at(index).name;
  // Without a mount namespace the file stays open after the VMM's listed
  // descriptors, in order.
  return "/proc/self/fd/" + std::to_string(fds.size() + index);
}

tl::expected<pid_t, SpawnError> spawn(const Options& options) {
  Options effective = options;
  if (!options.namespaces) {
    for (const File& file : options.files) effective.fds.push_back(file.fd);
  }
  ChildPlan plan{&effective, options.namespaces ? plan_root(effective) : std::vector<RootOp>{}, {}, -1};
  // Detached copies of each file's mount, made here in the caller's mount
  // namespace, are what the child can attach in its own.
  std::vector<UniqueFd> trees;
  for (RootOp& op : plan.ops) {
    if (op.kind != RootOp::kAttachFile) continue;
    trees.emplace_back(static_cast<int>(
        ::syscall(SYS_open_tree, op.source_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)));
    if (!trees.back()) {
      return tl::unexpected(spawn_error("cannot clone the mount of " + op.reason, Step::kNamespaces, errno));
    }
    op.source_fd = trees.back().get();
  }
  for (const std::string& arg : effective.argv) plan.argv.push_back(const_cast<char*>(arg.c_str()));
  plan.argv.push_back(nullptr);

  int report[2];
  int alive[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return tl::unexpected(spawn_error("cannot create a pipe", {}, errno));
  if (::pipe2(alive, O_CLOEXEC) != 0) {
    const int error = errno;
    ::close(report[0]);
    ::close(report[1]);
    return tl::unexpected(spawn_error("cannot create a pipe", {}, error));
  }
  UniqueFd report_read(report[0]);
  UniqueFd report_write(report[1]);
  UniqueFd alive_read(alive[0]);
  UniqueFd alive_write(alive[1]);
  plan.alive_fd = alive_read.get();

  const long flags = SIGCHLD | (options.namespaces ? kNamespaceFlags : 0);
  const long pid = ::syscall(SYS_clone, flags, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) {
    const int error = errno;
    return tl::unexpected(spawn_error("cannot create the VMM's namespaces", Step::kNamespaces, error));
  }
  if (pid == 0) {
    ::close(alive[1]);
    if (::dup3(report[1], kReportFd, O_CLOEXEC) != kReportFd) ::_exit(127);
    run_child(plan);
  }
  report_write.reset();
  alive_read.reset();
  if (auto failed = wait_for_exec(report_read.get(), plan)) {
    ::kill(static_cast<pid_t>(pid), SIGKILL);
    ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
    return tl::unexpected(std::move(*failed));
  }
  return static_cast<pid_t>(pid);
}

}  // namespace zwrm::jail
