// Agents persist across runs: `zwrm agent TEMPLATE NAME` creates one on
// first use and reuses its volume and settings afterwards; `zwrm agent
// create/set/show/ls/rm` and `zwrm env` manage them.
#include <sys/stat.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

namespace fs = std::filesystem;

nlohmann::json show_json(TestHome& home, const std::string& name) {
  const Outcome show = home.zwrm({"agent", "show", name, "--json"});
  EXPECT_EQ(show.exit_code, 0) << show;
  return nlohmann::json::parse(show.out, nullptr, false);
}

TEST(Agent, SecondRunReusesVolumeAndSettings) {
  TestHome home;
  ASSERT_EQ(home.zwrm({"agent", "create", "p1", "--template", "minimal", "--memory", "300M"}).exit_code, 0);
  ASSERT_EQ(home.zwrm({"env", "set", "p1", "GREETING=hello"}).exit_code, 0);

  // MemTotal shows the agent's memory; the variable comes from the agent.
  const std::string script = "echo $GREETING; echo first > /workspace/seen; grep MemTotal /proc/meminfo";
  const Outcome first = home.zwrm({"agent", "minimal", "p1", "--", "sh", "-c", script});
  ASSERT_EQ(first.exit_code, 0) << first;
  EXPECT_TRUE(first.out.starts_with("hello\n")) << first;

  const Outcome second =
      home.zwrm({"agent", "minimal", "p1", "--", "sh", "-c", "echo $GREETING; cat /workspace/seen; grep MemTotal /proc/meminfo"});
  ASSERT_EQ(second.exit_code, 0) << second;
  const std::vector<std::string> lines = split_lines(second.out);
  ASSERT_EQ(lines.size(), 3u) << second;
  EXPECT_EQ(lines[0], "hello");
  EXPECT_EQ(lines[1], "first");
  EXPECT_EQ(lines[2], split_lines(first.out).at(1)) << "the second run got other memory";
}

TEST(Agent, FirstUseCreatesAgentWithTemplate) {
  TestHome home;
  const Outcome run = home.zwrm({"agent", "minimal", "fresh", "--", "true"});
  ASSERT_EQ(run.exit_code, 0) << run;
  const nlohmann::json agent = show_json(home, "fresh");
  EXPECT_EQ(agent["template"], "minimal");
  EXPECT_EQ(agent["name"], "fresh");
  const Outcome other = home.zwrm({"agent", "debian", "fresh", "--", "true"});
  EXPECT_EQ(other.exit_code, 125) << other;
  EXPECT_NE(other.err.find("uses template minimal"), std::string::npos) << other;
}

TEST(Agent, RunOverridesDoNotChangeAgent) {
  TestHome home;
  ASSERT_EQ(home.zwrm({"agent", "create", "over", "--template", "minimal", "--memory", "256M"}).exit_code, 0);
  const Outcome run = home.zwrm({"agent", "minimal", "over", "--memory", "384M", "--", "true"});
  ASSERT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(show_json(home, "over")["memory_mib"], 256);
  EXPECT_EQ(home.runs(/*all=*/true).at(0)["memory_mib"], 384);
}

TEST(Agent, SetChangesSettingsAndGrowsVolume) {
  TestHome home;
  ASSERT_EQ(home.zwrm({"agent", "create", "grow", "--template", "minimal", "--disk", "128M"}).exit_code, 0);
  ASSERT_EQ(home.zwrm({"agent", "minimal", "grow", "--", "sh", "-c", "echo kept > /workspace/f"}).exit_code, 0);
  ASSERT_EQ(home.zwrm({"agent", "set", "grow", "--disk", "256M", "--timeout", "2h", "--cpus", "1"}).exit_code, 0);
  const nlohmann::json agent = show_json(home, "grow");
  EXPECT_EQ(agent["volume_bytes"], 256ull << 20);
  EXPECT_EQ(agent["timeout_ms"], 7'200'000);

  // The guest grows the file system to the larger disk at its next mount.
  const Outcome run = home.zwrm({"agent", "minimal", "grow", "--", "sh", "-c", "cat /workspace/f; df -k /workspace | tail -1"});
  ASSERT_EQ(run.exit_code, 0) << run;
  const std::vector<std::string> lines = split_lines(run.out);
  ASSERT_EQ(lines.size(), 2u) << run;
  EXPECT_EQ(lines[0], "kept");
  std::istringstream df(lines[1]);
  std::string device;
  std::uint64_t total_kib = 0;
  df >> device >> total_kib;
  EXPECT_GT(total_kib, 200'000u) << run;

  const Outcome shrink = home.zwrm({"agent", "set", "grow", "--disk", "128M"});
  EXPECT_EQ(shrink.exit_code, 125) << shrink;
  EXPECT_NE(shrink.err.find("cannot shrink"), std::string::npos) << shrink;
  ASSERT_EQ(home.zwrm({"agent", "set", "grow", "--timeout", "none"}).exit_code, 0);
  EXPECT_TRUE(show_json(home, "grow")["timeout_ms"].is_null());
}

TEST(Agent, ListShowsAgentsAsJson) {
  TestHome home;
  ASSERT_EQ(home.zwrm({"agent", "create", "one", "--template", "minimal"}).exit_code, 0);
  ASSERT_EQ(home.zwrm({"agent", "create", "two", "--template", "debian", "--idle-timeout", "30m"}).exit_code, 0);
  const Outcome ls = home.zwrm({"agent", "ls", "--json"});
  ASSERT_EQ(ls.exit_code, 0) << ls;
  const std::vector<std::string> lines = split_lines(ls.out);
  ASSERT_EQ(lines.size(), 2u) << ls;
  const nlohmann::json two = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(two["name"], "two");
  EXPECT_EQ(two["template"], "debian");
  EXPECT_EQ(two["idle_timeout_ms"], 1'800'000);
}

TEST(Agent, RemoveAsksBeforeDeletingVolume) {
  TestHome home;
  ASSERT_EQ(home.zwrm({"agent", "minimal", "gone", "--", "sh", "-c", "echo x > /workspace/f"}).exit_code, 0);
  const std::string volume = home.volume_path("gone");
  ASSERT_TRUE(fs::exists(volume));

  // Without a terminal nobody can confirm: nothing is removed.
  const Outcome unconfirmed = home.zwrm({"agent", "rm", "gone"});
  EXPECT_EQ(unconfirmed.exit_code, 125) << unconfirmed;
  EXPECT_TRUE(fs::exists(volume));
  EXPECT_EQ(show_json(home, "gone")["name"], "gone");

  // Answering no at the prompt keeps everything too.
  auto declined = home.start_terminal({"agent", "rm", "gone"}, 24, 80);
  ASSERT_TRUE(declined->wait_for("[y/N]", 30s)) << declined->screen();
  declined->type("n\r");
  EXPECT_EQ(declined->wait(30s), 125);
  EXPECT_TRUE(fs::exists(volume));

  auto confirmed = home.start_terminal({"agent", "rm", "gone"}, 24, 80);
  ASSERT_TRUE(confirmed->wait_for("[y/N]", 30s)) << confirmed->screen();
  confirmed->type("y\r");
  EXPECT_EQ(confirmed->wait(30s), 0) << confirmed->screen();
  EXPECT_FALSE(fs::exists(volume));
  EXPECT_EQ(home.zwrm({"agent", "show", "gone"}).exit_code, 125);
}

TEST(Agent, RemoveKeepVolumeKeepsData) {
  TestHome home;
  ASSERT_EQ(home.zwrm({"agent", "minimal", "keep", "--", "sh", "-c", "echo kept > /workspace/f"}).exit_code, 0);
  const Outcome removed = home.zwrm({"agent", "rm", "keep", "--keep-volume"});
  ASSERT_EQ(removed.exit_code, 0) << removed;
  EXPECT_TRUE(fs::exists(home.volume_path("keep")));
  // A new agent of the same name picks the kept volume up again.
  const Outcome again = home.zwrm({"agent", "minimal", "keep", "--", "cat", "/workspace/f"});
  EXPECT_EQ(again.exit_code, 0) << again;
  EXPECT_EQ(again.out, "kept\n") << again;
}

TEST(Agent, RemoveRefusesWhileRunning) {
  TestHome home;
  auto client = home.start({"agent", "minimal", "busy", "--", "sh", "-c", "echo ready; exec sleep 1000"});
  ASSERT_TRUE(client->wait_for_output("ready\n", 90s)) << client->err();
  const Outcome removed = home.zwrm({"agent", "rm", "busy", "--yes"});
  EXPECT_EQ(removed.exit_code, 125) << removed;
  EXPECT_NE(removed.err.find("while run"), std::string::npos) << removed;
  EXPECT_TRUE(fs::exists(home.volume_path("busy")));
}

TEST(Agent, EnvironmentLayersAndUnset) {
  TestHome home;
  ASSERT_EQ(home.zwrm({"agent", "create", "envs", "--template", "minimal"}).exit_code, 0);
  ASSERT_EQ(home.zwrm({"env", "set", "envs", "A=agent", "B=agent"}).exit_code, 0);
  const Outcome ls = home.zwrm({"env", "ls", "envs"});
  EXPECT_EQ(ls.out, "A=agent\nB=agent\n") << ls;
  // -e on the run wins over the agent's value.
  const Outcome run = home.zwrm({"agent", "minimal", "envs", "-e", "B=run", "--", "sh", "-c", "echo $A $B"});
  EXPECT_EQ(run.out, "agent run\n") << run;
  ASSERT_EQ(home.zwrm({"env", "unset", "envs", "A"}).exit_code, 0);
  const Outcome after = home.zwrm({"agent", "minimal", "envs", "--", "sh", "-c", "echo \"[$A]\""});
  EXPECT_EQ(after.out, "[]\n") << after;
  const Outcome missing = home.zwrm({"env", "unset", "envs", "A"});
  EXPECT_EQ(missing.exit_code, 125) << missing;
}

struct BadAgentInput {
  std::string name;
  std::vector<std::string> args;
  std::string expected_fragment;
};

void PrintTo(const BadAgentInput& input, std::ostream* stream) { *stream << input.name; }

class BadAgentCommand : public ::testing::TestWithParam<BadAgentInput> {};

TEST_P(BadAgentCommand, FailsWithOneLineAndChangesNothing) {
  TestHome home;
  ASSERT_EQ(home.zwrm({"agent", "create", "known", "--template", "minimal", "--memory", "256M"}).exit_code, 0);
  const std::int64_t events = home.event_count();
  const BadAgentInput& input = GetParam();
  const Outcome run = home.zwrm(input.args);
  EXPECT_EQ(run.exit_code, 125) << run;
  const std::vector<std::string> lines = split_lines(strip_leading_progress(run.err));
  ASSERT_EQ(lines.size(), 1u) << run;
  EXPECT_TRUE(lines[0].starts_with("zwrm: error: ")) << run;
  EXPECT_NE(lines[0].find(input.expected_fragment), std::string::npos) << run;
  EXPECT_EQ(home.event_count(), events) << "a failed command recorded an event";
  EXPECT_EQ(show_json(home, "known")["memory_mib"], 256);
}

INSTANTIATE_TEST_SUITE_P(
    Agent, BadAgentCommand,
    ::testing::Values(
        BadAgentInput{"ShowUnknown", {"agent", "show", "nosuch"}, "no agent named nosuch"},
        BadAgentInput{"SetUnknown", {"agent", "set", "nosuch", "--cpus", "1"}, "no agent named nosuch"},
        BadAgentInput{"EnvUnknown", {"env", "set", "nosuch", "A=1"}, "no agent named nosuch"},
        BadAgentInput{"CreateExisting", {"agent", "create", "known", "--template", "minimal"}, "exists already"},
        BadAgentInput{"CreateMemoryZero", {"agent", "create", "new", "--template", "minimal", "--memory", "0"},
                      "invalid --memory '0'"},
        BadAgentInput{"SetCpusTooMany", {"agent", "set", "known", "--cpus", "1000"}, "invalid --cpus '1000'"},
        BadAgentInput{"SetMemoryZero", {"agent", "set", "known", "--memory", "0"}, "invalid --memory '0'"},
        BadAgentInput{"CreateUnknownTemplate", {"agent", "create", "new", "--template", "nosuch"}, "unknown template"},
        BadAgentInput{"EnvBadKey", {"env", "set", "known", "1A=x"}, "invalid environment entry '1A=x'"},
        BadAgentInput{"RunTimeoutNone", {"agent", "minimal", "known", "--timeout", "none", "--", "true"},
                      "invalid --timeout 'none'"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace zwrm::integration
