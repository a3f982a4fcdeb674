#include "host/jail/capabilities.h"

#include <linux/capability.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace zwrm::jail {
namespace {

std::string own_status_field(const std::string& name) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with(name + ":")) return line.substr(line.find_first_not_of(" \t", name.size() + 1));
  }
  return {};
}

// Runs body in a child process, so the test process keeps its privileges,
// and returns the child's exit status (0 when every check held).
int in_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(Capabilities, OnlyKeptCapabilityRemains) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root's capabilities to drop them";
  const int exit_code = in_child([] {
    if (!keep_only_capabilities({CAP_KILL})) return 1;
    const std::string kill_only = "0000000000000020";
    if (own_status_field("CapEff") != kill_only || own_status_field("CapPrm") != kill_only) return 2;
    if (own_status_field("CapBnd") != kill_only || own_status_field("CapInh") != "0000000000000000") return 3;
    if (own_status_field("NoNewPrivs") != "1") return 4;
    // Root without CAP_CHOWN cannot give a file away any more.
    char path[] = "/tmp/zwrm-capabilities-test.XXXXXX";
    const int fd = ::mkstemp(path);
    const bool chowned = ::fchown(fd, 12345, 12345) == 0;
    ::unlink(path);
    return chowned ? 5 : 0;
  });
  EXPECT_EQ(exit_code, 0);
}

}  // namespace
}  // namespace zwrm::jail
