// Attacks on a run from the host side: two runs racing for one volume, the
// supervisor or the VMM killed mid-run, a client that stops reading, and a
// symbolic or hard link planted (or swapped in) at a volume's path. Each case
// asserts that the volume stays intact and private to one run. No VMM may
// outlive its run, and zwrm must report what happened.
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"
#include "tests/integration/test_network.h"

namespace zwrm::integration {
namespace {

namespace fs = std::filesystem;

// A run's VMM and supervisor end within the guest's shutdown grace (5 s)
// plus margin for a loaded host.
constexpr Milliseconds kCleanupTimeout = 15s;

std::string read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream content;
  content << file.rdbuf();
  return content.str();
}

std::string file_digest(const std::string& path) { return sha256_hex(read_file(path)); }

// Returns the stderr lines of a zwrm command after its progress lines.
std::vector<std::string> error_lines(const Outcome& outcome) {
  return split_lines(strip_leading_progress(outcome.err));
}

// Runs e2fsck without changing anything. Debian keeps it in /usr/sbin,
// which a test's PATH may lack.
CommandResult check_file_system(const std::string& image) {
  const std::string e2fsck = fs::exists("/usr/sbin/e2fsck") ? "/usr/sbin/e2fsck" : "e2fsck";
  return run_command({e2fsck, "-fn", image});
}

// Creates a 64 MiB ext4 image at path, a volume a run could mount.
void make_ext4_image(const std::string& path) {
  std::ofstream(path).close();
  fs::resize_file(path, 64 << 20);
  const std::string mkfs = fs::exists("/usr/sbin/mkfs.ext4") ? "/usr/sbin/mkfs.ext4" : "mkfs.ext4";
  const CommandResult formatted = run_command({mkfs, "-q", "-F", "-L", "victim", path});
  ASSERT_EQ(formatted.exit_code, 0) << formatted.out << formatted.err;
}

// Returns whether pid is a process that has not exited. An exited process
// whose parent has not reaped it yet (state Z in /proc/PID/stat) has.
bool process_running(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const std::size_t name_end = stat.rfind(") ");
  return name_end != std::string::npos && name_end + 2 < stat.size() && stat[name_end + 2] != 'Z' &&
         stat[name_end + 2] != 'X';
}

// Returns the ids of all runs `zwrm ps -a` lists.
std::set<std::string> run_ids(TestHome& home) {
  std::set<std::string> ids;
  for (const nlohmann::json& run : home.runs(/*all=*/true)) ids.insert(run["id"].get<std::string>());
  return ids;
}

// Returns the run `zwrm ps -a --json` lists with id, or an empty object.
nlohmann::json find_run(TestHome& home, const std::string& id) {
  for (nlohmann::json& run : home.runs(/*all=*/true)) {
    if (run["id"] == id) return run;
  }
  return nlohmann::json::object();
}

// Returns the lines of the test process's mount table that name path.
std::vector<std::string> mounts_naming(const std::string& path) {
  std::vector<std::string> found;
  for (const std::string& line : split_lines(read_file("/proc/self/mountinfo"))) {
    if (line.find(path) != std::string::npos) found.push_back(line);
  }
  return found;
}

// Returns the cgroup directories named after run id in any hierarchy.
std::vector<std::string> cgroups_named(const std::string& id) {
  std::vector<std::string> found;
  std::error_code error;
  fs::recursive_directory_iterator walk("/sys/fs/cgroup", fs::directory_options::skip_permission_denied, error);
  for (; !error && walk != fs::recursive_directory_iterator(); walk.increment(error)) {
    if (walk.depth() > 4) walk.disable_recursion_pending();
    if (walk->is_directory(error) && walk->path().filename() == id) found.push_back(walk->path().string());
  }
  return found;
}

// Two runs of one project started at the same instant, over several
// rounds (the first one also races to create the volume): exactly one gets
// the volume, the other is rejected in one line that names the holder, and
// the volume's file system is clean afterwards. The holder waits for a line
// on stdin, so it keeps the volume until the other run has ended.
TEST(HostAttack, SimultaneousRunsGetVolumeOnce) {
  TestHome home;
  std::set<std::string> known;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::vector<std::string> command = {
        "sh", "-c", "echo round" + std::to_string(round) + " >> /workspace/rounds; sync; echo ready; read go"};
    auto first = home.start(run_args("shared", command), /*open_stdin=*/true);
    auto second = home.start(run_args("shared", command), /*open_stdin=*/true);
    std::optional<Outcome> first_end;
    std::optional<Outcome> second_end;
    ASSERT_TRUE(wait_until(
        [&] {
          if (!first_end) first_end = first->wait(0ms);
          if (!second_end) second_end = second->wait(0ms);
          return first_end || second_end;
        },
        120s))
        << "neither run ended\n" << first->err() << second->err();
    ASSERT_FALSE(first_end && second_end) << "both runs ended\n" << *first_end << "\n" << *second_end;
    const Outcome rejected = first_end ? *first_end : *second_end;
    Background& holder = first_end ? *second : *first;
    ASSERT_TRUE(holder.wait_for_output("ready\n", 120s)) << holder.err();
    holder.write_stdin("go\n");
    holder.close_stdin();
    const std::optional<Outcome> holder_end = holder.wait(60s);
    ASSERT_TRUE(holder_end.has_value());
    EXPECT_EQ(holder_end->exit_code, 0) << *holder_end;

    const std::set<std::string> ids = run_ids(home);
    std::vector<std::string> added;
    for (const std::string& id : ids) {
      if (!known.contains(id)) added.push_back(id);
    }
    ASSERT_EQ(added.size(), 1u) << "the rejected run was recorded as a run";
    known = ids;

    EXPECT_EQ(rejected.exit_code, 125) << rejected;
    const std::vector<std::string> lines = error_lines(rejected);
    ASSERT_EQ(lines.size(), 1u) << rejected;
    EXPECT_TRUE(lines[0].starts_with("zwrm: error: ")) << rejected;
    EXPECT_NE(lines[0].find("in use by run " + added[0] + ";"), std::string::npos) << rejected;
  }
  EXPECT_TRUE(home.vmm_pids().empty());
  const CommandResult checked = check_file_system(home.volume_path("shared"));
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
}

// SIGKILL to the supervisor of a live run: the VMM dies with it and the
// client reports it in one line. The next `zwrm ps` records the run as ended
// with cause supervisor-lost and removes its run directory. The volume keeps
// what the guest synced and checks clean after the next run.
TEST(HostAttack, KilledSupervisorTakesVmmAlong) {
  TestHome home;
  auto client = home.start(
      run_args("orphaned", {"sh", "-c", "echo synced > /workspace/d.txt; sync; echo ready; exec sleep 1000"}));
  ASSERT_TRUE(client->wait_for_output("ready\n", 120s)) << client->err();
  const std::vector<nlohmann::json> live = home.runs(/*all=*/false);
  ASSERT_EQ(live.size(), 1u);
  const std::string id = live[0]["id"].get<std::string>();
  const pid_t supervisor = live[0]["supervisor_pid"].get<pid_t>();
  ASSERT_GT(supervisor, 1);
  ASSERT_EQ(home.vmm_pids().size(), 1u);

  ASSERT_EQ(::kill(supervisor, SIGKILL), 0) << std::strerror(errno);
  EXPECT_TRUE(wait_until([&] { return home.vmm_pids().empty(); }, 5s)) << "the VMM outlived its supervisor";
  const std::optional<Outcome> end = client->wait(10s);
  ASSERT_TRUE(end.has_value()) << "zwrm run kept waiting for a dead supervisor";
  EXPECT_EQ(end->exit_code, 125) << *end;
  const std::vector<std::string> lines = error_lines(*end);
  ASSERT_EQ(lines.size(), 1u) << *end;
  EXPECT_TRUE(lines[0].starts_with("zwrm: error: the supervisor exited unexpectedly")) << *end;

  const nlohmann::json ended = find_run(home, id);
  EXPECT_EQ(ended["state"], "ended") << ended.dump();
  EXPECT_EQ(ended["stop_cause"], "supervisor-lost") << ended.dump();
  EXPECT_TRUE(home.run_directories().empty());
  const std::vector<nlohmann::json> run_ends = home.events("run.end");
  ASSERT_EQ(run_ends.size(), 1u);
  EXPECT_EQ(run_ends[0]["cause"], "supervisor-lost");

  const Outcome next = home.zwrm(run_args("orphaned", {"sh", "-c", "cat /workspace/d.txt && echo more >> /workspace/d.txt"}));
  EXPECT_EQ(next.exit_code, 0) << next;
  EXPECT_EQ(next.out, "synced\n") << next;
  const CommandResult checked = check_file_system(home.volume_path("orphaned"));
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
}

// A client that is stopped (SIGSTOP) reads nothing while the guest ignores
// SIGTERM and writes output without end. The run still ends at its
// deadline, its VMM within the shutdown grace after it, and the client
// reports the deadline once it resumes.
TEST(HostAttack, DeadlineHoldsWhileClientStopped) {
  TestHome home;
  const auto started = Clock::now();
  auto client = home.start(
      run_args("frozen", {"sh", "-c", "trap '' TERM; echo ready; sleep 2; exec yes"}, {"--timeout", "10s"}));
  ASSERT_TRUE(client->wait_for_output("ready\n", 120s)) << client->err();
  client->send_signal(SIGSTOP);
  const std::vector<nlohmann::json> live = home.runs(/*all=*/false);
  ASSERT_EQ(live.size(), 1u);
  const std::string id = live[0]["id"].get<std::string>();
  const pid_t supervisor = live[0]["supervisor_pid"].get<pid_t>();

  // The deadline counts from the start; the VMM gets 5 s to shut down.
  EXPECT_TRUE(wait_until([&] { return home.vmm_pids().empty(); }, 30s));
  const auto vmm_gone = std::chrono::duration_cast<Milliseconds>(Clock::now() - started);
  EXPECT_LT(vmm_gone, 10s + 5s + 5s) << "the VMM outlived the deadline by more than the shutdown grace";
  EXPECT_TRUE(wait_until([&] { return !process_running(supervisor); }, kCleanupTimeout));
  const nlohmann::json ended = find_run(home, id);
  EXPECT_EQ(ended["stop_cause"], "deadline") << ended.dump();
  EXPECT_EQ(ended["exit_code"], 124) << ended.dump();

  // The supervisor gives up sending the run's end to a client that reads
  // nothing for 5 s, so the resumed client reads the end from the database.
  client->send_signal(SIGCONT);
  const std::optional<Outcome> end = client->wait(30s);
  ASSERT_TRUE(end.has_value()) << "the resumed client did not exit";
  EXPECT_EQ(end->exit_code, 124) << *end;
  EXPECT_NE(end->err.find("deadline"), std::string::npos) << *end;
}

// A detached run has no client to end it: the host's deadline does, with
// the guest ignoring SIGTERM and writing output without end.
TEST(HostAttack, DetachedRunEndsAtDeadline) {
  TestHome home;
  const auto started = Clock::now();
  const Outcome detached = home.zwrm(
      run_args("unseen", {"sh", "-c", "trap '' TERM; exec yes"}, {"--detach", "--timeout", "8s"}));
  ASSERT_EQ(detached.exit_code, 0) << detached;
  const std::string id = detached.out.substr(0, detached.out.find('\n'));

  EXPECT_TRUE(wait_until([&] { return home.vmm_pids().empty(); }, 30s));
  EXPECT_LT(std::chrono::duration_cast<Milliseconds>(Clock::now() - started), 8s + 5s + 5s)
      << "the VMM outlived the deadline by more than the shutdown grace";
  ASSERT_TRUE(wait_until([&] { return find_run(home, id)["state"] == "ended"; }, kCleanupTimeout));
  const nlohmann::json ended = find_run(home, id);
  EXPECT_EQ(ended["stop_cause"], "deadline") << ended.dump();
  EXPECT_EQ(ended["exit_code"], 124) << ended.dump();
  // The output log keeps its cap however much the guest writes.
  std::error_code error;
  const auto size = fs::file_size(home.home() + "/logs/" + id + "/output.log", error);
  EXPECT_FALSE(error) << error.message();
  EXPECT_LE(size, (64u << 20) + 256u);
}

// The supervisor of a detached run killed: its VMM goes with it.
TEST(HostAttack, KilledSupervisorOfDetachedRun) {
  TestHome home;
  const Outcome detached = home.zwrm(run_args("unseen", {"sleep", "1000"}, {"--detach", "--timeout", "10m"}));
  ASSERT_EQ(detached.exit_code, 0) << detached;
  const std::string id = detached.out.substr(0, detached.out.find('\n'));
  const nlohmann::json live = find_run(home, id);
  const pid_t supervisor = live["supervisor_pid"].get<pid_t>();
  ASSERT_GT(supervisor, 1);
  ASSERT_EQ(home.vmm_pids().size(), 1u);

  ASSERT_EQ(::kill(supervisor, SIGKILL), 0) << std::strerror(errno);
  EXPECT_TRUE(wait_until([&] { return home.vmm_pids().empty(); }, 5s)) << "the VMM outlived its supervisor";
  EXPECT_TRUE(wait_until([&] { return find_run(home, id)["state"] == "ended"; }, kCleanupTimeout));
  EXPECT_EQ(find_run(home, id)["stop_cause"], "supervisor-lost");
}

// SIGKILL to the VMM: the run ends with 125 and one line that names the run
// and the signal, and `zwrm ps` and the audit log record the cause and exit
// code. No run directory, cgroup, host mount or supervisor is left behind,
// and the volume works in the next run and checks clean.
TEST(HostAttack, KilledVmmLeavesVolumeUsable) {
  TestHome home;
  auto client = home.start(
      run_args("crashed", {"sh", "-c", "echo synced > /workspace/d.txt; sync; echo ready; exec sleep 1000"}));
  ASSERT_TRUE(client->wait_for_output("ready\n", 120s)) << client->err();
  const std::vector<nlohmann::json> live = home.runs(/*all=*/false);
  ASSERT_EQ(live.size(), 1u);
  const std::string id = live[0]["id"].get<std::string>();
  const pid_t supervisor = live[0]["supervisor_pid"].get<pid_t>();
  const std::vector<pid_t> vmms = home.vmm_pids();
  ASSERT_EQ(vmms.size(), 1u);

  ASSERT_EQ(::kill(vmms[0], SIGKILL), 0) << std::strerror(errno);
  const std::optional<Outcome> end = client->wait(30s);
  ASSERT_TRUE(end.has_value()) << "zwrm run did not exit after its VMM was killed";
  EXPECT_EQ(end->exit_code, 125) << *end;
  const std::vector<std::string> lines = error_lines(*end);
  ASSERT_EQ(lines.size(), 1u) << *end;
  EXPECT_EQ(lines[0], "zwrm: error: run " + id + ": the VMM was killed by signal Killed") << *end;

  const nlohmann::json ended = find_run(home, id);
  EXPECT_EQ(ended["stop_cause"], "vmm-crash") << ended.dump();
  EXPECT_EQ(ended["exit_code"], 125) << ended.dump();
  const std::vector<nlohmann::json> run_ends = home.events("run.end");
  ASSERT_EQ(run_ends.size(), 1u);
  EXPECT_EQ(run_ends[0]["cause"], "vmm-crash");
  EXPECT_EQ(run_ends[0]["exit_code"], 125);
  EXPECT_EQ(run_ends[0]["detail"], "the VMM was killed by signal Killed");

  EXPECT_TRUE(wait_until([&] { return !process_running(supervisor); }, kCleanupTimeout)) << "the supervisor lingers";
  EXPECT_TRUE(home.run_directories().empty());
  EXPECT_EQ(cgroups_named(id), std::vector<std::string>{});
  EXPECT_EQ(mounts_naming(home.home()), std::vector<std::string>{});

  const Outcome next = home.zwrm(run_args("crashed", {"sh", "-c", "cat /workspace/d.txt && echo more >> /workspace/d.txt"}));
  EXPECT_EQ(next.exit_code, 0) << next;
  EXPECT_EQ(next.out, "synced\n") << next;
  const CommandResult checked = check_file_system(home.volume_path("crashed"));
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
}

// Checks that a run of project was rejected before boot in one line that
// names the volume path and contains problem, and started no VMM.
void expect_volume_rejected(TestHome& home, const Outcome& outcome, const std::string& project,
                            const std::string& problem) {
  EXPECT_EQ(outcome.exit_code, 125) << outcome;
  const std::vector<std::string> lines = error_lines(outcome);
  ASSERT_EQ(lines.size(), 1u) << outcome;
  EXPECT_TRUE(lines[0].starts_with("zwrm: error: ")) << outcome;
  EXPECT_NE(lines[0].find(home.volume_path(project)), std::string::npos) << outcome;
  EXPECT_NE(lines[0].find(problem), std::string::npos) << outcome;
  EXPECT_TRUE(home.vmm_pids().empty());
}

// The volume path is a symbolic link to another ext4 image (another
// project's volume, say). The run is rejected before boot, and the image it
// points to is unchanged.
TEST(HostAttack, SymlinkedVolumeRejected) {
  TestHome home;
  const std::string victim = home.scratch() + "/victim.ext4";
  ASSERT_NO_FATAL_FAILURE(make_ext4_image(victim));
  const std::string digest = file_digest(victim);
  fs::create_directories(home.home() + "/volumes");
  fs::permissions(home.home() + "/volumes", fs::perms::owner_all);
  ASSERT_EQ(::symlink(victim.c_str(), home.volume_path("linked").c_str()), 0) << std::strerror(errno);

  // --disk matches the image's size, so only the link can stop the run.
  const Outcome run =
      home.zwrm(run_args("linked", {"sh", "-c", "echo owned > /workspace/owned; sync"}, {"--disk", "64M"}));
  expect_volume_rejected(home, run, "linked", "symbolic link");
  EXPECT_EQ(file_digest(victim), digest) << "the run wrote through the symbolic link";
  EXPECT_TRUE(fs::is_symlink(home.volume_path("linked"))) << "zwrm removed the user's file";
}

// The volume has a second hard link (to a file the attacker keeps, or that
// belongs elsewhere). The run is rejected before boot, and the file is
// unchanged.
TEST(HostAttack, HardLinkedVolumeRejected) {
  TestHome home;
  const std::string victim = home.scratch() + "/victim.ext4";
  ASSERT_NO_FATAL_FAILURE(make_ext4_image(victim));
  const std::string digest = file_digest(victim);
  fs::create_directories(home.home() + "/volumes");
  fs::permissions(home.home() + "/volumes", fs::perms::owner_all);
  ASSERT_EQ(::link(victim.c_str(), home.volume_path("linked").c_str()), 0) << std::strerror(errno);

  // --disk matches the image's size, so only the link can stop the run.
  const Outcome run =
      home.zwrm(run_args("linked", {"sh", "-c", "echo owned > /workspace/owned; sync"}, {"--disk", "64M"}));
  expect_volume_rejected(home, run, "linked", "hard link");
  EXPECT_EQ(file_digest(victim), digest) << "the run wrote through the hard link";
  EXPECT_EQ(fs::hard_link_count(victim), 2u) << "zwrm removed the user's link";
}

// A thread swaps the volume path between the real volume and a symbolic
// link to a victim image (renameat2(2) with RENAME_EXCHANGE, so the real
// volume is never lost), while runs start and write to /workspace. A run
// may be rejected when it meets the link, but no run ever writes to the
// victim. The test goes on until 4 runs have booted, so the swaps hit every
// step of a start.
TEST(HostAttack, VolumeSwapRaceSparesVictim) {
  TestHome home;
  const Outcome created = home.zwrm(run_args("race", {"sh", "-c", "echo created > /workspace/created"}, {"--disk", "64M"}));
  ASSERT_EQ(created.exit_code, 0) << created;
  const std::string volume = home.volume_path("race");
  const std::string victim = home.scratch() + "/victim.ext4";
  fs::copy_file(volume, victim);
  const std::string digest = file_digest(victim);
  // The prepared link lives on the same file system as the volume, so the
  // two names can be exchanged atomically.
  const std::string swap = home.scratch() + "/swap";
  ASSERT_EQ(::symlink(victim.c_str(), swap.c_str()), 0) << std::strerror(errno);

  std::atomic<bool> stop{false};
  std::atomic<int> swaps{0};
  std::thread swapper([&] {
    // Each exchange puts the link in place for 1 ms, the next one the real
    // volume for 3 ms, so that about half of the starts pass both path
    // checks (the client's and the supervisor's) and boot.
    while (!stop) {
      for (const Milliseconds hold : {1ms, 3ms}) {
        if (::renameat2(AT_FDCWD, volume.c_str(), AT_FDCWD, swap.c_str(), RENAME_EXCHANGE) == 0) ++swaps;
        std::this_thread::sleep_for(hold);
      }
    }
  });

  int booted = 0;
  int rejected = 0;
  for (int attempt = 0; attempt < 80 && booted < 4; ++attempt) {
    const Outcome run = home.zwrm(run_args("race", {"sh", "-c", "echo attempt >> /workspace/attempts; sync"}));
    if (run.exit_code == 0) {
      ++booted;
      continue;
    }
    ++rejected;
    EXPECT_EQ(run.exit_code, 125) << run;
    const std::vector<std::string> lines = error_lines(run);
    ASSERT_EQ(lines.size(), 1u) << run;
    EXPECT_TRUE(lines[0].starts_with("zwrm: error: ")) << run;
  }
  stop = true;
  swapper.join();
  if (fs::is_symlink(volume)) {
    ASSERT_EQ(::renameat2(AT_FDCWD, volume.c_str(), AT_FDCWD, swap.c_str(), RENAME_EXCHANGE), 0) << std::strerror(errno);
  }
  std::cout << booted << " runs booted and " << rejected << " were rejected during " << swaps << " swaps\n";

  EXPECT_EQ(file_digest(victim), digest) << "a run wrote to the victim image through the swapped link";
  EXPECT_GE(booted, 1) << "no run booted while the path was swapped, so the race was never run";
  EXPECT_GT(swaps.load(), 0);
  EXPECT_TRUE(home.vmm_pids().empty());
  const CommandResult checked = check_file_system(volume);
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
}

}  // namespace
}  // namespace zwrm::integration
