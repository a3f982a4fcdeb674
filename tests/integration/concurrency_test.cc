// Several runs on one host: each gets its own VM, and a project's volume is
// used by one run at a time.
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

// Each guest prints its boot id, writes a file named after its project,
// reports ready and waits for a line on stdin before listing /workspace, so
// both VMs are alive at the same time.
std::vector<std::string> concurrent_run(const std::string& project) {
  return run_args(project, {"sh", "-c",
                            "cat /proc/sys/kernel/random/boot_id; echo mine > /workspace/" + project +
                                ".txt; echo ready; read go; ls -A /workspace"});
}

TEST(Concurrency, TwoRunsAtOnceAreSeparateVms) {
  TestHome home;
  auto first = home.start(concurrent_run("first"), /*open_stdin=*/true);
  auto second = home.start(concurrent_run("second"), /*open_stdin=*/true);
  ASSERT_TRUE(first->wait_for_output("ready\n", 90s)) << first->err();
  ASSERT_TRUE(second->wait_for_output("ready\n", 90s)) << second->err();
  EXPECT_EQ(home.vmm_pids().size(), 2u);

  first->write_stdin("go\n");
  second->write_stdin("go\n");
  const std::optional<Outcome> first_end = first->wait(60s);
  const std::optional<Outcome> second_end = second->wait(60s);
  ASSERT_TRUE(first_end.has_value());
  ASSERT_TRUE(second_end.has_value());
  EXPECT_EQ(first_end->exit_code, 0) << *first_end;
  EXPECT_EQ(second_end->exit_code, 0) << *second_end;

  const std::vector<std::string> first_lines = split_lines(first_end->out);
  const std::vector<std::string> second_lines = split_lines(second_end->out);
  ASSERT_GE(first_lines.size(), 2u) << *first_end;
  ASSERT_GE(second_lines.size(), 2u) << *second_end;
  EXPECT_EQ(first_lines[0].size(), 36u) << "not a boot id: " << first_lines[0];
  EXPECT_NE(first_lines[0], second_lines[0]) << "both runs report the same boot id";

  EXPECT_NE(first_end->out.find("\nfirst.txt\n"), std::string::npos) << *first_end;
  EXPECT_EQ(first_end->out.find("second.txt"), std::string::npos) << *first_end;
  EXPECT_NE(second_end->out.find("\nsecond.txt\n"), std::string::npos) << *second_end;
  EXPECT_EQ(second_end->out.find("first.txt"), std::string::npos) << *second_end;
}

TEST(Concurrency, SecondRunOfSameProjectIsRejected) {
  TestHome home;
  auto holder = home.start(run_args("shared", {"sh", "-c", "echo ready; read line; echo \"got $line\""}),
                           /*open_stdin=*/true);
  ASSERT_TRUE(holder->wait_for_output("ready\n", 90s)) << holder->err();
  const std::vector<nlohmann::json> live = home.runs(/*all=*/false);
  ASSERT_EQ(live.size(), 1u);
  const std::string holder_id = live[0]["id"].get<std::string>();

  const Outcome second = home.zwrm(run_args("shared", {"true"}));
  EXPECT_EQ(second.exit_code, 125) << second;
  EXPECT_LT(second.elapsed, 10s) << second;
  const std::vector<std::string> lines = split_lines(strip_leading_progress(second.err));
  ASSERT_EQ(lines.size(), 1u) << second;
  EXPECT_TRUE(lines[0].starts_with("zwrm: error: ")) << second;
  EXPECT_NE(lines[0].find("in use by run " + holder_id), std::string::npos) << second;
  EXPECT_EQ(home.vmm_pids().size(), 1u) << "the rejected run started a VM";

  holder->write_stdin("go\n");
  holder->close_stdin();
  const std::optional<Outcome> holder_end = holder->wait(60s);
  ASSERT_TRUE(holder_end.has_value());
  EXPECT_EQ(holder_end->exit_code, 0) << *holder_end;
  EXPECT_EQ(holder_end->out, "ready\ngot go\n") << *holder_end;
  EXPECT_EQ(home.runs(/*all=*/true).size(), 1u) << "the rejected run was recorded as a run";
}

}  // namespace
}  // namespace zwrm::integration
