// Bad input to `zwrm run`: each is one line on stderr, "zwrm: error: ...",
// exit code 125, and loses nothing: the existing volume keeps its bytes and
// no run is recorded.
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

namespace fs = std::filesystem;

// The project every case could damage, created with a small volume.
constexpr const char* kProject = "keep";

// Returns why stderr is not exactly one "zwrm: error:" line free of
// control characters, or an empty string when it is.
std::string check_error_line(const Outcome& outcome) {
  const std::string err = strip_leading_progress(outcome.err);
  if (!err.starts_with("zwrm: error: ")) return "stderr does not start with 'zwrm: error: '";
  if (err.find('\n') != err.size() - 1) return "stderr is not exactly one line";
  for (std::size_t i = 0; i + 1 < err.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(err[i]);
    if (c < 0x20 || c == 0x7f) return "stderr contains the raw control byte " + std::to_string(c) + " at offset " + std::to_string(i);
  }
  return {};
}

struct BadInput {
  std::string name;
  std::vector<std::string> args;
  std::string expected_fragment;  // part of the one error line
};

void PrintTo(const BadInput& input, std::ostream* stream) { *stream << input.name; }

// Creates project kProject with a file on its volume and records what a
// failed command must not change.
class ExistingProject : public ::testing::Test {
 protected:
  void SetUp() override {
    const Outcome created = home_.zwrm(
        run_args(kProject, {"sh", "-c", "echo precious > /workspace/kept.txt"}, {"--disk", "64M"}));
    ASSERT_EQ(created.exit_code, 0) << created;
    volume_digest_ = home_.volume_digest(kProject);
    ASSERT_FALSE(volume_digest_.empty());
    event_count_ = home_.event_count();
    run_count_ = home_.runs(/*all=*/true).size();
  }

  // Checks that the failed command changed nothing the user had.
  void expect_nothing_lost() {
    EXPECT_EQ(home_.volume_digest(kProject), volume_digest_) << "the volume changed";
    EXPECT_EQ(home_.event_count(), event_count_) << "events were recorded";
    EXPECT_EQ(home_.runs(/*all=*/true).size(), run_count_) << "a run was recorded";
    EXPECT_TRUE(home_.runs(/*all=*/false).empty()) << "zwrm ps lists a live run";
    EXPECT_TRUE(home_.run_directories().empty());
    EXPECT_TRUE(home_.vmm_pids().empty());
  }

  TestHome home_;
  std::string volume_digest_;
  std::int64_t event_count_ = 0;
  std::size_t run_count_ = 0;
};

class BadRunInput : public ExistingProject, public ::testing::WithParamInterface<BadInput> {};

TEST_P(BadRunInput, FailsWithOneLineAndLosesNothing) {
  const BadInput& input = GetParam();
  const Outcome run = home_.zwrm(input.args, {.timeout = 60s});
  EXPECT_EQ(run.exit_code, 125) << run;
  EXPECT_EQ(run.out, "") << run;
  EXPECT_EQ(check_error_line(run), "") << run;
  EXPECT_NE(run.err.find(input.expected_fragment), std::string::npos)
      << "expected the error to contain: " << input.expected_fragment << "\n"
      << run;
  expect_nothing_lost();
}

std::vector<std::string> keep_run(const std::vector<std::string>& options) {
  return run_args(kProject, {"true"}, options);
}

std::vector<std::string> project_run(const std::string& project) { return run_args(project, {"true"}); }

INSTANTIATE_TEST_SUITE_P(
    BadInput, BadRunInput,
    ::testing::Values(
        BadInput{"UnknownTemplate", keep_run({"--template", "nosuch"}), "unknown template 'nosuch'"},
        BadInput{"NoCommand", {"run", "--project", kProject}, "no command"},
        BadInput{"NoCommandAfterSeparator", {"run", "--project", kProject, "--"}, "no command"},
        BadInput{"ProjectWithSlash", project_run("a/b"), "invalid project name 'a/b'"},
        BadInput{"ProjectDotDot", project_run(".."), "invalid project name '..'"},
        BadInput{"ProjectUppercase", project_run("Keep"), "invalid project name 'Keep'"},
        BadInput{"ProjectNewline", project_run("ke\nep"), "invalid project name 'ke\\x0aep'"},
        BadInput{"ProjectEscape", project_run("ke\x1b[31mep"), "invalid project name 'ke\\x1b[31mep'"},
        BadInput{"DiskTooSmall", keep_run({"--disk", "1M"}), "invalid --disk '1M'"},
        BadInput{"DiskDiffersFromVolume", keep_run({"--disk", "128M"}), "already has a 64 MiB volume"},
        BadInput{"MemoryZero", {"run", "--project", kProject, "--memory", "0", "--", "true"}, "invalid --memory '0'"},
        BadInput{"CpusTooMany", keep_run({"--cpus", "1000"}), "invalid --cpus '1000'"},
        BadInput{"TimeoutZero", keep_run({"--timeout", "0"}), "invalid --timeout '0'"},
        BadInput{"TimeoutNotDuration", keep_run({"--timeout", "abc"}), "'abc'"},
        BadInput{"AccelUnknown", keep_run({"--accel", "fast"}), "invalid accelerator 'fast'"},
        BadInput{"JailModeUnknown", keep_run({"--jail", "none"}), "invalid jail mode 'none'; use full, partial or off"},
        BadInput{"EnvWithoutValue", keep_run({"-e", "NOVALUE"}), "invalid environment entry 'NOVALUE'"},
        BadInput{"MisspelledOption", keep_run({"--tmeout", "5s"}), "--tmeout"},
        BadInput{"EmptyDisk", keep_run({"--disk", ""}), "invalid --disk ''"},
        BadInput{"EmptyTimeout", keep_run({"--timeout", ""}), "invalid --timeout ''"},
        BadInput{"OversizedEnvironment", keep_run({"-e", "BIG=" + std::string(70'000, 'x')}),
                 "more than the 65536 bytes"},
        BadInput{"AgentMisspelledOption", {"agent", "--projcet", "x", "minimal", kProject}, "--projcet"}),
    [](const auto& info) { return info.param.name; });

TEST_F(ExistingProject, RejectedDiskSizeKeepsFiles) {
  const Outcome run = home_.zwrm(keep_run({"--disk", "128M"}));
  ASSERT_EQ(run.exit_code, 125) << run;

  const Outcome read = home_.zwrm(run_args(kProject, {"cat", "/workspace/kept.txt"}));
  EXPECT_EQ(read.exit_code, 0) << read;
  EXPECT_EQ(read.out, "precious\n") << read;
}

// Control bytes in any value the user passes must reach the terminal
// escaped as \xNN, because raw ones could drive the user's terminal.
struct ControlByteInput {
  std::string name;
  std::vector<std::string> args;
};

void PrintTo(const ControlByteInput& input, std::ostream* stream) { *stream << input.name; }

class ControlBytesInInput : public ::testing::TestWithParam<ControlByteInput> {};

TEST_P(ControlBytesInInput, AreEscapedInTheError) {
  TestHome home;
  const Outcome run = home.zwrm(GetParam().args);
  EXPECT_EQ(run.exit_code, 125) << run;
  EXPECT_EQ(check_error_line(run), "") << run;
  EXPECT_NE(run.err.find("\\x1b"), std::string::npos) << "the escape byte is not shown as \\x1b\n" << run;
}

constexpr const char* kEscape = "x\x1b[2J";

INSTANTIATE_TEST_SUITE_P(
    BadInput, ControlBytesInInput,
    ::testing::Values(ControlByteInput{"Template", run_args("esc", {"true"}, {"--template", kEscape})},
                      ControlByteInput{"Accel", run_args("esc", {"true"}, {"--accel", kEscape})},
                      ControlByteInput{"Disk", run_args("esc", {"true"}, {"--disk", kEscape})},
                      ControlByteInput{"Memory", {"run", "--memory", kEscape, "--", "true"}},
                      ControlByteInput{"Timeout", run_args("esc", {"true"}, {"--timeout", kEscape})},
                      ControlByteInput{"Cpus", run_args("esc", {"true"}, {"--cpus", kEscape})},
                      ControlByteInput{"Env", run_args("esc", {"true"}, {"-e", kEscape})},
                      ControlByteInput{"StopRunId", {"stop", kEscape}},
                      ControlByteInput{"LogsRunId", {"logs", kEscape}}),
    [](const auto& info) { return info.param.name; });

// KVM that cannot run guests (as on hosts whose /dev/kvm fails on MSR
// writes) must be reported, not hang or fall back silently. Uses a private
// cache without the probe verdict, so the probe boot really runs.
TEST(BadInput, UnusableKvmIsReported) {
  TestHome home;
  const std::string cache = home.scratch() + "/cache";
  ASSERT_EQ(copy_cache(cache, /*accel_verdict=*/false), "");
  home.set_cache(cache);

  const Outcome run = home.zwrm(run_args("kvm", {"true"}, {"--accel", "kvm"}), {.timeout = 60s});
  ASSERT_FALSE(run.timed_out) << run;
  if (run.exit_code == 0) {
    // KVM works on this host: the run must really have used it.
    const std::vector<nlohmann::json> runs = home.runs(/*all=*/true);
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0]["accel"], "kvm");
    GTEST_SKIP() << "KVM works on this host, so there is no unusable KVM to report";
  }
  EXPECT_EQ(run.exit_code, 125) << run;
  EXPECT_EQ(check_error_line(run), "") << run;
  EXPECT_NE(run.err.find("KVM"), std::string::npos) << run;
  EXPECT_NE(run.err.find("--accel tcg"), std::string::npos) << run;
  EXPECT_LT(run.elapsed, 30s) << run;
  EXPECT_TRUE(home.vmm_pids().empty());
  EXPECT_TRUE(home.runs(/*all=*/true).empty());
}

// zwrm validates a run before it creates anything, so a rejected first run
// of a project leaves no volume and no project behind.
TEST(BadInput, UnusableKvmCreatesNoVolume) {
  TestHome home;
  const Outcome run = home.zwrm(run_args("fresh", {"true"}, {"--accel", "kvm"}), {.timeout = 60s});
  if (run.exit_code == 0) GTEST_SKIP() << "KVM works on this host";
  ASSERT_EQ(run.exit_code, 125) << run;
  EXPECT_FALSE(fs::exists(home.volume_path("fresh"))) << "the rejected run created a volume";
  EXPECT_EQ(home.event_count(), 0) << "the rejected run recorded events";
}

// Fills the first MiB of a cached template image with 0xff, the ext4
// superblock included. With keep_mtime, it restores the image's mtime, so
// zwrm's size-and-mtime check of the cache cannot notice the change.
void damage_image(const std::string& image, bool keep_mtime) {
  struct stat before {};
  ASSERT_EQ(::stat(image.c_str(), &before), 0) << image;
  ASSERT_EQ(::chmod(image.c_str(), 0644), 0) << image;
  {
    std::fstream file(image, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(file.is_open()) << image;
    const std::string garbage(1 << 20, '\xff');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  ASSERT_EQ(::chmod(image.c_str(), 0444), 0) << image;
  if (keep_mtime) {
    const timespec times[2] = {before.st_atim, before.st_mtim};
    ASSERT_EQ(::utimensat(AT_FDCWD, image.c_str(), times, 0), 0) << image;
  }
}

// Returns the image of the minimal template in a private cache copy.
std::string private_minimal_image(TestHome& home) {
  const std::string cache = home.scratch() + "/cache";
  EXPECT_EQ(copy_cache(cache, /*accel_verdict=*/true), "");
  home.set_cache(cache);
  for (const fs::directory_entry& entry : fs::directory_iterator(cache + "/templates")) {
    if (entry.path().filename().string().starts_with("minimal-")) return entry.path().string() + "/rootfs.ext4";
  }
  ADD_FAILURE() << "no minimal template in " << cache;
  return {};
}

TEST(BadInput, ChangedTemplateImageIsReportedBeforeBoot) {
  TestHome home;
  const std::string image = private_minimal_image(home);
  ASSERT_FALSE(image.empty());
  damage_image(image, /*keep_mtime=*/false);

  const Outcome run = home.zwrm(run_args("corrupt", {"echo", "booted"}));
  EXPECT_EQ(run.exit_code, 125) << run;
  EXPECT_EQ(run.out, "") << run;
  EXPECT_EQ(check_error_line(run), "") << run;
  EXPECT_NE(run.err.find("zwrm template build minimal --force"), std::string::npos) << run;
  EXPECT_TRUE(home.runs(/*all=*/true).empty()) << "a VM was started";
}

TEST(BadInput, CorruptTemplateImageFailsBoot) {
  TestHome home;
  const std::string image = private_minimal_image(home);
  ASSERT_FALSE(image.empty());
  damage_image(image, /*keep_mtime=*/true);

  const Outcome run = home.zwrm(run_args("corrupt", {"echo", "booted"}));
  EXPECT_EQ(run.exit_code, 125) << run;
  EXPECT_EQ(run.out, "") << run;
  EXPECT_EQ(check_error_line(run), "") << run;
  EXPECT_NE(run.err.find("template image may be corrupt"), std::string::npos) << run;
  const std::vector<nlohmann::json> runs = home.runs(/*all=*/true);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["stop_cause"], "boot-failed");
  EXPECT_TRUE(home.vmm_pids().empty());
  EXPECT_TRUE(home.run_directories().empty());
}

// Commands and environment travel to the guest as UTF-8 text: other bytes
// are an error before anything starts, not a crash.
TEST(BadInput, NonUtf8ArgumentsRejected) {
  TestHome home;
  const Outcome argument = home.zwrm(run_args("utf", {"echo", "caf\xe9"}));
  EXPECT_EQ(argument.exit_code, 125) << argument;
  EXPECT_EQ(argument.err, "zwrm: error: argument 2 of the command ('caf\\xe9') is not valid UTF-8; zwrm passes "
                          "commands to the guest as UTF-8 text\n")
      << argument;
  const Outcome variable = home.zwrm(run_args("utf", {"true"}, {"-e", "K=\xfe"}));
  EXPECT_EQ(variable.exit_code, 125) << variable;
  EXPECT_NE(variable.err.find("environment variable K is not valid UTF-8"), std::string::npos) << variable;
  EXPECT_TRUE(home.vmm_pids().empty());

  ASSERT_EQ(home.zwrm({"agent", "create", "utf", "--template", "minimal"}).exit_code, 0);
  const Outcome stored = home.zwrm({"env", "set", "utf", "K=\xff"});
  EXPECT_EQ(stored.exit_code, 125) << stored;
  EXPECT_NE(stored.err.find("is not valid UTF-8"), std::string::npos) << stored;
}

}  // namespace
}  // namespace zwrm::integration
