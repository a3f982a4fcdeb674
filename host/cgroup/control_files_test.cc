// Control-file tests on ordinary directories that mimic a cgroup, so the
// cgroup v2 files are covered on hosts without cgroup v2 controllers too.
#include "host/cgroup/control_files.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include "host/sys/files.h"

namespace zwrm::cgroup {
namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;

class FakeCgroup : public ::testing::Test {
 protected:
  void SetUp() override {
    char path[] = "/tmp/zwrm-fake-cgroup.XXXXXX";
    ASSERT_NE(::mkdtemp(path), nullptr);
    directory_ = path;
  }
  void TearDown() override { ASSERT_TRUE(sys::remove_tree(directory_)); }

  // Creates files with the given content. Files that a test writes start
  // empty, because write_control() overwrites from the start without
  // truncating, as the kernel's control files need.
  void add_files(const std::vector<std::pair<std::string, std::string>>& files) {
    for (const auto& [name, content] : files) ASSERT_TRUE(sys::write_file_atomic(directory_ + "/" + name, content));
  }
  std::string content(const std::string& name) {
    auto text = sys::read_file(directory_ + "/" + name);
    return text ? *text : "<missing>";
  }

  std::string directory_;
};

TEST_F(FakeCgroup, ApplyLimitsV2WritesEachFile) {
  add_files({{"cpu.max", ""}, {"memory.max", ""}, {"memory.swap.max", ""}, {"pids.max", ""}});
  auto applied = apply_limits_v2(directory_, {.cpus = 2, .memory_bytes = 704 * kMiB, .pids = 256});
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_EQ(content("cpu.max"), "200000 100000");
  EXPECT_EQ(content("memory.max"), std::to_string(704 * kMiB));
  EXPECT_EQ(content("memory.swap.max"), "0");
  EXPECT_EQ(content("pids.max"), "256");
}

TEST_F(FakeCgroup, ApplyLimitsV2ZeroWritesMax) {
  add_files({{"cpu.max", ""}, {"memory.max", ""}, {"memory.swap.max", ""}, {"pids.max", ""}});
  ASSERT_TRUE(apply_limits_v2(directory_, {.cpus = 1}));
  EXPECT_EQ(content("memory.max"), "max");
  EXPECT_EQ(content("pids.max"), "max");
}

TEST_F(FakeCgroup, ApplyLimitsV2WithoutSwapAccounting) {
  add_files({{"cpu.max", ""}, {"memory.max", ""}, {"pids.max", ""}});
  auto applied = apply_limits_v2(directory_, {.cpus = 1, .memory_bytes = 64 * kMiB, .pids = 8});
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_EQ(content("memory.swap.max"), "<missing>");
  EXPECT_EQ(content("pids.max"), "8");
}

TEST_F(FakeCgroup, ApplyLimitsV2NamesMissingControllerFile) {
  auto applied = apply_limits_v2(directory_, {.cpus = 1});
  ASSERT_FALSE(applied);
  EXPECT_EQ(applied.error().errno_value, ENOENT);
  EXPECT_NE(applied.error().message.find(directory_ + "/cpu.max"), std::string::npos) << applied.error().message;
  EXPECT_NE(applied.error().message.find("controller that owns this file is not enabled"), std::string::npos);
}

TEST_F(FakeCgroup, ApplyLimitsV1WithoutMemswSetsSwappiness) {
  add_files({{"cpu.cfs_period_us", ""}, {"cpu.cfs_quota_us", ""}, {"memory.limit_in_bytes", ""},
             {"memory.swappiness", ""}, {"pids.max", ""}});
  const ControllerDirectories directories = {
      {"cpu", directory_}, {"cpuacct", directory_}, {"memory", directory_}, {"pids", directory_}};
  auto applied = apply_limits_v1(directories, {.cpus = 3, .memory_bytes = 64 * kMiB, .pids = 8});
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_EQ(content("cpu.cfs_period_us"), "100000");
  EXPECT_EQ(content("cpu.cfs_quota_us"), "300000");
  EXPECT_EQ(content("memory.limit_in_bytes"), std::to_string(64 * kMiB));
  EXPECT_EQ(content("memory.swappiness"), "0");
}

TEST_F(FakeCgroup, ReadUsageV2ParsesKernelFormat) {
  add_files({{"cpu.stat", "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n"},
             {"memory.current", "52428800\n"},
             {"pids.current", "7\n"},
             {"memory.max", "738197504\n"},
             {"memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n"}});
  auto usage = read_usage_v2(directory_);
  ASSERT_TRUE(usage) << usage.error().message;
  EXPECT_EQ(usage->cpu, std::chrono::microseconds(1234567));
  EXPECT_EQ(usage->memory_bytes, 50 * kMiB);
  EXPECT_EQ(usage->pids, 7u);
  EXPECT_EQ(usage->memory_limit_bytes, 704 * kMiB);
  EXPECT_EQ(usage->oom_kills, 1u);
}

TEST_F(FakeCgroup, ReadUsageV2MaxMeansNoCeiling) {
  add_files({{"cpu.stat", "usage_usec 0\n"}, {"memory.current", "0\n"}, {"pids.current", "0\n"},
             {"memory.max", "max\n"}, {"memory.events", "oom 0\n"}});
  auto usage = read_usage_v2(directory_);
  ASSERT_TRUE(usage) << usage.error().message;
  EXPECT_EQ(usage->memory_limit_bytes, 0u);
  EXPECT_EQ(usage->oom_kills, 0u) << "a missing oom_kill line reads as 0";
}

TEST_F(FakeCgroup, ReadUsageV1UnlimitedMeansNoCeiling) {
  add_files({{"cpuacct.usage", "2500000000\n"}, {"memory.usage_in_bytes", "4096\n"}, {"pids.current", "3\n"},
             {"memory.limit_in_bytes", "9223372036854771712\n"},
             {"memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n"}});
  const ControllerDirectories directories = {
      {"cpu", directory_}, {"cpuacct", directory_}, {"memory", directory_}, {"pids", directory_}};
  auto usage = read_usage_v1(directories);
  ASSERT_TRUE(usage) << usage.error().message;
  EXPECT_EQ(usage->cpu, std::chrono::milliseconds(2500));
  EXPECT_EQ(usage->memory_limit_bytes, 0u);
  EXPECT_EQ(usage->oom_kills, 4u);
}

TEST_F(FakeCgroup, ReadNumberRejectsGarbage) {
  add_files({{"pids.current", "12abc\n"}, {"memory.current", "\n"}});
  auto pids = read_number(directory_, "pids.current");
  ASSERT_FALSE(pids);
  EXPECT_NE(pids.error().message.find("invalid number \"12abc\""), std::string::npos);
  EXPECT_FALSE(read_number(directory_, "memory.current"));
}

TEST_F(FakeCgroup, ReadKeyedMatchesWholeKey) {
  add_files({{"memory.events", "oom_kill_extra 9\noom_kill 3\n"}});
  auto kills = read_keyed(directory_, "memory.events", "oom_kill");
  ASSERT_TRUE(kills) << kills.error().message;
  EXPECT_EQ(*kills, 3u);
}

TEST_F(FakeCgroup, ReadProcsListsPids) {
  add_files({{"cgroup.procs", "12\n345\n"}});
  auto pids = read_procs(directory_);
  ASSERT_TRUE(pids) << pids.error().message;
  EXPECT_EQ(*pids, (std::vector<pid_t>{12, 345}));
}

}  // namespace
}  // namespace zwrm::cgroup
