#include "guest/init/shutdown.h"

#include <dirent.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "guest/init/log.h"

namespace zwrm::guest {

namespace {

constexpr unsigned long kKernelThreadFlag = 0x00200000;  // PF_KTHREAD in include/linux/sched.h

bool is_kernel_thread(const char* pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%s/stat", pid);
  FILE* file = std::fopen(path, "re");
  if (file == nullptr) return true;  // gone already: nothing to wait for
  char buffer[1024];
  const std::size_t size = std::fread(buffer, 1, sizeof buffer - 1, file);
  std::fclose(file);
  buffer[size] = '\0';
  const char* rest = std::strrchr(buffer, ')');
  unsigned long flags = 0;
  // After the command name: state, ppid, pgrp, session, tty_nr, tpgid, flags.
  if (rest == nullptr || std::sscanf(rest + 2, "%*c %*d %*d %*d %*d %*d %lu", &flags) != 1) return true;
  return (flags & kKernelThreadFlag) != 0;
}

// Reaps what has exited; returns true once no process but PID 1 and kernel
// threads remains. kill(-1, 0) cannot tell: it counts kernel threads too.
bool only_init_left() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return true;
  bool alone = true;
  while (dirent* entry = ::readdir(proc)) {
    const char* name = entry->d_name;
    if (name[0] < '1' || name[0] > '9' || std::strcmp(name, "1") == 0) continue;
    if (!is_kernel_thread(name)) {
      alone = false;
      break;
    }
  }
  ::closedir(proc);
  return alone;
}

}  // namespace

void power_off(int grace_ms) {
  if (!only_init_left()) {
    ::kill(-1, SIGTERM);
    for (int waited = 0; waited < grace_ms && !only_init_left(); waited += 10) ::usleep(10'000);
    if (!only_init_left()) {
      ::kill(-1, SIGKILL);
      for (int waited = 0; waited < 1000 && !only_init_left(); waited += 10) ::usleep(10'000);
    }
  }
  ::sync();
  ::umount2("/home/agent", MNT_DETACH);
  if (::umount2("/workspace", 0) != 0 && errno != EINVAL) {
    // A process still uses it, so make it read-only to leave the journal clean.
    ::mount(nullptr, "/workspace", nullptr, MS_REMOUNT | MS_RDONLY, nullptr);
  }
  ::sync();
  ::reboot(RB_AUTOBOOT);
  // reboot() only returns on failure; PID 1 must not exit (the kernel would panic).
  log_line("reboot failed: errno %d", errno);
  for (;;) ::pause();
}

}  // namespace zwrm::guest
