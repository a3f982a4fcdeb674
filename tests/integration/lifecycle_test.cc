// How runs end from outside the guest: the CLI killed, the deadline,
// `zwrm stop`, a guest kernel panic and a VMM killed. Every way leaves no
// VMM and no run directory, and records why the run ended.
#include <signal.h>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

// A run ends its VMM within the guest's shutdown grace (5 s) plus margin.
constexpr Milliseconds kCleanupTimeout = 15s;

// The guest reports "ready" once the command runs, then waits.
std::vector<std::string> waiting_run(const std::string& project, const std::vector<std::string>& options = {}) {
  return run_args(project, {"sh", "-c", "echo ready; exec sleep 1000"}, options);
}

// Returns the one run `zwrm ps -a --json` lists, or an empty object.
nlohmann::json only_run(TestHome& home) {
  const std::vector<nlohmann::json> runs = home.runs(/*all=*/true);
  EXPECT_EQ(runs.size(), 1u);
  return runs.size() == 1 ? runs[0] : nlohmann::json::object();
}

TEST(Lifecycle, KilledClientEndsRunAndKeepsVolume) {
  TestHome home;
  auto client = home.start(run_args("orphan", {"sh", "-c", "echo data > /workspace/d.txt; sync; echo ready; exec sleep 1000"}));
  ASSERT_TRUE(client->wait_for_output("ready\n", 90s)) << client->err();
  ASSERT_EQ(home.vmm_pids().size(), 1u);

  client->send_signal(SIGKILL);
  ASSERT_TRUE(client->wait(5s).has_value());
  EXPECT_TRUE(wait_until([&] { return home.vmm_pids().empty(); }, kCleanupTimeout)) << "the VMM outlived its client";
  EXPECT_TRUE(wait_until([&] { return home.run_directories().empty(); }, kCleanupTimeout))
      << "the run directory outlived the run";
  // The supervisor removes the run directory before it marks the run ended.
  EXPECT_TRUE(wait_until([&] { return home.runs(/*all=*/false).empty(); }, kCleanupTimeout))
      << "zwrm ps still lists a live run";

  const Outcome next = home.zwrm(run_args("orphan", {"cat", "/workspace/d.txt"}));
  EXPECT_EQ(next.exit_code, 0) << next;
  EXPECT_EQ(next.out, "data\n") << next;
}

TEST(Lifecycle, DeadlineEndsRun) {
  TestHome home;
  // A process in its own session must not keep the run alive either.
  const Outcome run = home.zwrm(run_args("deadline", {"sh", "-c", "setsid sleep 1000 & sleep 1000"}, {"--timeout", "5s"}));
  EXPECT_EQ(run.exit_code, 124) << run;
  EXPECT_LT(run.elapsed, 12s) << run;
  EXPECT_NE(run.err.find("deadline"), std::string::npos) << run;
  EXPECT_EQ(only_run(home)["stop_cause"], "deadline");
  EXPECT_TRUE(home.vmm_pids().empty());
  EXPECT_TRUE(home.run_directories().empty());
}

TEST(Lifecycle, StopEndsLiveRun) {
  TestHome home;
  auto client = home.start(waiting_run("stopped"));
  ASSERT_TRUE(client->wait_for_output("ready\n", 90s)) << client->err();

  const std::vector<nlohmann::json> live = home.runs(/*all=*/false);
  ASSERT_EQ(live.size(), 1u) << "zwrm ps does not list the live run";
  EXPECT_EQ(live[0]["state"], "running");
  EXPECT_EQ(live[0]["project"], "stopped");
  const std::string id = live[0]["id"].get<std::string>();

  const Outcome stop = home.zwrm({"stop", id});
  EXPECT_EQ(stop.exit_code, 0) << stop;
  EXPECT_EQ(stop.out, "stopped run " + id + "\n") << stop;

  const std::optional<Outcome> end = client->wait(30s);
  ASSERT_TRUE(end.has_value()) << "zwrm run did not exit after zwrm stop";
  EXPECT_EQ(end->exit_code, 143) << *end;
  EXPECT_EQ(only_run(home)["stop_cause"], "stopped");
  EXPECT_TRUE(wait_until([&] { return home.vmm_pids().empty(); }, kCleanupTimeout));
  EXPECT_TRUE(home.run_directories().empty());

  const Outcome logs = home.zwrm({"logs", id});
  EXPECT_EQ(logs.exit_code, 0) << logs;
  EXPECT_NE(logs.out.find("zwrm-init:"), std::string::npos) << logs;
}

TEST(Lifecycle, GuestKernelPanicIsGuestCrash) {
  TestHome home;
  const Outcome run = home.zwrm(run_args("panic", {"sh", "-c", "echo c > /proc/sysrq-trigger"}, {"--root"}));
  EXPECT_EQ(run.exit_code, 125) << run;
  const std::vector<std::string> lines = split_lines(strip_leading_progress(run.err));
  ASSERT_EQ(lines.size(), 1u) << run;
  EXPECT_TRUE(lines[0].starts_with("zwrm: error: ")) << run;
  EXPECT_NE(lines[0].find("panic"), std::string::npos) << run;
  EXPECT_EQ(only_run(home)["stop_cause"], "guest-crash");
  EXPECT_TRUE(home.vmm_pids().empty());
  EXPECT_TRUE(home.run_directories().empty());
}

TEST(Lifecycle, GuestRebootIsReported) {
  TestHome home;
  const Outcome run = home.zwrm(run_args("reboot", {"sh", "-c", "reboot -f; sleep 100"}, {"--root"}), {.timeout = 60s});
  EXPECT_EQ(run.exit_code, 125) << run;
  EXPECT_NE(run.err.find("rebooted or powered off"), std::string::npos) << run;
  EXPECT_EQ(only_run(home)["stop_cause"], "guest-poweroff");
  EXPECT_TRUE(home.vmm_pids().empty());
}

TEST(Lifecycle, HaltedGuestIsDetected) {
  TestHome home;
  // Without ACPI a guest power-off halts the CPUs but leaves QEMU running;
  // only the supervisor's heartbeat notices (30 s of silence).
  const Outcome run = home.zwrm(run_args("halt", {"sh", "-c", "poweroff -f; sleep 1000"}, {"--root"}), {.timeout = 90s});
  ASSERT_FALSE(run.timed_out) << run;
  EXPECT_EQ(run.exit_code, 125) << run;
  EXPECT_NE(run.err.find("stopped responding"), std::string::npos) << run;
  EXPECT_EQ(only_run(home)["stop_cause"], "guest-crash");
  EXPECT_TRUE(home.vmm_pids().empty());
  EXPECT_TRUE(home.run_directories().empty());
}

TEST(Lifecycle, StopSurvivesSupervisorDeath) {
  TestHome home;
  auto client = home.start(run_args("stopdeath", {"sh", "-c", "trap '' TERM; echo ready; exec sleep 1000"}));
  ASSERT_TRUE(client->wait_for_output("ready\n", 90s)) << client->err();
  const nlohmann::json run = home.runs(/*all=*/false).at(0);
  const std::int64_t events_before = home.event_count();
  auto stop = home.start({"stop", run["id"].get<std::string>()});
  // Kill the supervisor once it has recorded the stop request, while the
  // stop waits for the guest to shut down.
  ASSERT_TRUE(wait_until([&] { return home.event_count() > events_before; }, 20s));
  const pid_t supervisor = run["supervisor_pid"].get<pid_t>();
  ::kill(supervisor, SIGKILL);
  const std::optional<Outcome> stopped = stop->wait(20s);
  ASSERT_TRUE(stopped.has_value()) << "zwrm stop kept waiting for a dead supervisor";
  EXPECT_EQ(stopped->exit_code, 0) << *stopped;
  EXPECT_TRUE(wait_until([&] { return home.vmm_pids().empty(); }, kCleanupTimeout));
  EXPECT_TRUE(home.run_directories().empty());
  EXPECT_EQ(only_run(home)["stop_cause"], "supervisor-lost");
}

TEST(Lifecycle, KilledVmmIsVmmCrash) {
  TestHome home;
  auto client = home.start(waiting_run("vmmkill"));
  ASSERT_TRUE(client->wait_for_output("ready\n", 90s)) << client->err();
  const std::vector<pid_t> vmms = home.vmm_pids();
  ASSERT_EQ(vmms.size(), 1u);

  ::kill(vmms[0], SIGKILL);
  const std::optional<Outcome> end = client->wait(30s);
  ASSERT_TRUE(end.has_value()) << "zwrm run did not exit after its VMM was killed";
  EXPECT_EQ(end->exit_code, 125) << *end;
  const std::vector<std::string> lines = split_lines(strip_leading_progress(end->err));
  ASSERT_EQ(lines.size(), 1u) << *end;
  EXPECT_TRUE(lines[0].starts_with("zwrm: error: ")) << *end;
  EXPECT_EQ(only_run(home)["stop_cause"], "vmm-crash");
  EXPECT_TRUE(home.run_directories().empty());
}

}  // namespace
}  // namespace zwrm::integration
