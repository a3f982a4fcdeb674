// Signals to the zwrm CLI act as they would on a local command. The first
// SIGINT or SIGTERM goes to the command. A second one, or the command still
// running 5 s later, stops the run.
#include <signal.h>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

// The client's grace after forwarding a signal, plus margin for shutdown.
constexpr Milliseconds kGraceAndShutdown = 20s;

// A command that reports each SIGTERM or SIGINT it receives and keeps
// running. Background jobs of a non-interactive shell ignore SIGINT, and
// `wait` returns when a trapped signal arrives.
std::vector<std::string> resilient_run(const std::string& project) {
  return run_args(project, {"sh", "-c",
                            "trap 'echo got-signal' TERM INT; echo ready; while :; do sleep 1000 & wait; done"});
}

struct SignalCase {
  int first_signal;
  int expected_exit_code;
};

void PrintTo(const SignalCase& signal_case, std::ostream* stream) { *stream << sigabbrev_np(signal_case.first_signal); }

class ForwardedSignal : public ::testing::TestWithParam<SignalCase> {};

TEST_P(ForwardedSignal, EndsCommandThatDiesOnIt) {
  TestHome home;
  auto client = home.start(run_args("forward", {"sh", "-c", "echo ready; exec sleep 1000"}));
  ASSERT_TRUE(client->wait_for_output("ready\n", 90s)) << client->err();

  client->send_signal(GetParam().first_signal);
  const std::optional<Outcome> end = client->wait(kGraceAndShutdown);
  ASSERT_TRUE(end.has_value()) << "zwrm run did not exit after the signal";
  EXPECT_EQ(end->exit_code, GetParam().expected_exit_code) << *end;
  EXPECT_TRUE(wait_until([&] { return home.vmm_pids().empty(); }, 15s)) << "a VMM is left";
}

INSTANTIATE_TEST_SUITE_P(Signals, ForwardedSignal,
                         ::testing::Values(SignalCase{SIGTERM, 128 + SIGTERM}, SignalCase{SIGINT, 128 + SIGINT}),
                         [](const auto& info) { return std::string(sigabbrev_np(info.param.first_signal)); });

struct StopCase {
  int signal_number;
  bool send_twice;  // false: wait out the client's grace instead
  int expected_exit_code;
  std::string expected_cause;
  std::string name;
};

void PrintTo(const StopCase& stop_case, std::ostream* stream) { *stream << stop_case.name; }

class SignalStopsRun : public ::testing::TestWithParam<StopCase> {};

TEST_P(SignalStopsRun, WhenCommandKeepsRunning) {
  const StopCase& param = GetParam();
  TestHome home;
  auto client = home.start(resilient_run("resilient"));
  ASSERT_TRUE(client->wait_for_output("ready\n", 90s)) << client->err();

  client->send_signal(param.signal_number);
  ASSERT_TRUE(client->wait_for_output("got-signal\n", 15s)) << "the command did not receive the first signal";
  const auto forwarded_at = Clock::now();
  if (param.send_twice) client->send_signal(param.signal_number);

  const std::optional<Outcome> end = client->wait(kGraceAndShutdown);
  ASSERT_TRUE(end.has_value()) << "zwrm run did not stop the run";
  EXPECT_EQ(end->exit_code, param.expected_exit_code) << *end;
  if (!param.send_twice) {
    EXPECT_GE(Clock::now() - forwarded_at, 5s) << "the run ended before the grace";
  }
  const std::vector<nlohmann::json> runs = home.runs(/*all=*/true);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["stop_cause"], param.expected_cause);
  EXPECT_TRUE(wait_until([&] { return home.vmm_pids().empty(); }, 15s)) << "a VMM is left";
  EXPECT_TRUE(home.run_directories().empty());
}

INSTANTIATE_TEST_SUITE_P(
    Signals, SignalStopsRun,
    ::testing::Values(StopCase{SIGTERM, true, 143, "stopped", "SecondSigterm"},
                      StopCase{SIGINT, true, 130, "interrupted", "SecondSigint"},
                      StopCase{SIGTERM, false, 143, "stopped", "SigtermGraceExpired"},
                      StopCase{SIGINT, false, 130, "interrupted", "SigintGraceExpired"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace zwrm::integration
