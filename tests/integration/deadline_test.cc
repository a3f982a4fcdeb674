// Deadlines enforced by the host: the idle deadline and `zwrm extend`.
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

nlohmann::json only_run(TestHome& home) {
  const std::vector<nlohmann::json> runs = home.runs(/*all=*/true);
  EXPECT_EQ(runs.size(), 1u);
  return runs.size() == 1 ? runs[0] : nlohmann::json::object();
}

TEST(Deadline, IdleRunEndsAfterIdleTimeout) {
  TestHome home;
  const Outcome run = home.zwrm(run_args("idle", {"sleep", "1000"}, {"--idle-timeout", "6s"}), {.timeout = 60s});
  ASSERT_FALSE(run.timed_out) << run;
  EXPECT_EQ(run.exit_code, 124) << run;
  EXPECT_NE(run.err.find("idle"), std::string::npos) << run;
  EXPECT_EQ(only_run(home)["stop_cause"], "idle");
  // Boot, the idle period and the shutdown; far below the 1000 s sleep.
  EXPECT_LT(run.elapsed, 25s) << run;
}

TEST(Deadline, StreamingOutputIsNotIdle) {
  TestHome home;
  const Outcome run = home.zwrm(
      run_args("stream", {"sh", "-c", "for i in $(seq 1 12); do echo tick; sleep 1; done"}, {"--idle-timeout", "5s"}),
      {.timeout = 90s});
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(split_lines(run.out).size(), 12u) << run;
}

TEST(Deadline, BusyCpuIsNotIdle) {
  TestHome home;
  // Ten seconds of computation without any output.
  const Outcome run = home.zwrm(
      run_args("busy", {"sh", "-c", "end=$(($(date +%s) + 10)); while [ $(date +%s) -lt $end ]; do :; done; echo done"},
               {"--idle-timeout", "5s"}),
      {.timeout = 90s});
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out, "done\n") << run;
}

TEST(Deadline, ExtendPushesDeadlineOut) {
  TestHome home;
  auto client = home.start(run_args("extend", {"sh", "-c", "echo ready; sleep 10; echo finished"}, {"--timeout", "8s"}));
  ASSERT_TRUE(client->wait_for_output("ready\n", 90s)) << client->err();
  const std::string id = home.runs(/*all=*/false).at(0)["id"];
  const Outcome extended = home.zwrm({"extend", id.substr(0, 6), "30s"});
  ASSERT_EQ(extended.exit_code, 0) << extended;
  EXPECT_TRUE(extended.out.starts_with("run " + id + ": deadline in ")) << extended;
  const std::optional<Outcome> end = client->wait(60s);
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->exit_code, 0) << *end;
  EXPECT_EQ(end->out, "ready\nfinished\n") << *end;
}

TEST(Deadline, ExtendWithoutDeadlineFails) {
  TestHome home;
  auto client = home.start(run_args("nodeadline", {"sh", "-c", "echo ready; exec sleep 1000"}));
  ASSERT_TRUE(client->wait_for_output("ready\n", 90s)) << client->err();
  const std::string id = home.runs(/*all=*/false).at(0)["id"];
  const Outcome extended = home.zwrm({"extend", id, "1h"});
  EXPECT_EQ(extended.exit_code, 125) << extended;
  EXPECT_NE(extended.err.find("has no deadline"), std::string::npos) << extended;
}

}  // namespace
}  // namespace zwrm::integration
