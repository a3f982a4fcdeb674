#include "host/cgroup/layout.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "host/sys/files.h"

namespace zwrm::cgroup {
namespace {

// This development machine: cpu, cpuacct, memory and pids each on their own
// v1 mount, and a cgroup2 mount without controllers.
constexpr const char* kSeparateV1Mountinfo =
    "23 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
constexpr const char* kSeparateV1Cgroup =
    "9:name=systemd:/\n"
    "8:pids:/\n"
    "4:memory:/process_api/91cc\n"
    "3:cpuset:/\n"
    "2:cpuacct:/\n"
    "1:cpu:/\n"
    "0::/\n";

// A systemd host on cgroup v1 (hybrid mode, as Debian 10 and Ubuntu 20.04
// boot): cpu and cpuacct share one mount.
constexpr const char* kHybridMountinfo =
    "25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
    "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
    "27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup "
    "rw,xattr,name=systemd\n"
    "31 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup "
    "rw,cpu,cpuacct\n"
    "32 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory\n"
    "33 25 0:30 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids\n";
constexpr const char* kHybridCgroup =
    "12:pids:/user.slice/user-1000.slice/session-2.scope\n"
    "5:cpu,cpuacct:/user.slice\n"
    "4:memory:/user.slice/user-1000.slice/session-2.scope\n"
    "1:name=systemd:/user.slice/user-1000.slice/session-2.scope\n"
    "0::/user.slice/user-1000.slice/session-2.scope\n";

// A systemd host on pure cgroup v2.
constexpr const char* kV2Mountinfo =
    "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n"
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";
constexpr const char* kV2Cgroup = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn.scope\n";

TEST(ParseMountinfo, KeepsOnlyCgroupMounts) {
  auto mounts = parse_mountinfo(kSeparateV1Mountinfo);
  ASSERT_TRUE(mounts) << mounts.error().message;
  ASSERT_EQ(mounts->size(), 7u);
  EXPECT_EQ((*mounts)[0].mount_point, "/sys/fs/cgroup/cpu");
  EXPECT_EQ((*mounts)[0].controllers, std::vector<std::string>{"cpu"});
  EXPECT_FALSE((*mounts)[0].v2);
  EXPECT_TRUE((*mounts)[5].controllers.empty()) << "name=systemd is no controller";
  EXPECT_TRUE((*mounts)[6].v2);
  EXPECT_EQ((*mounts)[6].root, "/");
}

TEST(ParseMountinfo, DecodesEscapedSpaces) {
  auto mounts = parse_mountinfo("40 31 0:38 /a\\040b /mnt/cgroup\\040v2 rw - cgroup2 cgroup2 rw\n");
  ASSERT_TRUE(mounts) << mounts.error().message;
  ASSERT_EQ(mounts->size(), 1u);
  EXPECT_EQ((*mounts)[0].root, "/a b");
  EXPECT_EQ((*mounts)[0].mount_point, "/mnt/cgroup v2");
}

TEST(ParseMountinfo, RejectsTruncatedCgroupEntry) {
  auto mounts = parse_mountinfo("40 31 /sys/fs/cgroup - cgroup2 cgroup2 rw\n");
  ASSERT_FALSE(mounts);
  EXPECT_NE(mounts.error().message.find("invalid cgroup entry"), std::string::npos);
}

TEST(ParseProcCgroup, SplitsIdControllersAndPath) {
  auto memberships = parse_proc_cgroup("5:cpu,cpuacct:/user.slice\n0::/a:b\n");
  ASSERT_TRUE(memberships) << memberships.error().message;
  ASSERT_EQ(memberships->size(), 2u);
  EXPECT_EQ((*memberships)[0].hierarchy_id, 5);
  EXPECT_EQ((*memberships)[0].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_EQ((*memberships)[0].path, "/user.slice");
  EXPECT_TRUE((*memberships)[1].controllers.empty());
  EXPECT_EQ((*memberships)[1].path, "/a:b");
}

TEST(ParseProcCgroup, RejectsLineWithoutColons) {
  EXPECT_FALSE(parse_proc_cgroup("0/user.slice\n"));
  EXPECT_FALSE(parse_proc_cgroup("x::/\n"));
}

TEST(DetectLayout, SeparateV1Mounts) {
  auto layout = detect_layout(kSeparateV1Mountinfo, kSeparateV1Cgroup);
  ASSERT_TRUE(layout) << layout.error().message;
  EXPECT_EQ(layout->version, Version::kV1);
  ASSERT_EQ(layout->hierarchies.size(), 4u);
  EXPECT_EQ(layout->hierarchies[0].controllers, std::vector<std::string>{"cpu"});
  EXPECT_EQ(layout->hierarchies[0].mount_point, "/sys/fs/cgroup/cpu");
  EXPECT_EQ(layout->hierarchies[0].current, "/sys/fs/cgroup/cpu");
  EXPECT_EQ(layout->hierarchies[1].controllers, std::vector<std::string>{"cpuacct"});
  EXPECT_EQ(layout->hierarchies[2].current, "/sys/fs/cgroup/memory/process_api/91cc");
  EXPECT_EQ(layout->hierarchies[3].mount_point, "/sys/fs/cgroup/pids");
}

TEST(DetectLayout, HybridWithCpuAndCpuacctTogether) {
  auto layout = detect_layout(kHybridMountinfo, kHybridCgroup);
  ASSERT_TRUE(layout) << layout.error().message;
  EXPECT_EQ(layout->version, Version::kV1);
  ASSERT_EQ(layout->hierarchies.size(), 3u);
  EXPECT_EQ(layout->hierarchies[0].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_EQ(layout->hierarchies[0].current, "/sys/fs/cgroup/cpu,cpuacct/user.slice");
  EXPECT_EQ(layout->hierarchies[1].current, "/sys/fs/cgroup/memory/user.slice/user-1000.slice/session-2.scope");
  EXPECT_EQ(layout->hierarchies[2].controllers, std::vector<std::string>{"pids"});
}

TEST(DetectLayout, PureV2) {
  auto layout = detect_layout(kV2Mountinfo, kV2Cgroup);
  ASSERT_TRUE(layout) << layout.error().message;
  EXPECT_EQ(layout->version, Version::kV2);
  ASSERT_EQ(layout->hierarchies.size(), 1u);
  EXPECT_EQ(layout->hierarchies[0].controllers, (std::vector<std::string>{"cpu", "memory", "pids"}));
  EXPECT_EQ(layout->hierarchies[0].mount_point, "/sys/fs/cgroup");
  EXPECT_EQ(layout->hierarchies[0].current,
            "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn.scope");
}

TEST(DetectLayout, V2ContainerShowsItsOwnSubtree) {
  const char* mountinfo = "600 500 0:26 /docker/ab12 /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n";
  auto layout = detect_layout(mountinfo, "0::/docker/ab12/worker\n");
  ASSERT_TRUE(layout) << layout.error().message;
  EXPECT_EQ(layout->hierarchies[0].current, "/sys/fs/cgroup/worker");

  auto outside = detect_layout(mountinfo, "0::/docker/ab123\n");
  ASSERT_FALSE(outside);
  EXPECT_NE(outside.error().message.find("lies outside the cgroup mount"), std::string::npos);
}

TEST(DetectLayout, V1WithoutPidsNamesIt) {
  const char* mountinfo =
      "31 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
      "32 25 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
      "26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  auto layout = detect_layout(mountinfo, "5:cpu,cpuacct:/\n4:memory:/\n0::/\n");
  ASSERT_FALSE(layout);
  EXPECT_NE(layout.error().message.find("cpu, cpuacct, memory as cgroup v1 but not pids"), std::string::npos)
      << layout.error().message;
  EXPECT_NE(layout.error().message.find("mount -t cgroup -o pids"), std::string::npos);
}

TEST(DetectLayout, NoCgroupMountSaysWhatToMount) {
  auto layout = detect_layout("22 1 259:2 / / rw - ext4 /dev/vda rw\n", "0::/\n");
  ASSERT_FALSE(layout);
  EXPECT_NE(layout.error().message.find("mount -t cgroup2"), std::string::npos);
}

TEST(DetectLayout, PrefersBindMountThatShowsTheRoot) {
  const char* mountinfo =
      "30 23 0:26 /system.slice /run/cg rw - cgroup2 cgroup2 rw\n"
      "31 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
  auto layout = detect_layout(mountinfo, "0::/user.slice\n");
  ASSERT_TRUE(layout) << layout.error().message;
  EXPECT_EQ(layout->hierarchies[0].current, "/sys/fs/cgroup/user.slice");
}

TEST(BracePaths, JoinsOneDifferingComponent) {
  EXPECT_EQ(brace_paths({"/sys/fs/cgroup/cpu/zwrm/a", "/sys/fs/cgroup/memory/zwrm/a"}),
            "/sys/fs/cgroup/{cpu,memory}/zwrm/a");
  EXPECT_EQ(brace_paths({"/sys/fs/cgroup/zwrm/a"}), "/sys/fs/cgroup/zwrm/a");
  EXPECT_EQ(brace_paths({"/a/cpu/x", "/b/memory/x"}), "/a/cpu/x, /b/memory/x");
  EXPECT_EQ(brace_paths({"/a/cpu/x", "/a/memory/u/x"}), "/a/cpu/x, /a/memory/u/x");
}

TEST(CreationParent, RootUsesTopOfHierarchy) {
  const Hierarchy hierarchy{{"memory"}, "/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory/user.slice"};
  auto parent = creation_parent(hierarchy, 0);
  ASSERT_TRUE(parent) << parent.error().message;
  EXPECT_EQ(*parent, "/sys/fs/cgroup/memory");
}

// Builds a directory tree shaped like a systemd user delegation, with the
// user's subtree owned by uid 1000, and checks which directory is chosen.
TEST(CreationParent, UserGetsTopOfDelegatedSubtree) {
  if (::geteuid() != 0) GTEST_SKIP() << "giving directories to another owner needs root";
  char base_template[] = "/tmp/zwrm-cgroup-test.XXXXXX";
  ASSERT_NE(::mkdtemp(base_template), nullptr);
  const std::string base = base_template;
  const std::string service = base + "/user.slice/user@1000.service";
  const std::string scope = service + "/app.slice/term.scope";
  ASSERT_TRUE(sys::make_directories(scope));
  for (const std::string& path : {service, service + "/app.slice", scope}) {
    ASSERT_EQ(::chown(path.c_str(), 1000, 1000), 0) << path;
  }

  auto parent = creation_parent({{"cpu", "memory", "pids"}, base, scope}, 1000);
  ASSERT_TRUE(parent) << parent.error().message;
  EXPECT_EQ(*parent, service);

  auto other_user = creation_parent({{"cpu", "memory", "pids"}, base, scope}, 1001);
  ASSERT_FALSE(other_user);
  EXPECT_NE(other_user.error().message.find("not delegated to this user"), std::string::npos);
  ASSERT_TRUE(sys::remove_tree(base));
}

}  // namespace
}  // namespace zwrm::cgroup
