// `zwrm agent` at a terminal: keys reach the guest shell, its output comes
// back, window sizes follow the user's terminal, Ctrl-C interrupts the
// foreground command only, and the shell's exit status is zwrm's.
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

constexpr Milliseconds kBootTimeout = 90s;
constexpr Milliseconds kReplyTimeout = 20s;

TEST(Terminal, AgentShellAnswersAtTerminal) {
  TestHome home;
  auto terminal = home.start_terminal({"agent", "--memory", kSmallMemory, "minimal", "pty1"}, 30, 100);
  ASSERT_TRUE(terminal->wait_for("$ ", kBootTimeout)) << terminal->screen();

  // The typed line echoes as "hi-$((6*7))", so "hi-42" can only come from
  // the shell running it.
  terminal->type("echo hi-$((6*7))\r");
  EXPECT_TRUE(terminal->wait_for("hi-42", kReplyTimeout)) << terminal->screen();

  terminal->type("stty size\r");
  EXPECT_TRUE(terminal->wait_for("30 100", kReplyTimeout)) << terminal->screen();
  terminal->resize(40, 120);
  terminal->type("stty size\r");
  EXPECT_TRUE(terminal->wait_for("40 120", kReplyTimeout)) << terminal->screen();

  terminal->type("exit 7\r");
  EXPECT_EQ(terminal->wait(30s), 7) << terminal->screen();
  EXPECT_TRUE(wait_until([&] { return home.vmm_pids().empty(); }, 15s));
}

TEST(Terminal, CtrlCInterruptsCommandNotSession) {
  TestHome home;
  auto terminal = home.start_terminal({"agent", "--memory", kSmallMemory, "minimal", "pty2"}, 24, 80);
  ASSERT_TRUE(terminal->wait_for("$ ", kBootTimeout)) << terminal->screen();

  // The job prints its marker once it is the terminal's foreground job.
  terminal->type("sh -c 'echo sleeping-$((2*4)); exec sleep 100'\r");
  ASSERT_TRUE(terminal->wait_for("sleeping-8", kReplyTimeout)) << terminal->screen();
  terminal->type("\x03");
  ASSERT_TRUE(terminal->wait_for("$ ", kReplyTimeout)) << "no prompt after Ctrl-C\n" << terminal->screen();

  terminal->type("echo status-$?\r");
  EXPECT_TRUE(terminal->wait_for("status-130", kReplyTimeout)) << terminal->screen();

  terminal->type("exit 0\r");
  EXPECT_EQ(terminal->wait(30s), 0) << terminal->screen();
}

TEST(Terminal, AgentWithoutTerminalUsesPipes) {
  TestHome home;
  const Outcome run = home.zwrm({"agent", "--memory", kSmallMemory, "minimal", "pipes", "--", "sh", "-c",
                                 "echo x; [ -t 0 ] || echo stdin-is-not-a-terminal"});
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out, "x\nstdin-is-not-a-terminal\n") << run;
}

}  // namespace
}  // namespace zwrm::integration
