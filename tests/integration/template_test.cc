// Agent templates and user templates: Claude Code and the Codex CLI run in
// their VMs, a template file becomes a user template with its Debian and
// npm packages, and `zwrm template ls` and `rm` manage it.
#include <csignal>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

namespace fs = std::filesystem;

// Node.js programs need more memory than the small test VMs have.
constexpr const char* kAgentMemory = "2G";

// A user template with a Debian package and an npm package, each with a
// command to run. The shared cache keeps its image between test runs,
// because the key covers this exact text.
constexpr std::string_view kToolsTemplate = R"(# The user template of zwrm's template integration test.
name = "zt-tools"
description = "jq and cowsay"
base = "debian"
packages = ["bash", "jq"]
npm = ["cowsay@1.6.0"]
run = ["cowsay built > /etc/zt-built"]
command = ["/bin/bash", "-l"]
)";

// A busybox user template, which builds in seconds without the network.
constexpr std::string_view kMiniTemplate = R"(name = "zt-mini"
description = "busybox user template"
base = "busybox"
command = ["/bin/sh", "-l"]
)";

std::string write_file(const std::string& path, std::string_view text) {
  std::ofstream(path) << text;
  return path;
}

// Returns the object `zwrm template ls --json` lists for name, or null.
nlohmann::json listed_template(TestHome& home, const std::string& name) {
  const Outcome listed = home.zwrm({"template", "ls", "--json"});
  EXPECT_EQ(listed.exit_code, 0) << listed;
  const nlohmann::json rows = nlohmann::json::parse(listed.out, nullptr, false);
  EXPECT_TRUE(rows.is_array()) << listed;
  if (!rows.is_array()) return nullptr;
  for (const nlohmann::json& row : rows) {
    if (row.value("name", "") == name) return row;
  }
  return nullptr;
}

// Returns the single stderr line of a failed zwrm, without progress lines.
std::string error_line(const Outcome& outcome) { return strip_leading_progress(outcome.err); }

TEST(AgentTemplates, ClaudeCodeReportsItsVersion) {
  TestHome home;
  const Outcome run =
      home.zwrm({"agent", "--memory", kAgentMemory, "claude", "demo", "--", "claude", "--version"}, {.timeout = 180s});
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_TRUE(std::regex_match(run.out, std::regex(R"([0-9]+\.[0-9]+\.[0-9]+ \(Claude Code\)\r?\n)"))) << run;
}

TEST(AgentTemplates, CodexReportsItsVersion) {
  TestHome home;
  const Outcome run =
      home.zwrm({"agent", "--memory", kAgentMemory, "codex", "demo", "--", "codex", "--version"}, {.timeout = 180s});
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_TRUE(std::regex_match(run.out, std::regex(R"(codex-cli [0-9]+\.[0-9]+\.[0-9]+\S*\r?\n)"))) << run;
}

TEST(AgentTemplates, BuildLeftNoCaOrNpmCache) {
  TestHome home;
  const Outcome run = home.zwrm(
      {"run", "--root", "--template", "claude", "--memory", kAgentMemory, "--", "sh", "-c",
       "ls -A /tmp /root; ls /usr/local/share/ca-certificates; find / -xdev -name _cacache -print -quit"},
      {.timeout = 180s});
  EXPECT_EQ(run.exit_code, 0) << run;
  // /tmp is empty, /root has only Debian's dot files, no extra CA is
  // installed and no npm cache exists anywhere.
  EXPECT_EQ(run.out, "/root:\n.bashrc\n.profile\n\n/tmp:\n") << run;
}

TEST(UserTemplate, BuildsFromFileWithDebianAndNpmPackages) {
  TestHome home;
  const std::string file = write_file(home.scratch() + "/tools.toml", kToolsTemplate);
  const Outcome built = home.zwrm({"template", "build", file}, {.timeout = 14min});
  ASSERT_EQ(built.exit_code, 0) << built;
  EXPECT_TRUE(built.out.starts_with("zt-tools  ")) << built;
  const std::string saved = home.home() + "/templates/zt-tools.toml";
  EXPECT_TRUE(fs::exists(saved));
  std::ifstream saved_stream(saved);
  const std::string saved_text((std::istreambuf_iterator<char>(saved_stream)), std::istreambuf_iterator<char>());
  EXPECT_EQ(saved_text, kToolsTemplate);

  const nlohmann::json row = listed_template(home, "zt-tools");
  ASSERT_TRUE(row.is_object());
  EXPECT_EQ(row["source"], "user");
  EXPECT_EQ(row["description"], "jq and cowsay");
  EXPECT_EQ(row["image"]["cached"], true) << row.dump();

  const Outcome run = home.zwrm({"agent", "--memory", "1G", "zt-tools", "tools", "--", "sh", "-c",
                                 "echo '{\"a\": 42}' | jq .a; cowsay -W 20 moo | head -2 | tail -1; cat /etc/zt-built "
                                 "| head -2 | tail -1"},
                                {.timeout = 180s});
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out, "42\n< moo >\n< built >\n") << run;
}

TEST(UserTemplate, RemoveDeletesDefinitionAndImages) {
  TestHome home;
  home.set_cache(home.scratch() + "/cache");
  ASSERT_EQ(copy_cache(home.cache(), /*accel_verdict=*/true), "");
  const std::string file = write_file(home.scratch() + "/mini.toml", kMiniTemplate);
  const Outcome built = home.zwrm({"template", "build", file});
  ASSERT_EQ(built.exit_code, 0) << built;
  const nlohmann::json row = listed_template(home, "zt-mini");
  ASSERT_TRUE(row.is_object());
  ASSERT_EQ(row["image"]["cached"], true) << row.dump();
  const fs::path image = row["image"]["path"].get<std::string>();
  ASSERT_TRUE(fs::exists(image));

  const Outcome ls = home.zwrm({"template", "ls"});
  EXPECT_EQ(ls.exit_code, 0) << ls;
  EXPECT_NE(ls.out.find("\nzt-mini "), std::string::npos) << ls;

  const Outcome removed = home.zwrm({"template", "rm", "zt-mini"});
  EXPECT_EQ(removed.exit_code, 0) << removed;
  EXPECT_EQ(removed.out, "removed user template zt-mini and 1 cached image (32 MiB)\n") << removed;
  EXPECT_FALSE(fs::exists(image.parent_path()));
  EXPECT_FALSE(fs::exists(home.home() + "/templates/zt-mini.toml"));
  EXPECT_TRUE(listed_template(home, "zt-mini").is_null());

  const Outcome run = home.zwrm(run_args("gone", {"true"}, {"--template", "zt-mini"}));
  EXPECT_EQ(run.exit_code, 125) << run;
  EXPECT_NE(error_line(run).find("unknown template 'zt-mini'"), std::string::npos) << run;
}

TEST(UserTemplate, RemoveRefusesImageOfRunningVm) {
  TestHome home;
  home.set_cache(home.scratch() + "/cache");
  ASSERT_EQ(copy_cache(home.cache(), /*accel_verdict=*/true), "");
  const std::string file = write_file(home.scratch() + "/mini.toml", kMiniTemplate);
  ASSERT_EQ(home.zwrm({"template", "build", file}).exit_code, 0);

  auto running = home.start(run_args("busy", {"sh", "-c", "echo ready; sleep 60"}, {"--template", "zt-mini"}));
  ASSERT_TRUE(running->wait_for_output("ready", 60s)) << running->err();
  const Outcome refused = home.zwrm({"template", "rm", "zt-mini"});
  EXPECT_EQ(refused.exit_code, 125) << refused;
  EXPECT_NE(error_line(refused).find("is in use by process"), std::string::npos) << refused;
  EXPECT_TRUE(fs::exists(home.home() + "/templates/zt-mini.toml"));
  EXPECT_EQ(listed_template(home, "zt-mini")["image"]["cached"], true);

  running->send_signal(SIGTERM);
  ASSERT_TRUE(running->wait(30s).has_value());
  const Outcome removed = home.zwrm({"template", "rm", "zt-mini"});
  EXPECT_EQ(removed.exit_code, 0) << removed;
}

TEST(UserTemplate, BuiltInTemplatesAreKept) {
  TestHome home;
  home.set_cache(home.scratch() + "/cache");
  ASSERT_EQ(copy_cache(home.cache(), /*accel_verdict=*/true), "");

  const Outcome refused = home.zwrm({"template", "rm", "minimal"});
  EXPECT_EQ(refused.exit_code, 125) << refused;
  EXPECT_EQ(error_line(refused),
            "zwrm: error: template minimal is built in and cannot be removed; `zwrm template rm minimal --images` "
            "removes its cached images\n")
      << refused;
  EXPECT_EQ(listed_template(home, "minimal")["image"]["cached"], true);

  const Outcome images = home.zwrm({"template", "rm", "minimal", "--images"});
  EXPECT_EQ(images.exit_code, 0) << images;
  EXPECT_EQ(images.out, "removed 1 cached image (32 MiB) of template minimal\n") << images;
  const nlohmann::json row = listed_template(home, "minimal");
  EXPECT_EQ(row["source"], "built-in");
  EXPECT_EQ(row["image"]["cached"], false);
}

TEST(UserTemplate, MalformedFileGivesOneErrorLine) {
  TestHome home;
  const std::string file =
      write_file(home.scratch() + "/bad.toml",
                 "name = \"zt-bad\"\nbase = \"debian\"\nnpm = [\"git+https://x/y\"]\ncommand = [\"/bin/sh\"]\n");
  const Outcome built = home.zwrm({"template", "build", file});
  EXPECT_EQ(built.exit_code, 125) << built;
  EXPECT_EQ(built.out, "") << built;
  EXPECT_EQ(built.err.rfind("zwrm: error: " + file + ":3: invalid npm package 'git+https://x/y': it is a URL", 0), 0u)
      << built;
  EXPECT_EQ(std::count(built.err.begin(), built.err.end(), '\n'), 1) << built;
  EXPECT_FALSE(fs::exists(home.home() + "/templates/zt-bad.toml"));
}

TEST(UserTemplate, NameCollisionsRejected) {
  TestHome home;
  const std::string builtin =
      write_file(home.scratch() + "/debian.toml", "base = \"busybox\"\nname = \"debian\"\ncommand = [\"/bin/sh\"]\n");
  const Outcome taken = home.zwrm({"template", "build", builtin});
  EXPECT_EQ(taken.exit_code, 125) << taken;
  EXPECT_EQ(taken.err, "zwrm: error: " + builtin +
                           ":2: template name 'debian' belongs to a built-in template; choose another name\n")
      << taken;

  const std::string reserved =
      write_file(home.scratch() + "/ls.toml", "name = \"ls\"\nbase = \"busybox\"\ncommand = [\"/bin/sh\"]\n");
  const Outcome ls = home.zwrm({"template", "build", reserved});
  EXPECT_EQ(ls.exit_code, 125) << ls;
  EXPECT_EQ(ls.err, "zwrm: error: " + reserved +
                        ":1: template name 'ls' is reserved for the command `zwrm agent ls`; choose another name\n")
      << ls;
  EXPECT_FALSE(fs::exists(home.home() + "/templates"));
}

}  // namespace
}  // namespace zwrm::integration
