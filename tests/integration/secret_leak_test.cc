// A secret reaches the agent's process and is found nowhere else: not in
// host process listings, the guest's kernel command line or init
// environment, logs, the database or any command's output.
#include <dirent.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

// Command lines and environments of every host process named zwrm or qemu.
std::vector<std::pair<std::string, std::string>> zwrm_and_vmm_processes() {
  std::vector<std::pair<std::string, std::string>> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmdline = read_bytes("/proc/" + pid + "/cmdline");
    if (cmdline.find("zwrm") == std::string::npos && cmdline.find("qemu") == std::string::npos) continue;
    found.emplace_back("/proc/" + pid + "/cmdline", cmdline);
    found.emplace_back("/proc/" + pid + "/environ", read_bytes("/proc/" + pid + "/environ"));
  }
  return found;
}

TEST(Secrets, ValueReachesProcessAndNowhereElse) {
  TestHome home;
  const std::string value = "zwrm-test-secret-" + sha256_hex(home.home()).substr(0, 24);
  ASSERT_EQ(home.zwrm({"agent", "create", "vault", "--template", "minimal", "--memory", kSmallMemory}).exit_code, 0);
  const Outcome set = home.zwrm({"secret", "set", "vault", "API_TOKEN"}, {.stdin_bytes = value + "\n"});
  ASSERT_EQ(set.exit_code, 0) << set;
  EXPECT_EQ(set.out.find(value), std::string::npos);
  EXPECT_EQ(set.err.find(value), std::string::npos);

  // As root in the guest: prove delivery by a digest, and print what must
  // not hold the value. Then wait so the host side can be inspected.
  const std::string script =
      "printf %s \"$API_TOKEN\" | sha256sum | cut -d' ' -f1; cat /proc/cmdline; "
      "tr '\\0' '\\n' < /proc/1/environ; echo ready; sleep 3";
  auto client = home.start({"agent", "minimal", "vault", "--root", "--", "sh", "-c", script});
  ASSERT_TRUE(client->wait_for_output("ready\n", 90s)) << client->err();
  for (const auto& [where, content] : zwrm_and_vmm_processes()) {
    EXPECT_EQ(content.find(value), std::string::npos) << "the secret is in " << where;
  }
  const std::optional<Outcome> run = client->wait(60s);
  ASSERT_TRUE(run.has_value());
  ASSERT_EQ(run->exit_code, 0) << *run;
  const std::vector<std::string> lines = split_lines(run->out);
  ASSERT_GE(lines.size(), 2u) << *run;
  EXPECT_EQ(lines[0], sha256_hex(value)) << "the process did not get the secret";
  EXPECT_EQ(run->out.find(value), std::string::npos) << "guest /proc/cmdline or /proc/1/environ holds the secret";
  EXPECT_EQ(run->err.find(value), std::string::npos);

  // Everything zwrm wrote under ZWRM_HOME: database (and WAL), logs.
  for (const auto& entry : fs::recursive_directory_iterator(home.home())) {
    if (!entry.is_regular_file() || entry.path().extension() == ".ext4") continue;
    EXPECT_EQ(read_bytes(entry.path()).find(value), std::string::npos) << "the secret is in " << entry.path();
  }
  // Each output names what it lists, never the value.
  const std::vector<std::pair<std::vector<std::string>, std::string>> outputs = {
      {{"agent", "show", "vault"}, "API_TOKEN"},
      {{"agent", "show", "vault", "--json"}, "API_TOKEN"},
      {{"agent", "ls", "--json"}, "vault"},
      {{"secret", "ls", "vault"}, "API_TOKEN"},
      {{"ps", "-a", "--json"}, "vault"},
  };
  for (const auto& [args, expected] : outputs) {
    const Outcome output = home.zwrm(args);
    EXPECT_EQ(output.exit_code, 0) << output;
    EXPECT_EQ(output.out.find(value), std::string::npos) << "the secret is in the output of zwrm " << args[0];
    EXPECT_NE(output.out.find(expected), std::string::npos) << output;
  }
}

}  // namespace
}  // namespace zwrm::integration
