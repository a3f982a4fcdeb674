// `zwrm cp`: files into an agent's /workspace and out of its guest, through
// a run of the agent, each copy recorded in the audit log.
#include <sys/stat.h>

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

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::vector<std::string> cp_args(const std::string& source, const std::string& destination) {
  return {"cp", "--memory", kSmallMemory, source, destination};
}

// Creates the agent a test copies to and from: zwrm cp never creates one.
void create_agent(TestHome& home, const std::string& name, const std::string& disk = "64M") {
  const Outcome created =
      home.zwrm({"agent", "create", name, "--template", "minimal", "--memory", kSmallMemory, "--disk", disk});
  ASSERT_EQ(created.exit_code, 0) << created;
}

TEST(Copy, InAndOutKeepBytesAndMode) {
  TestHome home;
  create_agent(home, "copy");
  std::string bytes;
  for (int i = 0; i < 300 * 1024; ++i) bytes.push_back(static_cast<char>(i % 251));
  const std::string source = home.scratch() + "/data.bin";
  write_bytes(source, bytes);
  ASSERT_EQ(::chmod(source.c_str(), 0640), 0);

  const Outcome in = home.zwrm(cp_args(source, "copy:dir/sub/data.bin"));
  ASSERT_EQ(in.exit_code, 0) << in;
  const Outcome listed = home.zwrm(run_args("copy", {"stat", "-c", "%a %s %U", "/workspace/dir/sub/data.bin"}));
  EXPECT_EQ(listed.out, "640 307200 agent\n") << listed;

  const std::string back = home.scratch() + "/back";
  fs::create_directory(back);
  const Outcome out = home.zwrm(cp_args("copy:/workspace/dir/sub/data.bin", back));
  ASSERT_EQ(out.exit_code, 0) << out;
  EXPECT_EQ(read_bytes(back + "/data.bin"), bytes);

  const std::vector<nlohmann::json> copied_in = home.events("file.copy_in");
  const std::vector<nlohmann::json> copied_out = home.events("file.copy_out");
  ASSERT_EQ(copied_in.size(), 1u);
  ASSERT_EQ(copied_out.size(), 1u);
  EXPECT_EQ(copied_in[0]["guest_path"], "/workspace/dir/sub/data.bin");
  EXPECT_EQ(copied_in[0]["host_path"], source);
  EXPECT_EQ(copied_in[0]["bytes"], bytes.size());
  EXPECT_EQ(copied_in[0]["sha256"], sha256_hex(bytes));
  EXPECT_EQ(copied_out[0]["host_path"], back + "/data.bin");
  EXPECT_EQ(copied_out[0]["sha256"], sha256_hex(bytes));
}

TEST(Copy, FailedCopyOutKeepsDestination) {
  TestHome home;
  create_agent(home, "copy");
  const std::string destination = home.scratch() + "/kept.txt";
  write_bytes(destination, "old content\n");

  const Outcome out = home.zwrm(cp_args("copy:missing.txt", destination));
  EXPECT_NE(out.exit_code, 0) << out;
  EXPECT_NE(out.err.find("zwrm: error: copying /workspace/missing.txt out of the guest failed"), std::string::npos)
      << out;
  EXPECT_EQ(read_bytes(destination), "old content\n");
  // No temporary file is left beside it.
  EXPECT_EQ(std::distance(fs::directory_iterator(home.scratch()), fs::directory_iterator()), 1);
  const std::vector<nlohmann::json> copies = home.events("file.copy_out");
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0]["result"], "failed");
  EXPECT_FALSE(copies[0].contains("sha256"));
}

TEST(Copy, PathIsNeverShellSyntax) {
  TestHome home;
  create_agent(home, "copy");
  const std::string source = home.scratch() + "/a.txt";
  write_bytes(source, "payload\n");
  const std::string name = "odd name; touch pwned $(touch pwned2) `touch pwned3`";

  const Outcome in = home.zwrm(cp_args(source, "copy:" + name));
  ASSERT_EQ(in.exit_code, 0) << in;
  const Outcome listed = home.zwrm(run_args("copy", {"ls", "-1", "/workspace"}));
  EXPECT_NE(listed.out.find(name + "\n"), std::string::npos) << listed;
  EXPECT_EQ(listed.out.find("pwned"), listed.out.find(name) + name.find("pwned")) << listed;
  EXPECT_EQ(listed.out.find("\npwned"), std::string::npos) << listed;
}

// A copy that fails half way (the volume fills up) leaves the file it was
// to replace as it was, and no partial file. The audit log records the
// failure.
TEST(Copy, FailedCopyInKeepsOldFile) {
  TestHome home;
  create_agent(home, "small", "64M");
  ASSERT_EQ(home.zwrm(run_args("small", {"sh", "-c", "echo important > /workspace/notes.txt"})).exit_code, 0);
  const std::string big = home.scratch() + "/big.bin";
  std::string bytes(80 << 20, 'x');
  write_bytes(big, bytes);

  const Outcome in = home.zwrm(cp_args(big, "small:notes.txt"), {.timeout = 180s});
  EXPECT_NE(in.exit_code, 0) << in;
  EXPECT_NE(in.err.find("/workspace/notes.txt is unchanged"), std::string::npos) << in;
  const Outcome listed = home.zwrm(run_args("small", {"sh", "-c", "cat notes.txt; ls -A /workspace"}));
  EXPECT_EQ(listed.out.substr(0, listed.out.find('\n') + 1), "important\n") << listed;
  EXPECT_EQ(listed.out.find("zwrm-copy"), std::string::npos) << listed;
  const std::vector<nlohmann::json> copies = home.events("file.copy_in");
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0]["result"], "failed");
}

// A guest file that is a link to a device would never end: only regular
// files are copied out.
TEST(Copy, DeviceBehindLinkNotCopiedOut) {
  TestHome home;
  create_agent(home, "copy");
  ASSERT_EQ(home.zwrm(run_args("copy", {"ln", "-s", "/dev/zero", "/workspace/report.md"})).exit_code, 0);
  const std::string destination = home.scratch() + "/report.md";
  const Outcome out = home.zwrm(cp_args("copy:report.md", destination), {.timeout = 60s});
  EXPECT_NE(out.exit_code, 0) << out;
  EXPECT_NE(out.err.find("is not a regular file"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(destination));
}

TEST(Copy, UnknownAgentNotCreated) {
  TestHome home;
  write_bytes(home.scratch() + "/a.txt", "x");
  const Outcome in = home.zwrm(cp_args(home.scratch() + "/a.txt", "ghost:a.txt"));
  EXPECT_EQ(in.exit_code, 125) << in;
  EXPECT_NE(in.err.find("no agent named ghost"), std::string::npos) << in;
  const Outcome out = home.zwrm(cp_args("ghost:a.txt", home.scratch() + "/b.txt"));
  EXPECT_EQ(out.exit_code, 125) << out;
  EXPECT_EQ(home.zwrm({"agent", "ls"}).out.find("ghost"), std::string::npos);
}

struct BadCopy {
  const char* name;
  std::vector<std::string> args;  // after `zwrm cp`
  const char* message;
};

class BadCopyInput : public ::testing::TestWithParam<BadCopy> {};

TEST_P(BadCopyInput, FailsWithOneLine) {
  TestHome home;
  write_bytes(home.scratch() + "/file", "x");
  std::vector<std::string> args = {"cp"};
  for (const std::string& arg : GetParam().args) {
    args.push_back(arg.starts_with("SCRATCH") ? home.scratch() + arg.substr(7) : arg);
  }
  const Outcome outcome = home.zwrm(args, {.timeout = 30s});
  EXPECT_EQ(outcome.exit_code, 125) << outcome;
  const std::vector<std::string> lines = split_lines(outcome.err);
  ASSERT_EQ(lines.size(), 1u) << outcome;
  EXPECT_TRUE(lines[0].starts_with("zwrm: error: ")) << outcome;
  EXPECT_NE(lines[0].find(GetParam().message), std::string::npos) << outcome;
  EXPECT_TRUE(home.runs(/*all=*/true).empty()) << "a bad copy started a run";
}

INSTANTIATE_TEST_SUITE_P(
    Copy, BadCopyInput,
    ::testing::Values(BadCopy{"BothOnHost", {"SCRATCH/file", "SCRATCH/other"}, "exactly one side as AGENT:PATH"},
                      BadCopy{"BothInGuests", {"a:x", "b:y"}, "exactly one side as AGENT:PATH"},
                      BadCopy{"OutsideWorkspace", {"SCRATCH/file", "copy:/etc/passwd"}, "only files under /workspace"},
                      BadCopy{"EscapesWorkspace", {"SCRATCH/file", "copy:../etc/passwd"},
                              "invalid destination /etc/passwd"},
                      BadCopy{"SourceIsDirectory", {"SCRATCH", "copy:x"}, "is not a regular file"},
                      BadCopy{"SourceMissing", {"SCRATCH/none", "copy:x"}, "cannot open"}),
    [](const ::testing::TestParamInfo<BadCopy>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace zwrm::integration
