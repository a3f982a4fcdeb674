// The jailed VMM, inspected from the host: if a guest took over QEMU, this
// is what the attacker would have. Each case starts a real run and inspects its
// QEMU process through /proc.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

namespace fs = std::filesystem;

// The first uid and gid of jailed VMMs (docs/threat-model.md): the
// supervisor's pid is added to it.
constexpr long long kFirstJailId = 2'100'000'000;

std::string read_text(const std::string& path) {
  std::ifstream file(path);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

// Returns the value of a "Name:\tvalue" line of /proc/PID/status.
std::string status_field(pid_t pid, const std::string& name) {
  std::istringstream status(read_text("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(status, line);) {
    if (!line.starts_with(name + ":")) continue;
    const std::size_t value = line.find_first_not_of(" \t", name.size() + 1);
    return value == std::string::npos ? std::string() : line.substr(value);
  }
  return {};
}

std::string repeat_id(long long id) {
  const std::string text = std::to_string(id);
  return text + "\t" + text + "\t" + text + "\t" + text;
}

// A run that waits, so its VMM can be inspected.
class JailedVmm : public ::testing::Test {
 protected:
  void start(const std::vector<std::string>& options = {}) {
    client_ = home_.start(run_args("jailed", {"sh", "-c", "echo ready; exec sleep 1000"}, options));
    ASSERT_TRUE(client_->wait_for_output("ready\n", 90s)) << client_->err();
    const std::vector<pid_t> vmms = home_.vmm_pids();
    ASSERT_EQ(vmms.size(), 1u);
    vmm_ = vmms.front();
    const std::vector<nlohmann::json> runs = home_.runs(/*all=*/false);
    ASSERT_EQ(runs.size(), 1u);
    supervisor_ = runs[0]["supervisor_pid"].get<pid_t>();
  }

  std::string proc(const std::string& name) const { return "/proc/" + std::to_string(vmm_) + "/" + name; }

  TestHome home_;
  std::unique_ptr<Background> client_;
  pid_t vmm_ = -1;
  pid_t supervisor_ = -1;
};

TEST_F(JailedVmm, OwnUserSeccompNoPrivileges) {
  start();
  const long long id = kFirstJailId + supervisor_;
  EXPECT_EQ(status_field(vmm_, "Uid"), repeat_id(id));
  EXPECT_EQ(status_field(vmm_, "Gid"), repeat_id(id));
  EXPECT_EQ(status_field(vmm_, "Groups"), "");
  EXPECT_EQ(status_field(vmm_, "Seccomp"), "2");
  EXPECT_EQ(status_field(vmm_, "NoNewPrivs"), "1");
  EXPECT_EQ(status_field(vmm_, "CapEff"), "0000000000000000");
  EXPECT_EQ(status_field(vmm_, "CapPrm"), "0000000000000000");
  EXPECT_EQ(status_field(vmm_, "CapBnd"), "0000000000000000");
  EXPECT_EQ(read_text(proc("environ")), "");
  const std::string limits = read_text(proc("limits"));
  EXPECT_NE(limits.find("Max core file size        0                    0"), std::string::npos) << limits;
  EXPECT_NE(limits.find("Max open files            1024                 1024"), std::string::npos) << limits;
  // The VMM can grow no file past the volume's size.
  const std::string volume_size = std::to_string(fs::file_size(home_.volume_path("jailed")));
  EXPECT_NE(limits.find("Max file size             " + volume_size), std::string::npos) << limits;

  const std::vector<nlohmann::json> jail = home_.events("run.jail");
  ASSERT_EQ(jail.size(), 1u);
  EXPECT_EQ(jail[0]["mode"], "full");
  EXPECT_EQ(jail[0]["uid"], id);
  EXPECT_TRUE(jail[0]["skipped"].empty()) << jail[0];
}

// Once its VMM runs, the supervisor keeps only CAP_KILL, to signal a VMM of
// another uid.
TEST_F(JailedVmm, SupervisorDropsPrivilegesOnceVmmRuns) {
  start();
  EXPECT_EQ(status_field(supervisor_, "CapEff"), "0000000000000020");
  EXPECT_EQ(status_field(supervisor_, "CapPrm"), "0000000000000020");
  EXPECT_EQ(status_field(supervisor_, "CapBnd"), "0000000000000020");
  EXPECT_EQ(status_field(supervisor_, "NoNewPrivs"), "1");
  const std::vector<nlohmann::json> jail = home_.events("run.jail");
  ASSERT_EQ(jail.size(), 1u);
  EXPECT_EQ(jail[0]["supervisor_capabilities"], "CAP_KILL only");

  // It can still end the run: stop it and see the VMM go.
  const Outcome stopped = home_.zwrm({"stop", home_.runs(/*all=*/false).at(0)["id"].get<std::string>()});
  EXPECT_EQ(stopped.exit_code, 0) << stopped;
  EXPECT_TRUE(wait_until([&] { return home_.vmm_pids().empty(); }, 15s));
  const auto ended = client_->wait(15s);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->exit_code, 143) << *ended;
}

TEST_F(JailedVmm, HasOwnNamespacesAndRoot) {
  start();
  for (const char* ns : {"mnt", "pid", "ipc", "uts", "net", "cgroup"}) {
    EXPECT_NE(fs::read_symlink(std::string("/proc/self/ns/") + ns), fs::read_symlink(proc("ns/") + ns))
        << "the VMM shares the host's " << ns << " namespace";
  }
  // PID 1 of its own pid namespace, so no other process is visible to it.
  EXPECT_EQ(status_field(vmm_, "NSpid"), std::to_string(vmm_) + "\t1");

  std::set<std::string> root;
  for (const auto& entry : fs::directory_iterator(proc("root"))) root.insert(entry.path().filename().string());
  const std::set<std::string> allowed = {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "sbin", "usr", "vmm"};
  for (const std::string& entry : root) EXPECT_TRUE(allowed.contains(entry)) << "the VMM's root shows /" << entry;
  std::set<std::string> vmm_files;
  for (const auto& entry : fs::directory_iterator(proc("root/vmm"))) {
    vmm_files.insert(entry.path().filename().string());
  }
  EXPECT_EQ(vmm_files, (std::set<std::string>{"initramfs", "kernel"}));
  std::set<std::string> devices;
  for (const auto& entry : fs::directory_iterator(proc("root/dev"))) devices.insert(entry.path().filename().string());
  EXPECT_EQ(devices, (std::set<std::string>{"null", "urandom", "zero"}));

  // Nothing of the host's network: only a loopback interface, and it is down.
  const std::string interfaces = read_text(proc("net/dev"));
  EXPECT_EQ(interfaces.find("eth"), std::string::npos) << interfaces;
  EXPECT_EQ(std::count(interfaces.begin(), interfaces.end(), '\n'), 3) << interfaces;
}

TEST_F(JailedVmm, OnlyOwnDescriptorsOpen) {
  start();
  const std::string volume = fs::canonical(home_.volume_path("jailed")).string();
  const std::string log_dir = home_.home() + "/logs/";

  std::set<std::string> files;
  for (const auto& entry : fs::directory_iterator(proc("fd"))) {
    std::error_code error;
    const std::string target = fs::read_symlink(entry.path(), error).string();
    if (error) continue;  // closed while listing
    if (target.starts_with("anon_inode:") || target.starts_with("socket:") || target.starts_with("pipe:")) continue;
    files.insert(target);
  }

  // /dev/null (stdin), the run's vmm.log, the template image and the volume:
  // no kernel or initramfs left open, nothing else of the host.
  bool log_seen = false;
  bool image_seen = false;
  for (const std::string& file : files) {
    if (file == "/dev/null" || file == volume) continue;
    if (file.starts_with(log_dir) && file.ends_with("/vmm.log")) {
      log_seen = true;
      continue;
    }
    if (file.starts_with(fs::canonical(home_.cache()).string()) && file.ends_with(".ext4")) {
      image_seen = true;
      continue;
    }
    ADD_FAILURE() << "the VMM has open " << file;
  }

  EXPECT_TRUE(files.contains(volume)) << "the VMM does not have the volume open";
  EXPECT_TRUE(log_seen);
  EXPECT_TRUE(image_seen);
}

TEST_F(JailedVmm, OffModeIsRecordedAndWarned) {
  start({"--jail", "off"});
  EXPECT_EQ(status_field(vmm_, "Uid"), repeat_id(::geteuid()));
  // Even unjailed, the VMM keeps no capabilities and QEMU's seccomp filter.
  EXPECT_EQ(status_field(vmm_, "CapEff"), "0000000000000000");
  EXPECT_EQ(status_field(vmm_, "Seccomp"), "2");
  EXPECT_EQ(fs::read_symlink("/proc/self/ns/mnt"), fs::read_symlink(proc("ns/mnt")));

  const std::vector<nlohmann::json> jail = home_.events("run.jail");
  ASSERT_EQ(jail.size(), 1u);
  EXPECT_EQ(jail[0]["mode"], "off");
  EXPECT_EQ(jail[0]["skipped"].size(), 2u) << jail[0];
  const std::string err = client_->err();
  EXPECT_NE(err.find("zwrm: warning: the VMM runs without its own namespaces and root (--jail off)\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("zwrm: warning: the VMM runs as root (uid 0, without capabilities), not as a user of its own, "
                     "so it could write files root owns (--jail off)\n"),
            std::string::npos)
      << err;
  EXPECT_EQ(jail[0]["skipped"][0]["step"], "namespaces");
}

// Without root zwrm cannot give the VMM its own uid or namespaces: the
// default (full) jail fails and names the way out, and `--jail partial`
// runs with what remains, warns and records it.
TEST(JailWithoutRoot, FullFailsAndPartialRunsRecorded) {
  constexpr uid_t kNobody = 65534;
  TestHome home;
  const std::string cache = home.scratch() + "/cache";
  ASSERT_EQ(copy_cache(cache, /*accel_verdict=*/false), "");
  home.set_cache(cache);
  // The user owns its home and cache, and can reach them.
  for (const std::string& top : {home.home(), home.scratch()}) {
    ASSERT_EQ(::chown(top.c_str(), kNobody, kNobody), 0);
    for (const auto& entry : fs::recursive_directory_iterator(top)) {
      ASSERT_EQ(::lchown(entry.path().c_str(), kNobody, kNobody), 0) << entry.path();
    }
  }
  ASSERT_EQ(::chmod(fs::path(home.home()).parent_path().c_str(), 0755), 0);
  const std::string as_nobody = "exec setpriv --reuid=65534 --regid=65534 --clear-groups '" + zwrm_binary() +
                                "' run --project plain --accel tcg --no-limits --memory 256M ";

  const Outcome full = home.shell(as_nobody + "-- echo hi", {.timeout = 60s});
  EXPECT_EQ(full.exit_code, 125) << full;
  const std::vector<std::string> lines = split_lines(strip_leading_progress(full.err));
  ASSERT_EQ(lines.size(), 1u) << full;
  EXPECT_TRUE(lines[0].starts_with("zwrm: error: ")) << full;
  EXPECT_NE(lines[0].find("needs root"), std::string::npos) << full;
  EXPECT_NE(lines[0].find("--jail partial"), std::string::npos) << full;
  EXPECT_TRUE(home.vmm_pids().empty());

  const Outcome partial = home.shell(as_nobody + "--jail partial -- echo hi", {.timeout = 90s});
  EXPECT_EQ(partial.exit_code, 0) << partial;
  EXPECT_EQ(partial.out, "hi\n") << partial;
  EXPECT_NE(partial.err.find("zwrm: warning: the VMM runs without its own user (zwrm does not run as root)"),
            std::string::npos)
      << partial;
  EXPECT_NE(partial.err.find("zwrm: warning: the VMM runs without its own namespaces and root"), std::string::npos)
      << partial;
  const std::vector<nlohmann::json> jail = home.events("run.jail");
  ASSERT_EQ(jail.size(), 1u);
  EXPECT_EQ(jail[0]["mode"], "partial");
  EXPECT_EQ(jail[0]["uid"], kNobody);
  ASSERT_EQ(jail[0]["skipped"].size(), 2u) << jail[0];
  EXPECT_EQ(jail[0]["skipped"][0]["step"], "own-user");
  EXPECT_EQ(jail[0]["skipped"][1]["step"], "namespaces");
}

}  // namespace
}  // namespace zwrm::integration
