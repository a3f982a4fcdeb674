// `zwrm run` as a drop-in for running a command locally: stdout, stderr,
// stdin and the exit status pass through unchanged.
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

TEST(Run, SeparatesStdoutStderrAndExitCode) {
  TestHome home;
  const Outcome run = home.zwrm(run_args("streams", {"sh", "-c", "echo out; echo err >&2; exit 3"}));
  EXPECT_EQ(run.exit_code, 3) << run;
  EXPECT_EQ(run.out, "out\n") << run;
  EXPECT_EQ(strip_leading_progress(run.err), "err\n") << run;
}

TEST(Run, CommandKilledBySignalGives128PlusSignal) {
  TestHome home;
  const Outcome run = home.zwrm(run_args("signal", {"sh", "-c", "kill -9 $$"}));
  EXPECT_EQ(run.exit_code, 128 + 9) << run;
  EXPECT_EQ(run.out, "") << run;
}

TEST(Run, CommandNotFoundGives127WithMessage) {
  TestHome home;
  const Outcome run = home.zwrm(run_args("notfound", {"no-such-command"}));
  EXPECT_EQ(run.exit_code, 127) << run;
  EXPECT_EQ(run.out, "") << run;
  const std::vector<std::string> lines = split_lines(strip_leading_progress(run.err));
  ASSERT_EQ(lines.size(), 1u) << run;
  EXPECT_NE(lines[0].find("no-such-command"), std::string::npos) << run;
  EXPECT_NE(lines[0].find("not found"), std::string::npos) << run;
}

TEST(Run, ForwardsStdin) {
  TestHome home;
  const Outcome run = home.zwrm(run_args("stdin", {"wc", "-l"}), {.stdin_bytes = "a\nb\n", .timeout = 30s});
  ASSERT_FALSE(run.timed_out) << run;
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out, "2\n") << run;
}

TEST(Run, ClosedStdoutEndsCommandWithSigpipe) {
  TestHome home;
  // `yes` never ends on its own: only SIGPIPE from the closed pipe stops it,
  // as in a local `yes | head -1`. The harness's stdout reader stays open,
  // so the run closes its own stdout from inside a shell on the host.
  const std::string script = "'" + zwrm_binary() + "' run --project sigpipe --memory 256M -- yes | head -1";
  const Outcome run = home.shell(script, {.timeout = 60s});
  ASSERT_FALSE(run.timed_out) << run;
  EXPECT_EQ(run.out, "y\n") << run;
}

TEST(Run, EnvironmentOverridesDefaults) {
  TestHome home;
  const Outcome run = home.zwrm(run_args("envover", {"/bin/sh", "-c", "echo $HOME; env | grep -c '^PATH='; echo $PATH"},
                                         {"-e", "HOME=/elsewhere", "-e", "PATH=/nowhere"}));
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out, "/elsewhere\n1\n/nowhere\n") << run;
}

TEST(Run, SeparatorInsideCommandIsKept) {
  TestHome home;
  const Outcome run = home.zwrm({"run", "--project", "sep", "--memory", kSmallMemory, "echo", "a", "--", "b"});
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out, "a -- b\n") << run;
}

TEST(Run, PassesEnvironmentVariables) {
  TestHome home;
  const Outcome run = home.zwrm(
      run_args("env", {"sh", "-c", "echo \"$GREETING $LANG\""}, {"-e", "GREETING=hello world"}));
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out, "hello world C.UTF-8\n") << run;
}

TEST(Run, StreamsLargeStdoutIntact) {
  // The guest hashes the 32 MiB it sends, and the host hashes what arrives.
  TestHome home;
  const Outcome run = home.zwrm(run_args(
      "bulk", {"sh", "-c",
               "head -c 33554432 /dev/urandom > /tmp/data && sha256sum < /tmp/data >&2 && cat /tmp/data"}));
  ASSERT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out.size(), 33554432u);
  EXPECT_EQ(strip_leading_progress(run.err), sha256_hex(run.out) + "  -\n");
}

}  // namespace
}  // namespace zwrm::integration
