// A guest init that breaks the control protocol: the supervisor must treat
// the guest as hostile, end the run at once and leave no VMM behind.
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

TEST(ProtocolViolation, OversizedFrameEndsRun) {
  TestHome home;
  // The initramfs is cached by the init's digest, so this init gets its own
  // entry in the shared cache.
  home.set_env("ZWRM_INIT", ZWRM_TEST_BAD_INIT);

  const Outcome run = home.zwrm(run_args("hostile", {"true"}, {"--accel", "tcg"}), {.timeout = 90s});
  EXPECT_EQ(run.exit_code, 125) << run;
  // A boot takes about 1.5 s under TCG, and the supervisor's boot timeout is 60 s.
  EXPECT_LT(run.elapsed, 20s) << run;
  const std::vector<std::string> lines = split_lines(strip_leading_progress(run.err));
  ASSERT_EQ(lines.size(), 1u) << run;
  EXPECT_TRUE(lines[0].starts_with("zwrm: error: ")) << run;
  EXPECT_NE(lines[0].find("protocol violation"), std::string::npos) << run;

  const std::vector<nlohmann::json> runs = home.runs(/*all=*/true);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["stop_cause"], "protocol-error");
  EXPECT_TRUE(home.vmm_pids().empty());
  EXPECT_TRUE(home.run_directories().empty());
}

}  // namespace
}  // namespace zwrm::integration
