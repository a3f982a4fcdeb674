// What a run leaves behind: only the project's volume (/workspace, with the
// agent's home inside it). Everything else in the guest is ephemeral, and
// each project sees only its own volume.
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

TEST(Volume, WorkspaceFilePersistsAcrossRuns) {
  TestHome home;
  const Outcome write = home.zwrm(run_args("keep", {"sh", "-c", "echo kept > /workspace/note.txt"}));
  ASSERT_EQ(write.exit_code, 0) << write;

  const Outcome read = home.zwrm(run_args("keep", {"cat", "/workspace/note.txt"}));
  EXPECT_EQ(read.exit_code, 0) << read;
  EXPECT_EQ(read.out, "kept\n") << read;
}

TEST(Volume, FilesOutsideWorkspaceAreGone) {
  TestHome home;
  const Outcome write = home.zwrm(run_args(
      "scratch", {"sh", "-c", "echo x > /tmp/left && echo x > /etc/left && echo x > /root/left"}, {"--root"}));
  ASSERT_EQ(write.exit_code, 0) << write;

  const Outcome check = home.zwrm(run_args(
      "scratch",
      {"sh", "-c", "for f in /tmp/left /etc/left /root/left; do [ -e $f ] && echo \"$f survived\"; done; echo checked"},
      {"--root"}));
  EXPECT_EQ(check.exit_code, 0) << check;
  EXPECT_EQ(check.out, "checked\n") << check;
}

TEST(Volume, OtherProjectSeesNeitherVolumeNorRoot) {
  TestHome home;
  const Outcome write = home.zwrm(run_args(
      "alpha", {"sh", "-c", "echo a > /workspace/alpha.txt && echo a > /tmp/alpha.txt"}));
  ASSERT_EQ(write.exit_code, 0) << write;

  const Outcome check = home.zwrm(run_args(
      "beta", {"sh", "-c", "for f in /workspace/alpha.txt /tmp/alpha.txt; do [ -e $f ] || echo \"$f absent\"; done"}));
  EXPECT_EQ(check.exit_code, 0) << check;
  EXPECT_EQ(check.out, "/workspace/alpha.txt absent\n/tmp/alpha.txt absent\n") << check;
}

TEST(Volume, AgentHomePersistsInsideWorkspace) {
  TestHome home;
  const Outcome write = home.zwrm(run_args("homedir", {"sh", "-c", "echo remembered > ~/history"}));
  ASSERT_EQ(write.exit_code, 0) << write;

  const Outcome read = home.zwrm(run_args("homedir", {"cat", "/home/agent/history", "/workspace/.home/history"}));
  EXPECT_EQ(read.exit_code, 0) << read;
  EXPECT_EQ(read.out, "remembered\nremembered\n") << read;
}

TEST(Volume, CommandRunsAsAgentInWorkspace) {
  TestHome home;
  const Outcome run = home.zwrm(run_args("user", {"sh", "-c", "id -u; id -g; echo $HOME; pwd"}));
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out, "1000\n1000\n/home/agent\n/workspace\n") << run;
}

TEST(Volume, RootFlagRunsAsRoot) {
  TestHome home;
  const Outcome run = home.zwrm(run_args("root", {"sh", "-c", "id -u; echo $HOME; pwd"}, {"--root"}));
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out, "0\n/root\n/workspace\n") << run;
}

}  // namespace
}  // namespace zwrm::integration
