// Resource limits: a fork bomb or a memory hog in the guest stays inside the
// VM and its cgroup, and the host and the deadline keep working.
#include <thread>

#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

TEST(Limits, ForkBombStaysContained) {
  TestHome home;
  auto bomb = home.start(run_args("bomb", {"sh", "-c", "echo ready; bomb() { bomb | bomb & }; bomb; sleep 1000"},
                                  {"--timeout", "20s"}));
  ASSERT_TRUE(bomb->wait_for_output("ready\n", 90s)) << bomb->err();

  // While the bomb goes off: the host answers, and the run's host-side
  // tasks (QEMU threads and the supervisor) stay within the cgroup's limit.
  std::uint64_t most_tasks = 0;
  for (int sample = 0; sample < 5; ++sample) {
    const Outcome ps = home.zwrm({"ps", "--json"}, {.timeout = 10s});
    ASSERT_FALSE(ps.timed_out) << "the host stopped answering during the fork bomb";
    ASSERT_EQ(ps.exit_code, 0) << ps;
    const nlohmann::json run = nlohmann::json::parse(split_lines(ps.out).at(0));
    ASSERT_TRUE(run.contains("usage")) << ps.out;
    most_tasks = std::max<std::uint64_t>(most_tasks, run["usage"]["pids"].get<std::uint64_t>());
    std::this_thread::sleep_for(1s);
  }
  EXPECT_GT(most_tasks, 0u);
  EXPECT_LE(most_tasks, 256u);

  const std::optional<Outcome> end = bomb->wait(60s);
  ASSERT_TRUE(end.has_value()) << "the deadline did not end the fork bomb";
  EXPECT_EQ(end->exit_code, 124) << *end;
  // The 20 s deadline plus the shutdown grace, from the start of zwrm.
  EXPECT_LT(end->elapsed, 32s) << *end;
  EXPECT_TRUE(home.vmm_pids().empty());
}

TEST(Limits, GuestOutOfMemoryIsReported) {
  TestHome home;
  // awk doubles a string until the guest's 256 MiB run out.
  const Outcome run = home.zwrm(
      run_args("hog", {"sh", "-c", "awk 'BEGIN { s = \"x\"; while (1) s = s s }'; echo \"awk ended with $?\""}),
      {.timeout = 120s});
  ASSERT_FALSE(run.timed_out) << run;
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out, "awk ended with 137\n") << run;
  EXPECT_NE(run.err.find("the guest ran out of memory"), std::string::npos) << run;
  // The guest's OOM killer acted, not the host's: the VMM survived to the end.
  const nlohmann::json ended = home.runs(/*all=*/true).at(0);
  EXPECT_EQ(ended["stop_cause"], "exit");
}

TEST(Limits, RunCgroupIsRemoved) {
  TestHome home;
  auto client = home.start(run_args("cg", {"sh", "-c", "echo ready; exec sleep 1000"}));
  ASSERT_TRUE(client->wait_for_output("ready\n", 90s)) << client->err();
  const nlohmann::json run = home.runs(/*all=*/false).at(0);
  ASSERT_TRUE(run.contains("usage")) << run;
  EXPECT_GT(run["usage"]["memory_limit_bytes"].get<std::uint64_t>(), 256ull << 20);
  const std::string id = run["id"];
  ASSERT_EQ(home.zwrm({"stop", id}).exit_code, 0);
  // The stopped run has no cgroup left to read.
  const nlohmann::json ended = home.runs(/*all=*/true).at(0);
  EXPECT_FALSE(ended.contains("usage"));
  // Its resource use and who stopped it are in the audit log.
  const auto ends = home.events("run.end");
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_GT(ends[0]["cpu_ms"].get<std::int64_t>(), 0) << ends[0].dump();
  EXPECT_GT(ends[0]["memory_peak_bytes"].get<std::int64_t>(), 16 << 20) << ends[0].dump();
  const auto stops = home.events("run.stop-request");
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0]["by_uid"], ::getuid());
}

}  // namespace
}  // namespace zwrm::integration
