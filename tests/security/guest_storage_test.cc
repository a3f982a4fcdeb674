// Attacks from inside a normal guest (the real zwrm-init, with the command
// running as the agent user or, with --root, as root). Their targets are the
// guest init's environment, the read-only template image and the host's
// disk. Each case asserts the safe outcome on the host
// side, where the guest cannot lie about it.
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"
#include "tests/integration/test_network.h"

namespace zwrm::integration {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream content;
  content << file.rdbuf();
  return content.str();
}

void create_agent(TestHome& home, const std::string& name, const std::string& template_name,
                  const std::string& memory) {
  const Outcome created = home.zwrm({"agent", "create", name, "--template", template_name, "--memory", memory});
  ASSERT_EQ(created.exit_code, 0) << created;
}

// The agent user cannot read the guest init's environment. Root can, and
// neither it nor the kernel command line contains the agent's secret, which
// only the command's own environment has. The run's console, VMM and
// supervisor logs on the host do not contain it either.
TEST(GuestEscape, InitEnvironmentHasNoSecret) {
  TestHome home;
  const std::string value = "zwrm-init-env-secret-" + sha256_hex(home.home()).substr(0, 20);
  ASSERT_NO_FATAL_FAILURE(create_agent(home, "vault", "minimal", kSmallMemory));
  const Outcome set = home.zwrm({"secret", "set", "vault", "API_TOKEN"}, {.stdin_bytes = value + "\n"});
  ASSERT_EQ(set.exit_code, 0) << set;

  const Outcome as_agent = home.zwrm(
      {"run", "--project", "vault", "--", "sh", "-c",
       "printf %s \"$API_TOKEN\" | sha256sum | cut -d' ' -f1; id -u; "
       "cat /proc/1/environ > /dev/null; echo \"environ exit $?\""});
  ASSERT_EQ(as_agent.exit_code, 0) << as_agent;
  EXPECT_EQ(as_agent.out, sha256_hex(value) + "\n1000\nenviron exit 1\n") << as_agent;
  EXPECT_NE(as_agent.err.find("can't open '/proc/1/environ': Permission denied"), std::string::npos) << as_agent;

  const Outcome as_root = home.zwrm(
      {"run", "--project", "vault", "--root", "--", "sh", "-c",
       "printf %s \"$API_TOKEN\" | sha256sum | cut -d' ' -f1; id -u; "
       "tr '\\0' '\\n' < /proc/1/environ; echo \"environ exit $?\"; cat /proc/cmdline"});
  ASSERT_EQ(as_root.exit_code, 0) << as_root;
  const std::vector<std::string> lines = split_lines(as_root.out);
  ASSERT_GE(lines.size(), 4u) << as_root;
  EXPECT_EQ(lines[0], sha256_hex(value)) << "the command did not get the secret";
  EXPECT_EQ(lines[1], "0");
  EXPECT_NE(as_root.out.find("\nenviron exit 0\n"), std::string::npos) << as_root;
  EXPECT_NE(as_root.out.find("console=ttyS0"), std::string::npos) << as_root;
  EXPECT_EQ(as_root.out.find(value), std::string::npos) << "init's environment or the kernel command line holds it";
  EXPECT_EQ(as_root.err.find(value), std::string::npos);

  const std::vector<nlohmann::json> runs = home.runs(/*all=*/true);
  ASSERT_EQ(runs.size(), 2u);
  for (const nlohmann::json& run : runs) {
    const std::string logs = home.home() + "/logs/" + run["id"].get<std::string>();
    for (const char* name : {"console.log", "vmm.log", "supervisor.log"}) {
      ASSERT_TRUE(fs::exists(logs + "/" + name)) << logs << "/" << name;
      EXPECT_EQ(read_file(logs + "/" + name).find(value), std::string::npos) << "the secret is in " << logs << "/"
                                                                            << name;
    }
    EXPECT_FALSE(read_file(logs + "/console.log").empty()) << logs;
  }
}

// Returns the rootfs.ext4 images of the minimal template in cache (more
// than one when the cache also keeps an image of an older definition).
std::vector<std::string> minimal_images(const std::string& cache) {
  std::vector<std::string> images;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(cache + "/templates", error)) {
    if (entry.path().filename().string().starts_with("minimal-") && fs::exists(entry.path() / "rootfs.ext4")) {
      images.push_back((entry.path() / "rootfs.ext4").string());
    }
  }
  return images;
}

// Root in the guest attacks the template image: remounts, mounts the disk
// with serial zwrm-root read-write, writes to the block device with and
// without the page cache, and changes files under /. The image on the host
// keeps its content and mtime, and the next run finds none of the changes.
// The test uses its own copy of the cache, so a failure damages no shared
// image.
TEST(GuestEscape, TemplateImageStaysReadOnly) {
  TestHome home;
  const std::string cache = home.scratch() + "/cache";
  ASSERT_EQ(copy_cache(cache, /*accel_verdict=*/true), "");
  home.set_cache(cache);
  const std::vector<std::string> images = minimal_images(cache);
  ASSERT_FALSE(images.empty()) << "no minimal template image in " << cache;
  std::vector<std::string> digests_before;
  std::vector<fs::file_time_type> mtimes_before;
  for (const std::string& image : images) {
    digests_before.push_back(sha256_hex(read_file(image)));
    mtimes_before.push_back(fs::last_write_time(image));
  }

  const std::string attack = R"SH(
disk=$(for d in /sys/block/vd*; do [ "$(cat $d/serial)" = zwrm-root ] && echo /dev/${d##*/}; done)
echo "disk $disk"
blocks=$(cat /sys/block/${disk#/dev/}/size)
mount -o remount,rw / && echo "remount / ok"
mkdir -p /tmp/lower
mount -t ext4 -o rw "$disk" /tmp/lower
grep -q '^[^ ]* /tmp/lower ext4 ro,' /proc/mounts && echo "mounted read-only"
mount -o remount,rw /tmp/lower; echo "remount rw exit $?"
touch /tmp/lower/planted; echo "touch exit $?"
umount /tmp/lower
blockdev --setrw "$disk"
dd if=/dev/urandom of="$disk" bs=4096 count=1 seek=100 conv=fsync; echo "dd exit $?"
dd if=/dev/urandom of="$disk" bs=4096 count=1 seek=$((blocks / 8 - 1)) oflag=direct; echo "direct dd exit $?"
echo planted > /bin/planted && echo planted >> /etc/passwd && echo "overlay writes ok"
sync; echo 3 > /proc/sys/vm/drop_caches
)SH";
  const Outcome attacked = home.zwrm(run_args("template", {"sh", "-c", attack}, {"--root"}));
  ASSERT_EQ(attacked.exit_code, 0) << attacked;
  EXPECT_EQ(attacked.out,
            "disk /dev/vda\nremount / ok\nmounted read-only\nremount rw exit 255\ntouch exit 1\ndd exit 1\n"
            "direct dd exit 1\noverlay writes ok\n")
      << attacked;
  EXPECT_NE(attacked.err.find("Read-only file system"), std::string::npos) << attacked;
  EXPECT_NE(attacked.err.find("dd: error writing '/dev/vda': Operation not permitted"), std::string::npos)
      << attacked;

  for (std::size_t i = 0; i < images.size(); ++i) {
    EXPECT_EQ(sha256_hex(read_file(images[i])), digests_before[i]) << "the guest changed the template image " << images[i];
    EXPECT_EQ(fs::last_write_time(images[i]), mtimes_before[i]) << images[i];
  }

  const Outcome next = home.zwrm(run_args(
      "template", {"sh", "-c", "[ -e /bin/planted ] && echo planted file survived; grep -c planted /etc/passwd; "
                               "echo checked"},
      {"--root"}));
  EXPECT_EQ(next.exit_code, 0) << next;
  EXPECT_EQ(next.out, "0\nchecked\n") << next;
}

// Mounts a tmpfs on a directory in a mount namespace that only this test
// process (and the zwrm processes it starts) shares, so the test can
// measure a file system that nothing else on the host writes to. Other
// processes on the host never see the mount.
class PrivateTmpfs {
 public:
  PrivateTmpfs(const std::string& path, const std::string& size) : path_(path) {
    if (::unshare(CLONE_NEWNS) != 0) {
      error_ = std::string("cannot create a mount namespace: ") + std::strerror(errno);
      return;
    }
    // Keep the namespace's mounts from propagating back to the host's.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      error_ = std::string("cannot make mounts private: ") + std::strerror(errno);
      return;
    }
    if (::mount("zwrm-test", path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, ("mode=0700,size=" + size).c_str()) != 0) {
      error_ = "cannot mount a tmpfs on " + path + ": " + std::strerror(errno);
      return;
    }
    mounted_ = true;
  }
  ~PrivateTmpfs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  PrivateTmpfs(const PrivateTmpfs&) = delete;
  PrivateTmpfs& operator=(const PrivateTmpfs&) = delete;

  // Empty when mounted, else what failed.
  const std::string& error() const { return error_; }

 private:
  std::string path_;
  std::string error_;
  bool mounted_ = false;
};

std::int64_t free_bytes(const std::string& path) {
  struct statvfs info {};
  if (::statvfs(path.c_str(), &info) != 0) return -1;
  return static_cast<std::int64_t>(info.f_bavail) * static_cast<std::int64_t>(info.f_frsize);
}

// Runs e2fsck without changing anything. Debian keeps it in /usr/sbin,
// which a test's PATH may lack.
CommandResult check_file_system(const std::string& image) {
  const std::string e2fsck = fs::exists("/usr/sbin/e2fsck") ? "/usr/sbin/e2fsck" : "e2fsck";
  return run_command({e2fsck, "-fn", image});
}

// The agent user and then root fill /workspace to its last block: both get
// ENOSPC, and root also cannot write past the end of the volume's block
// device. On the host, the volume file keeps its size and allocates no more
// than that. The file system holding ZWRM_HOME loses no more than the
// volume's size plus zwrm's own logs and database. It is a private tmpfs
// here, so no other process's writes blur the numbers. The next run still
// starts and reads the files written before.
TEST(GuestEscape, FullWorkspaceStaysInsideVolume) {
  TestHome home;
  const PrivateTmpfs tmpfs(home.home(), "256m");
  ASSERT_EQ(tmpfs.error(), "");
  constexpr std::int64_t kVolumeSize = 64 << 20;
  // Bytes of logs and database that three short runs write, with room to spare.
  constexpr std::int64_t kZwrmFiles = 16 << 20;
  const std::int64_t free_before = free_bytes(home.home());
  ASSERT_GT(free_before, 0);

  // A pattern that is not zeros, because QEMU turns written zeros into holes.
  const std::string fill = "tr '\\000' 'z' < /dev/zero | dd of=/workspace/$1 bs=64k; echo \"dd exit $?\"; sync";
  const Outcome as_agent = home.zwrm(run_args(
      "full", {"sh", "-c", "echo kept > /workspace/keep.txt; " + fill, "fill", "agent-fill"}, {"--disk", "64M"}));
  ASSERT_EQ(as_agent.exit_code, 0) << as_agent;
  EXPECT_EQ(as_agent.out, "dd exit 1\n") << as_agent;
  EXPECT_NE(as_agent.err.find("dd: error writing '/workspace/agent-fill': No space left on device"), std::string::npos)
      << as_agent;

  const std::string root_attack = fill + R"SH(
fallocate -l 32M /workspace/reserved; echo "fallocate exit $?"
disk=$(for d in /sys/block/vd*; do [ "$(cat $d/serial)" = zwrm-workspace ] && echo ${d##*/}; done)
dd if=/dev/urandom of=/dev/$disk bs=512 count=8 seek=$(cat /sys/block/$disk/size); echo "past end exit $?"
)SH";
  const Outcome as_root = home.zwrm(run_args("full", {"sh", "-c", root_attack, "fill", "root-fill"}, {"--root"}));
  ASSERT_EQ(as_root.exit_code, 0) << as_root;
  EXPECT_EQ(as_root.out, "dd exit 1\nfallocate exit 1\npast end exit 1\n") << as_root;
  EXPECT_NE(as_root.err.find("dd: error writing '/workspace/root-fill': No space left on device"), std::string::npos)
      << as_root;
  EXPECT_NE(as_root.err.find("fallocate '/workspace/reserved': No space left on device"), std::string::npos) << as_root;
  EXPECT_NE(as_root.err.find("dd: error writing '/dev/vdb': No space left on device"), std::string::npos) << as_root;

  const std::string volume = home.volume_path("full");
  struct stat info {};
  ASSERT_EQ(::stat(volume.c_str(), &info), 0) << volume;
  EXPECT_EQ(info.st_size, kVolumeSize) << "the volume file grew";
  EXPECT_LE(static_cast<std::int64_t>(info.st_blocks) * 512, kVolumeSize) << "the volume allocates beyond its size";
  EXPECT_GT(static_cast<std::int64_t>(info.st_blocks) * 512, kVolumeSize / 2) << "the guest's fill did not reach it";
  const std::int64_t used = free_before - free_bytes(home.home());
  EXPECT_LE(used, kVolumeSize + kZwrmFiles) << "the host lost " << used << " bytes";
  std::cout << "host file system: " << used << " bytes used after filling a " << kVolumeSize << "-byte volume\n";

  const Outcome next = home.zwrm(run_args(
      "full", {"sh", "-c", "cat /workspace/keep.txt && rm /workspace/agent-fill /workspace/root-fill && echo removed"}));
  EXPECT_EQ(next.exit_code, 0) << next;
  EXPECT_EQ(next.out, "kept\nremoved\n") << next;
  ASSERT_EQ(::stat(volume.c_str(), &info), 0) << volume;
  EXPECT_EQ(info.st_size, kVolumeSize);
  const CommandResult checked = check_file_system(volume);
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
}

}  // namespace
}  // namespace zwrm::integration
