// The debian template: a full Debian 12 userland with the tools agents use.
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

TEST(Debian, RunsPython) {
  TestHome home;
  const Outcome run = home.zwrm({"run", "--template", "debian", "--project", "py", "--", "python3", "-c",
                                 "print(6*7)"});
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out, "42\n") << run;
}

TEST(Debian, HasBashGitAndCurl) {
  TestHome home;
  const Outcome run = home.zwrm({"run", "--template", "debian", "--project", "tools", "--", "sh", "-c",
                                 "for tool in bash git curl; do command -v $tool || echo \"$tool missing\"; done"});
  EXPECT_EQ(run.exit_code, 0) << run;
  const std::vector<std::string> lines = split_lines(run.out);
  ASSERT_EQ(lines.size(), 3u) << run;
  EXPECT_TRUE(lines[0].ends_with("/bash")) << run;
  EXPECT_TRUE(lines[1].ends_with("/git")) << run;
  EXPECT_TRUE(lines[2].ends_with("/curl")) << run;
}

}  // namespace
}  // namespace zwrm::integration
