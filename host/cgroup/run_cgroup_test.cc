// Tests against the host's real cgroups. They need root and skip without it,
// or when the host lacks a controller zwrm uses. Every group they create is named
// test-<case>-<pid> and removed at the end of its test.
#include "host/cgroup/run_cgroup.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "host/cgroup/control_files.h"
#include "host/sys/files.h"

namespace zwrm::cgroup {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kMiB = 1024 * 1024;

// A forked child that runs `body` only after go(), so that the test can move
// it into a cgroup first. The body writes report lines to the fd it gets and
// its return value becomes the exit status.
class Child {
 public:
  explicit Child(std::function<int(int report_fd)> body) {
    int go[2];
    int report[2];
    ZWRM_CHECK(::pipe2(go, O_CLOEXEC) == 0 && ::pipe2(report, O_CLOEXEC) == 0);
    pid_ = ::fork();
    ZWRM_CHECK(pid_ >= 0);
    if (pid_ == 0) {
      ::close(go[1]);
      ::close(report[0]);
      char byte = 0;
      if (::read(go[0], &byte, 1) != 1) ::_exit(126);
      ::_exit(body(report[1]));
    }
    ::close(go[0]);
    ::close(report[1]);
    go_fd_ = go[1];
    report_fd_ = report[0];
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
    if (go_fd_ >= 0) ::close(go_fd_);
    ::close(report_fd_);
  }

  pid_t pid() const { return pid_; }

  void go() {
    ZWRM_CHECK(::write(go_fd_, "g", 1) == 1);
    ::close(go_fd_);
    go_fd_ = -1;
  }

  // Returns the next report line, or "" when none comes within `timeout`.
  std::string read_report(std::chrono::milliseconds timeout = 10s) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd ready{report_fd_, POLLIN, 0};
      if (::poll(&ready, 1, 50) <= 0) continue;
      char c = 0;
      if (::read(report_fd_, &c, 1) != 1) break;
      if (c == '\n') return line;
      line.push_back(c);
    }
    return line;
  }

  // Returns the wait status.
  int wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int go_fd_ = -1;
  int report_fd_ = -1;
};

void report(int fd, const std::string& line) {
  const std::string text = line + "\n";
  ZWRM_CHECK(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
}

void burn_cpu(std::chrono::milliseconds amount) {
  timespec start{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &start);
  for (;;) {
    timespec now{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    const auto used = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (used >= amount.count()) return;
  }
}

// Allocates `bytes` and writes to every page, so the memory is charged.
char* touch_memory(std::size_t bytes) {
  char* memory = static_cast<char*>(std::malloc(bytes));
  ZWRM_CHECK(memory != nullptr);
  for (std::size_t offset = 0; offset < bytes; offset += 4096) memory[offset] = 1;
  return memory;
}

class RunCgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "these tests create cgroups at the top of the hierarchy and need root";
    auto layout = detect_layout();
    if (!layout) GTEST_SKIP() << "this host lacks a cgroup controller zwrm uses: " << layout.error().message;
    layout_ = *layout;
    if (layout_.version == Version::kV2) {
      auto offered = read_control(layout_.hierarchies[0].mount_point, "cgroup.controllers");
      for (const char* controller : {"cpu", "memory", "pids"}) {
        if (!offered || offered->find(controller) == std::string::npos) {
          GTEST_SKIP() << "this host's cgroup v2 hierarchy does not offer the " << controller << " controller";
        }
      }
    }
  }

  // Kills what a failed test left in its groups, so that none outlives it.
  void TearDown() override {
    for (std::size_t i = 0; i < created_.size(); ++i) {
      kill_processes(created_names_[i]);
      auto removed = created_[i].remove(::getpid());
      EXPECT_TRUE(removed) << removed.error().message;
    }
  }

  // Creates a run cgroup named after the test, removed in TearDown().
  RunCgroup& create(const std::string& name, const Limits& limits) {
    auto cgroup = RunCgroup::create(run_id(name), limits);
    ZWRM_CHECK(cgroup.has_value());
    created_.push_back(std::move(*cgroup));
    created_names_.push_back(name);
    return created_.back();
  }

  // Sends SIGKILL to every process in the run's group and reaps those that
  // are this process's children.
  void kill_processes(const std::string& name) const {
    auto pids = read_procs(directory(name, "pids"));
    if (!pids) return;
    for (pid_t pid : *pids) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, WNOHANG);
    }
  }

  static std::string run_id(const std::string& name) { return "test-" + name + "-" + std::to_string(::getpid()); }

  // Returns the run's directory in the hierarchy that has `controller`.
  std::string directory(const std::string& name, const std::string& controller) const {
    for (const Hierarchy& hierarchy : layout_.hierarchies) {
      for (const std::string& candidate : hierarchy.controllers) {
        if (candidate == controller) return *creation_parent(hierarchy, 0) + "/zwrm/" + run_id(name);
      }
    }
    ZWRM_CHECK(false);
    return "";
  }

  std::string control(const std::string& name, const std::string& controller, const std::string& file) const {
    auto content = read_control(directory(name, controller), file);
    return content ? *content : "<" + content.error().message + ">";
  }

  bool any_directory_exists(const std::string& name) const {
    for (const char* controller : {"cpu", "memory", "pids"}) {
      if (sys::path_exists(directory(name, controller))) return true;
    }
    return false;
  }

  Layout layout_;
  std::vector<RunCgroup> created_;
  std::vector<std::string> created_names_;
};

TEST_F(RunCgroupTest, LimitFilesHoldValues) {
  RunCgroup& cgroup = create("limits", {.cpus = 2, .memory_bytes = 64 * kMiB, .pids = 16});
  EXPECT_EQ(cgroup.version(), layout_.version);
  if (layout_.version == Version::kV2) {
    EXPECT_EQ(control("limits", "cpu", "cpu.max"), "200000 100000\n");
    EXPECT_EQ(control("limits", "memory", "memory.max"), "67108864\n");
    EXPECT_EQ(control("limits", "memory", "memory.swap.max"), "0\n");
  } else {
    EXPECT_EQ(control("limits", "cpu", "cpu.cfs_period_us"), "100000\n");
    EXPECT_EQ(control("limits", "cpu", "cpu.cfs_quota_us"), "200000\n");
    EXPECT_EQ(control("limits", "memory", "memory.limit_in_bytes"), "67108864\n");
    if (sys::path_exists(directory("limits", "memory") + "/memory.memsw.limit_in_bytes")) {
      EXPECT_EQ(control("limits", "memory", "memory.memsw.limit_in_bytes"), "67108864\n");
    } else {
      EXPECT_EQ(control("limits", "memory", "memory.swappiness"), "0\n");
    }
  }
  EXPECT_EQ(control("limits", "pids", "pids.max"), "16\n");
  auto usage = cgroup.usage();
  ASSERT_TRUE(usage) << usage.error().message;
  EXPECT_EQ(usage->memory_limit_bytes, 64 * kMiB);
}

TEST_F(RunCgroupTest, ZeroMeansNoLimit) {
  RunCgroup& cgroup = create("unlimited", {.cpus = 1});
  EXPECT_EQ(control("unlimited", "pids", "pids.max"), "max\n");
  auto usage = cgroup.usage();
  ASSERT_TRUE(usage) << usage.error().message;
  EXPECT_EQ(usage->memory_limit_bytes, 0u);
}

TEST_F(RunCgroupTest, UsageCountsCpuAndMemory) {
  RunCgroup& cgroup = create("usage", {.cpus = 1, .memory_bytes = 256 * kMiB, .pids = 16});
  Child child([](int report_fd) {
    burn_cpu(300ms);
    touch_memory(32 * kMiB);
    report(report_fd, "ready");
    ::pause();
    return 0;
  });
  ASSERT_TRUE(cgroup.add_process(child.pid()));
  child.go();
  ASSERT_EQ(child.read_report(), "ready");

  auto usage = cgroup.usage();
  ASSERT_TRUE(usage) << usage.error().message;
  EXPECT_GE(usage->cpu, 300ms);
  EXPECT_GE(usage->memory_bytes, 32 * kMiB);
  EXPECT_LT(usage->memory_bytes, 256 * kMiB);
  EXPECT_EQ(usage->pids, 1u);
  EXPECT_EQ(usage->oom_kills, 0u);
}

TEST_F(RunCgroupTest, CpuQuotaCapsTwoBusyChildren) {
  RunCgroup& cgroup = create("quota", {.cpus = 1, .pids = 16});
  // Each child spins for 1 s of wall time and reports the CPU time it got.
  auto spin_one_second = [](int report_fd) {
    const auto end = std::chrono::steady_clock::now() + 1s;
    while (std::chrono::steady_clock::now() < end) {
    }
    timespec used{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
    report(report_fd, std::to_string(used.tv_sec * 1000 + used.tv_nsec / 1000000));
    return 0;
  };
  Child first(spin_one_second);
  Child second(spin_one_second);
  ASSERT_TRUE(cgroup.add_process(first.pid()));
  ASSERT_TRUE(cgroup.add_process(second.pid()));
  first.go();
  second.go();
  const std::string first_ms = first.read_report();
  const std::string second_ms = second.read_report();
  ASSERT_FALSE(first_ms.empty());
  ASSERT_FALSE(second_ms.empty());
  const auto children_cpu = std::chrono::milliseconds(std::stoll(first_ms) + std::stoll(second_ms));

  // On two free cores the pair would get 2 s of CPU; a quota of one CPU
  // allows about 1 s, plus up to one period of overrun.
  auto usage = cgroup.usage();
  ASSERT_TRUE(usage) << usage.error().message;
  EXPECT_LE(children_cpu, 1200ms);
  EXPECT_LE(usage->cpu, 1300ms);
  EXPECT_GE(usage->cpu, children_cpu - 20ms) << "the group's CPU time must include its children's";
}

TEST_F(RunCgroupTest, PidsLimitStopsForkLoop) {
  RunCgroup& cgroup = create("pids", {.cpus = 1, .memory_bytes = 256 * kMiB, .pids = 8});
  Child child([](int report_fd) {
    int forked = 0;
    for (;;) {
      const pid_t pid = ::fork();
      if (pid < 0) {
        report(report_fd, std::to_string(forked) + " " + std::strerror(errno));
        break;
      }
      if (pid == 0) {
        // The test kills these through the group; this only covers a test
        // process that dies first.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::pause();
        ::_exit(0);
      }
      ++forked;
    }
    ::pause();
    return 0;
  });
  ASSERT_TRUE(cgroup.add_process(child.pid()));
  child.go();

  EXPECT_EQ(child.read_report(), "7 " + std::string(std::strerror(EAGAIN)));
  auto usage = cgroup.usage();
  ASSERT_TRUE(usage) << usage.error().message;
  EXPECT_EQ(usage->pids, 8u);
  kill_processes("pids");
}

TEST_F(RunCgroupTest, MemoryCeilingKillsOnlyTheChild) {
  RunCgroup& cgroup = create("oom", {.cpus = 1, .memory_bytes = 64 * kMiB, .pids = 16});
  Child child([](int report_fd) {
    touch_memory(256 * kMiB);
    report(report_fd, "survived");
    return 0;
  });
  ASSERT_TRUE(cgroup.add_process(child.pid()));
  child.go();

  const int status = child.wait();
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited with status " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  auto usage = cgroup.usage();
  ASSERT_TRUE(usage) << usage.error().message;
  EXPECT_GE(usage->oom_kills, 1u);

  // The test process is outside the run's cgroup, so the ceiling does not
  // apply to it.
  char* memory = touch_memory(256 * kMiB);
  std::free(memory);
}

TEST_F(RunCgroupTest, RemoveLeavesNoDirectory) {
  auto cgroup = RunCgroup::create(run_id("remove"), {.cpus = 1, .pids = 16});
  ASSERT_TRUE(cgroup) << cgroup.error().message;
  Child child([](int) { return 0; });
  ASSERT_TRUE(cgroup->add_process(child.pid()));
  child.go();
  EXPECT_EQ(child.wait(), 0);
  ASSERT_TRUE(any_directory_exists("remove"));

  auto removed = cgroup->remove(::getpid());
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_FALSE(any_directory_exists("remove"));
  EXPECT_TRUE(cgroup->remove(::getpid())) << "a second remove() does nothing";
}

TEST_F(RunCgroupTest, RemoveWaitsForRunningProcess) {
  auto cgroup = RunCgroup::create(run_id("busy"), {.cpus = 1, .pids = 16});
  ASSERT_TRUE(cgroup) << cgroup.error().message;
  Child child([](int) {
    ::pause();
    return 0;
  });
  ASSERT_TRUE(cgroup->add_process(child.pid()));

  auto busy = cgroup->remove(::getpid());
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().errno_value, EBUSY);
  EXPECT_NE(busy.error().message.find(std::to_string(child.pid())), std::string::npos) << busy.error().message;
  EXPECT_TRUE(any_directory_exists("busy"));

  ::kill(child.pid(), SIGKILL);
  child.wait();
  auto removed = cgroup->remove(::getpid());
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_FALSE(any_directory_exists("busy"));
}

// Plays the supervisor in a child: create, join, fork a stand-in for the
// VMM, end it, leave and remove. The exit status names the step that failed.
TEST_F(RunCgroupTest, SupervisorFlowInChild) {
  const std::string id = run_id("supervisor");
  Child supervisor([id](int report_fd) {
    auto before = sys::read_file("/proc/self/cgroup");
    auto cgroup = RunCgroup::create(id, {.cpus = 1, .memory_bytes = 256 * kMiB, .pids = kRunPidsMax});
    if (!cgroup) {
      report(report_fd, cgroup.error().message);
      return 1;
    }
    if (!cgroup->add_process(::getpid())) return 2;
    const pid_t vmm = ::fork();
    if (vmm == 0) {
      ::pause();
      ::_exit(0);
    }
    auto usage = cgroup->usage();
    if (!usage || usage->pids != 2) return 3;
    ::kill(vmm, SIGKILL);
    ::waitpid(vmm, nullptr, 0);
    auto removed = cgroup->remove(::getpid());
    if (!removed) {
      report(report_fd, removed.error().message);
      return 4;
    }
    auto after = sys::read_file("/proc/self/cgroup");
    if (!before || !after || *before != *after) return 5;
    report(report_fd, "ok");
    return 0;
  });
  supervisor.go();

  EXPECT_EQ(supervisor.read_report(), "ok");
  const int status = supervisor.wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(any_directory_exists("supervisor"));
}

TEST_F(RunCgroupTest, RemoveStaleRemovesOrphanOnly) {
  // A run whose supervisor was killed: its group remains, empty.
  auto orphan = RunCgroup::create(run_id("orphan"), {.cpus = 1, .pids = 16});
  ASSERT_TRUE(orphan) << orphan.error().message;
  Child exited([](int) { return 0; });
  ASSERT_TRUE(orphan->add_process(exited.pid()));
  exited.go();
  exited.wait();

  // A group not in the live list that still has a process stays.
  RunCgroup& occupied = create("occupied", {.cpus = 1, .pids = 16});
  Child running([](int) {
    ::pause();
    return 0;
  });
  ASSERT_TRUE(occupied.add_process(running.pid()));
  create("live", {.cpus = 1, .pids = 16});

  auto removed = remove_stale({run_id("live")});
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_FALSE(any_directory_exists("orphan"));
  EXPECT_TRUE(any_directory_exists("occupied"));
  EXPECT_TRUE(any_directory_exists("live"));

  ::kill(running.pid(), SIGKILL);
  running.wait();
}

TEST_F(RunCgroupTest, ReadUsageFromOutsideMatches) {
  RunCgroup& cgroup = create("outside", {.cpus = 1, .memory_bytes = 128 * kMiB, .pids = 16});
  Child child([](int report_fd) {
    touch_memory(16 * kMiB);
    report(report_fd, "ready");
    ::pause();
    return 0;
  });
  ASSERT_TRUE(cgroup.add_process(child.pid()));
  child.go();
  ASSERT_EQ(child.read_report(), "ready");

  auto inside = cgroup.usage();
  auto outside = read_usage(run_id("outside"));
  ASSERT_TRUE(inside) << inside.error().message;
  ASSERT_TRUE(outside) << outside.error().message;
  EXPECT_EQ(outside->pids, inside->pids);
  EXPECT_EQ(outside->memory_limit_bytes, 128 * kMiB);
  EXPECT_GE(outside->memory_bytes, 16 * kMiB);
  EXPECT_NEAR(static_cast<double>(outside->memory_bytes), static_cast<double>(inside->memory_bytes), 1.0 * kMiB);
  EXPECT_GE(outside->cpu, inside->cpu);
}

TEST_F(RunCgroupTest, ReadUsageOfUnknownRunFails) {
  auto usage = read_usage("no-such-run");
  ASSERT_FALSE(usage);
  EXPECT_NE(usage.error().message.find("run no-such-run has no cgroup"), std::string::npos)
      << usage.error().message;
}

TEST_F(RunCgroupTest, CreateRejectsUnsafeRunIds) {
  for (const std::string& id : std::vector<std::string>{"", ".", "..", "../escape", "a/b", std::string(65, 'a')}) {
    auto cgroup = RunCgroup::create(id, {.cpus = 1});
    ASSERT_FALSE(cgroup) << "run id \"" << id << "\"";
    EXPECT_NE(cgroup.error().message.find("invalid run id"), std::string::npos);
  }
  EXPECT_FALSE(RunCgroup::create(run_id("zero-cpus"), {.cpus = 0}));
  EXPECT_FALSE(any_directory_exists("zero-cpus"));
}

TEST_F(RunCgroupTest, CreateFailsWhenRunExists) {
  create("twice", {.cpus = 1, .pids = 16});
  auto second = RunCgroup::create(run_id("twice"), {.cpus = 1, .pids = 16});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().errno_value, EEXIST);
  EXPECT_NE(second.error().message.find("stale group"), std::string::npos) << second.error().message;
  EXPECT_TRUE(any_directory_exists("twice")) << "the failed create must not remove the existing group";
}

TEST_F(RunCgroupTest, CreateAsUserWithoutDelegationFails) {
  const std::string id = run_id("user");
  Child user([id](int report_fd) {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) return 1;
    auto cgroup = RunCgroup::create(id, {.cpus = 1});
    report(report_fd, cgroup ? "created" : cgroup.error().message);
    return 0;
  });
  user.go();

  const std::string message = user.read_report();
  EXPECT_NE(message.find("is not delegated to this user"), std::string::npos) << message;
  EXPECT_NE(message.find("run zwrm as root"), std::string::npos) << message;
  EXPECT_FALSE(any_directory_exists("user"));
}

TEST_F(RunCgroupTest, DescribeNamesVersionAndDirectories) {
  RunCgroup& cgroup = create("describe", {.cpus = 1});
  const std::string line = cgroup.describe();
  if (layout_.version == Version::kV1) {
    EXPECT_EQ(line.rfind("cgroup v1 (cpu, cpuacct, memory, pids) at ", 0), 0u) << line;
  } else {
    EXPECT_EQ(line.rfind("cgroup v2 (cpu, memory, pids) at ", 0), 0u) << line;
  }
  EXPECT_NE(line.find("/zwrm/" + run_id("describe")), std::string::npos) << line;
}

// The cgroup v2 steps of create() on an ordinary directory tree that mimics
// a v2 hierarchy, for hosts without v2 controllers. The tree has no cpu.max
// in the new group, so create() stops at the first limit and must undo.
class FakeV2Hierarchy : public ::testing::Test {
 protected:
  void SetUp() override {
    char path[] = "/tmp/zwrm-fake-v2.XXXXXX";
    ASSERT_NE(::mkdtemp(path), nullptr);
    root_ = path;
    ASSERT_TRUE(sys::make_directories(root_ + "/zwrm"));
    ASSERT_TRUE(sys::write_file_atomic(root_ + "/zwrm/cgroup.subtree_control", ""));
    layout_.version = Version::kV2;
    layout_.hierarchies.push_back({{"cpu", "memory", "pids"}, root_, root_});
  }
  void TearDown() override { ASSERT_TRUE(sys::remove_tree(root_)); }

  std::string content(const std::string& path) {
    auto text = sys::read_file(root_ + "/" + path);
    return text ? *text : "<missing>";
  }

  std::string root_;
  Layout layout_;
};

TEST_F(FakeV2Hierarchy, CreateEnablesControllersOnTheWay) {
  if (::geteuid() != 0) GTEST_SKIP() << "the fake hierarchy stands for the top of the tree, which needs root";
  ASSERT_TRUE(sys::write_file_atomic(root_ + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma\n"));
  ASSERT_TRUE(sys::write_file_atomic(root_ + "/cgroup.subtree_control", "memory\n"));

  auto cgroup = RunCgroup::create("fake-run", {.cpus = 1}, layout_);
  ASSERT_FALSE(cgroup);
  EXPECT_NE(cgroup.error().message.find(root_ + "/zwrm/fake-run/cpu.max"), std::string::npos)
      << cgroup.error().message;
  EXPECT_EQ(content("cgroup.subtree_control"), "+cpu +pids") << "only the missing controllers are enabled";
  EXPECT_EQ(content("zwrm/cgroup.subtree_control"), "+cpu +memory +pids");
  EXPECT_FALSE(sys::path_exists(root_ + "/zwrm/fake-run")) << "a failed create leaves nothing behind";
}

TEST_F(FakeV2Hierarchy, CreateNamesMissingController) {
  if (::geteuid() != 0) GTEST_SKIP() << "the fake hierarchy stands for the top of the tree, which needs root";
  ASSERT_TRUE(sys::write_file_atomic(root_ + "/cgroup.controllers", "cpu io\n"));
  ASSERT_TRUE(sys::write_file_atomic(root_ + "/cgroup.subtree_control", ""));

  auto cgroup = RunCgroup::create("fake-run", {.cpus = 1}, layout_);
  ASSERT_FALSE(cgroup);
  EXPECT_NE(cgroup.error().message.find("does not offer the memory, pids controller"), std::string::npos)
      << cgroup.error().message;
  EXPECT_NE(cgroup.error().message.find("cgroup.controllers lists \"cpu io\""), std::string::npos);
  EXPECT_EQ(content("cgroup.subtree_control"), "") << "nothing is enabled when a controller is missing";
}

}  // namespace
}  // namespace zwrm::cgroup
