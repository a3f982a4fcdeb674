#include "host/sys/process.h"

#include <gtest/gtest.h>

namespace zwrm::sys {
namespace {

TEST(Process, CapturesOutputAndStatus) {
  auto result = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_NE(result->output.find("out\n"), std::string::npos);
  EXPECT_NE(result->output.find("err\n"), std::string::npos);
  EXPECT_FALSE(result->succeeded());
  EXPECT_EQ(result->describe(), "exited with status 3: err");
}

TEST(Process, DescribePrefersLineSayingError) {
  auto result = run_process({"sh", "-c", "echo 'qemu: error: failed to set MSR'; echo 'Assertion failed.'; exit 1"});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->describe(), "exited with status 1: qemu: error: failed to set MSR");
}

TEST(Process, FeedsStdinAndStreamsLines) {
  std::vector<std::string> lines;
  ProcessOptions options;
  options.stdin_data = "one\ntwo\n";
  options.on_line = [&](std::string_view line) { lines.emplace_back(line); };
  auto result = run_process({"cat"}, options);
  ASSERT_TRUE(result);
  EXPECT_TRUE(result->succeeded());
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two"}));
}

TEST(Process, KillsAtTimeout) {
  ProcessOptions options;
  options.timeout = std::chrono::milliseconds(200);
  auto result = run_process({"sleep", "10"}, options);
  ASSERT_TRUE(result);
  EXPECT_TRUE(result->timed_out);
  EXPECT_FALSE(result->succeeded());
}

TEST(Process, MissingProgramIsError) {
  auto result = run_process({"zwrm-no-such-program"});
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("not found in PATH"), std::string::npos);
}

}  // namespace
}  // namespace zwrm::sys
