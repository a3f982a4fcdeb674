// Runs busybox in the jail in place of the VMM and checks, from inside and
// from the host's /proc, that each step applied. Needs root, like the jail.
#include "host/jail/jail.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

namespace zwrm::jail {
namespace {

namespace fs = std::filesystem;

constexpr const char* kBusybox = "/usr/bin/busybox";
constexpr uid_t kTestId = kFirstJailId + 4'000'000;

std::string read_file(const std::string& path) {
  std::ifstream file(path);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

// Returns the value of a "Name:\tvalue" line of /proc/PID/status.
std::string status_field(pid_t pid, const std::string& name) {
  std::istringstream status(read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(status, line);) {
    if (!line.starts_with(name + ":")) continue;
    const std::size_t value = line.find_first_not_of(" \t", name.size() + 1);
    return value == std::string::npos ? std::string() : line.substr(value);
  }
  return {};
}

class JailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the jail needs root";
    if (::access(kBusybox, X_OK) != 0) GTEST_SKIP() << "needs busybox-static";
    char pattern[] = "/tmp/zwrm-jail-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    ASSERT_EQ(::mkdir((dir_ + "/root").c_str(), 0755), 0);
    std::ofstream(dir_ + "/kernel") << "kernel bytes";
    kernel_ = ::open((dir_ + "/kernel").c_str(), O_RDONLY | O_CLOEXEC);
    int in[2];
    int out[2];
    ASSERT_EQ(::pipe2(in, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
    stdin_read_ = in[0];
    stdin_write_ = in[1];
    stdout_read_ = out[0];
    stdout_write_ = out[1];
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (int fd : {kernel_, stdin_read_, stdin_write_, stdout_read_, stdout_write_}) {
      if (fd >= 0) ::close(fd);
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Options that run script under busybox sh with the test's pipes as its
  // stdin and stdout/stderr.
  Options options(const std::string& script) const {
    Options options;
    options.argv = {kBusybox, "sh", "-c", script};
    options.root = dir_ + "/root";
    options.uid = kTestId;
    options.gid = kTestId;
    options.devices = {"/dev/null"};
    options.files = {{kernel_, "kernel"}};
    options.fds = {stdin_read_, stdout_write_, stdout_write_};
    return options;
  }

  // Reads the child's output until it prints marker or 10 s pass.
  std::string read_until(const std::string& marker) {
    std::string output;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (output.find(marker) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd ready{stdout_read_, POLLIN, 0};
      if (::poll(&ready, 1, 100) <= 0) continue;
      char buffer[4096];
      const ssize_t count = ::read(stdout_read_, buffer, sizeof buffer);
      if (count <= 0) break;
      output.append(buffer, static_cast<std::size_t>(count));
    }
    return output;
  }

  std::string dir_;
  int kernel_ = -1;
  int stdin_read_ = -1;
  int stdin_write_ = -1;
  int stdout_read_ = -1;
  int stdout_write_ = -1;
  pid_t pid_ = -1;
};

TEST_F(JailTest, ChildSeesOnlyItsRoot) {
  auto pid = spawn(options("echo uid=$(id -u) gid=$(id -g) groups=$(id -G); echo host=$(hostname);"
                           "echo root=$(ls / | tr '\\n' ' '); echo dev=$(ls /dev | tr '\\n' ' ');"
                           "echo kernel=$(cat /vmm/kernel);"
                           "echo x 2>/dev/null >/vmm/kernel || echo kernel-read-only;"
                           "touch /new 2>/dev/null || echo root-read-only;"
                           "ls /proc/1 >/dev/null 2>&1 || echo no-proc; echo done"));
  ASSERT_TRUE(pid) << pid.error().error.message;
  pid_ = *pid;
  const std::string output = read_until("done\n");
  const std::string id = std::to_string(kTestId);
  EXPECT_NE(output.find("uid=" + id + " gid=" + id + " groups=" + id + "\n"), std::string::npos) << output;
  EXPECT_NE(output.find("host=zwrm-vmm\n"), std::string::npos) << output;
  // Only the jail's own entries: none of the host's /home, /root, /tmp,
  // /var, /proc or /sys.
  const std::size_t root_at = output.find("root=");
  ASSERT_NE(root_at, std::string::npos) << output;
  std::istringstream root_entries(output.substr(root_at + 5, output.find('\n', root_at) - root_at - 5));
  const std::set<std::string> allowed = {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "sbin", "usr", "vmm"};
  std::set<std::string> seen;
  for (std::string entry; root_entries >> entry;) seen.insert(entry);
  for (const std::string& entry : seen) EXPECT_TRUE(allowed.contains(entry)) << "the jail's root shows /" << entry;
  for (const char* needed : {"usr", "dev", "vmm"}) EXPECT_TRUE(seen.contains(needed)) << output;
  EXPECT_NE(output.find("dev=null\n"), std::string::npos) << output;
  EXPECT_NE(output.find("kernel=kernel bytes\n"), std::string::npos) << output;
  EXPECT_NE(output.find("kernel-read-only\n"), std::string::npos) << output;
  EXPECT_NE(output.find("root-read-only\n"), std::string::npos) << output;
  EXPECT_NE(output.find("no-proc\n"), std::string::npos) << output;
}

TEST_F(JailTest, HostSeesConfinedProcess) {
  auto pid = spawn(options("echo ready; read line"));
  ASSERT_TRUE(pid) << pid.error().error.message;
  pid_ = *pid;
  ASSERT_NE(read_until("ready\n").find("ready"), std::string::npos);

  const std::string id = std::to_string(kTestId);
  EXPECT_EQ(status_field(pid_, "Uid"), id + "\t" + id + "\t" + id + "\t" + id);
  EXPECT_EQ(status_field(pid_, "Gid"), id + "\t" + id + "\t" + id + "\t" + id);
  EXPECT_EQ(status_field(pid_, "NoNewPrivs"), "1");
  EXPECT_EQ(status_field(pid_, "CapEff"), "0000000000000000");
  EXPECT_EQ(status_field(pid_, "CapPrm"), "0000000000000000");
  EXPECT_EQ(status_field(pid_, "CapBnd"), "0000000000000000");
  EXPECT_EQ(status_field(pid_, "NSpid"), std::to_string(pid_) + "\t1");
  for (const char* ns : {"mnt", "pid", "ipc", "uts", "net", "cgroup"}) {
    EXPECT_NE(fs::read_symlink(std::string("/proc/self/ns/") + ns),
              fs::read_symlink("/proc/" + std::to_string(pid_) + "/ns/" + ns))
        << ns << " namespace is the host's";
  }
  EXPECT_EQ(read_file("/proc/" + std::to_string(pid_) + "/environ"), "");

  const std::string limits = read_file("/proc/" + std::to_string(pid_) + "/limits");
  EXPECT_NE(limits.find("Max core file size        0                    0"), std::string::npos) << limits;
  EXPECT_NE(limits.find("Max open files            1024                 1024"), std::string::npos) << limits;
  EXPECT_NE(limits.find("Max processes             256                  256"), std::string::npos) << limits;

  std::vector<std::string> descriptors;
  for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid_) + "/fd")) {
    descriptors.push_back(entry.path().filename().string());
  }
  std::sort(descriptors.begin(), descriptors.end());
  EXPECT_EQ(descriptors, (std::vector<std::string>{"0", "1", "2"}));
  // The host's copy of the jail's root stays empty: the tmpfs is in the
  // child's mount namespace only.
  EXPECT_TRUE(fs::is_empty(dir_ + "/root"));
}

TEST_F(JailTest, WithoutNamespacesFilesStayOpen) {
  Options plain = options("cat /proc/self/fd/3; echo; echo uid=$(id -u); echo done");
  plain.namespaces = false;
  plain.own_user = false;
  EXPECT_EQ(plain.file_path(0), "/proc/self/fd/3");
  auto pid = spawn(plain);
  ASSERT_TRUE(pid) << pid.error().error.message;
  pid_ = *pid;
  const std::string output = read_until("done\n");
  EXPECT_NE(output.find("kernel bytes\nuid=0\n"), std::string::npos) << output;
  ASSERT_TRUE(::waitpid(pid_, nullptr, 0) == pid_);
  pid_ = -1;
}

TEST_F(JailTest, RootWithoutOwnUserHasNoCapabilities) {
  Options plain = options("echo ready; read line");
  plain.own_user = false;
  auto pid = spawn(plain);
  ASSERT_TRUE(pid) << pid.error().error.message;
  pid_ = *pid;
  ASSERT_NE(read_until("ready\n").find("ready"), std::string::npos);
  EXPECT_EQ(status_field(pid_, "Uid"), "0\t0\t0\t0");
  EXPECT_EQ(status_field(pid_, "CapEff"), "0000000000000000");
  EXPECT_EQ(status_field(pid_, "CapPrm"), "0000000000000000");
}

TEST_F(JailTest, MissingBinaryIsReported) {
  Options broken = options("");
  broken.argv = {"/usr/bin/zwrm-no-such-vmm"};
  auto pid = spawn(broken);
  ASSERT_FALSE(pid);
  EXPECT_NE(pid.error().error.message.find("cannot execute the VMM /usr/bin/zwrm-no-such-vmm"), std::string::npos)
      << pid.error().error.message;
  EXPECT_FALSE(pid.error().step.has_value());
}

TEST_F(JailTest, UnusableRootIsNamespaceStep) {
  Options broken = options("true");
  broken.root = dir_ + "/no-such-root";
  auto pid = spawn(broken);
  ASSERT_FALSE(pid);
  EXPECT_EQ(pid.error().step, Step::kNamespaces) << pid.error().error.message;
  EXPECT_NE(pid.error().error.message.find("cannot mount the jail's root tmpfs"), std::string::npos)
      << pid.error().error.message;
}

TEST(JailMode, ParseAndName) {
  for (const char* name : {"full", "partial", "off"}) EXPECT_STREQ(mode_name(parse_mode(name).value()), name);
  auto invalid = parse_mode("none");
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().message, "invalid jail mode 'none'; use full, partial or off");
}

}  // namespace
}  // namespace zwrm::jail
