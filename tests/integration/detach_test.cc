// `zwrm run --detach`: the run goes on without its client, its output goes
// to output.log, and it still ends at its deadline.
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

// Returns the run with this id from `zwrm ps -a --json`, or an empty object.
nlohmann::json run_with_id(TestHome& home, const std::string& id) {
  for (const nlohmann::json& run : home.runs(/*all=*/true)) {
    if (run["id"] == id) return run;
  }
  return nlohmann::json::object();
}

TEST(Detach, RunOutlivesClientAndKeepsOutput) {
  TestHome home;
  const Outcome started = home.zwrm(run_args(
      "detached", {"sh", "-c", "echo out; sleep 1; echo err >&2; sleep 2; echo kept > /workspace/f; cat; echo end"},
      {"--detach", "--timeout", "60s"}));
  ASSERT_EQ(started.exit_code, 0) << started;
  const std::string id = started.out.substr(0, started.out.find('\n'));
  ASSERT_EQ(id.size(), 12u) << started;
  EXPECT_EQ(started.out, id + "\n");
  // The client is gone, the run is not.
  EXPECT_EQ(run_with_id(home, id)["state"], "running");
  EXPECT_EQ(home.vmm_pids().size(), 1u);

  ASSERT_TRUE(wait_until([&] { return run_with_id(home, id)["state"] == "ended"; }, 60s));
  const nlohmann::json ended = run_with_id(home, id);
  EXPECT_EQ(ended["exit_code"], 0) << ended.dump();
  EXPECT_EQ(ended["stop_cause"], "exit") << ended.dump();
  // cat read an end of stdin: the command got none.
  const Outcome output = home.zwrm({"logs", id, "--output"});
  EXPECT_EQ(output.exit_code, 0) << output;
  EXPECT_EQ(output.out, "out\nerr\nend\n");
  EXPECT_EQ(home.events("run.detach").size(), 1u);

  const Outcome next = home.zwrm(run_args("detached", {"cat", "/workspace/f"}));
  EXPECT_EQ(next.out, "kept\n") << next;
}

TEST(Detach, NeedsDeadline) {
  TestHome home;
  const Outcome started = home.zwrm(run_args("detached", {"true"}, {"--detach"}));
  EXPECT_EQ(started.exit_code, 125) << started;
  const std::vector<std::string> lines = split_lines(started.err);
  ASSERT_EQ(lines.size(), 1u) << started;
  EXPECT_NE(lines[0].find("a detached run needs a deadline"), std::string::npos) << started;
  EXPECT_TRUE(home.runs(/*all=*/true).empty());
}

TEST(Detach, AttachedRunHasNoOutputLog) {
  TestHome home;
  const Outcome run = home.zwrm(run_args("attached", {"echo", "hi"}));
  ASSERT_EQ(run.exit_code, 0) << run;
  const std::string id = home.runs(/*all=*/true).at(0)["id"].get<std::string>();
  const Outcome output = home.zwrm({"logs", id, "--output"});
  EXPECT_EQ(output.exit_code, 125) << output;
  EXPECT_NE(output.err.find("only a detached run"), std::string::npos) << output;
}

}  // namespace
}  // namespace zwrm::integration
