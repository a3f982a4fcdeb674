#include "guest/init/spawn.h"

#include <fcntl.h>
#include <grp.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "guest/init/tcp_streams.h"

namespace zwrm::guest {

namespace {

// What the child reports through the exec-error pipe when it fails before
// execve: the step and errno.
struct ChildFailure {
  int step = 0;  // 1: chdir, 2: set credentials, 3: execve, 4: terminal
  int error = 0;
};

std::string env_value(const std::vector<std::string>& env, const std::string& key) {
  for (const std::string& entry : env) {
    if (entry.size() > key.size() && entry.compare(0, key.size(), key) == 0 && entry[key.size()] == '=') {
      return entry.substr(key.size() + 1);
    }
  }
  return {};
}

// Resolves argv[0] against PATH from the request's environment (execvpe
// would use the init's own, empty environment). Returns an empty string when
// nothing executable is found.
std::string resolve_program(const std::string& name, const std::vector<std::string>& env, int& error) {
  error = ENOENT;
  if (name.find('/') != std::string::npos) {
    error = 0;
    return name;
  }
  std::string path = env_value(env, "PATH");
  if (path.empty()) path = "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    const std::string directory = end > start ? path.substr(start, end - start) : ".";
    const std::string candidate = directory + "/" + name;
    struct stat info {};
    if (::stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode)) {
      if (::access(candidate.c_str(), X_OK) == 0) {
        error = 0;
        return candidate;
      }
      error = EACCES;
    }
    start = end + 1;
  }
  return {};
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

[[noreturn]] void child_fail(int report_fd, int step) {
  ChildFailure failure{step, errno};
  (void)!::write(report_fd, &failure, sizeof failure);
  ::_exit(127);
}

// Runs in the child between fork and execve: only async-signal-safe calls.
[[noreturn]] void run_child(const protocol::ExecRequest& request, const std::string& program, char* const* argv,
                            char* const* envp, int stdin_fd, int stdout_fd, int stderr_fd, int terminal_fd,
                            int report_fd) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int signal_number = 1; signal_number < NSIG; ++signal_number) ::signal(signal_number, SIG_DFL);

  ::setsid();
  const rlimit files{kProcessOpenFiles, kInitOpenFiles};
  ::setrlimit(RLIMIT_NOFILE, &files);
  if (terminal_fd >= 0 && ::ioctl(terminal_fd, TIOCSCTTY, 0) != 0) child_fail(report_fd, 4);
  ::dup2(stdin_fd, 0);
  ::dup2(stdout_fd, 1);
  ::dup2(stderr_fd, 2);
  // Keep only 0-2 and the report pipe (close-on-exec) open.
  ::syscall(SYS_close_range, 3, report_fd - 1, 0);
  ::syscall(SYS_close_range, report_fd + 1, ~0U, 0);

  const gid_t gid = request.gid;
  if (::setgroups(1, &gid) != 0 || ::setresgid(gid, gid, gid) != 0 ||
      ::setresuid(request.uid, request.uid, request.uid) != 0) {
    child_fail(report_fd, 2);
  }
  if (::chdir(request.cwd.c_str()) != 0) child_fail(report_fd, 1);
  ::execve(program.c_str(), argv, envp);
  child_fail(report_fd, 3);
}

protocol::ExitStatus start_failure(int code, std::string message) {
  return protocol::ExitStatus{protocol::ExitStatus::Kind::kFailedToStart, code, std::move(message)};
}

// Points every process at the egress proxy, the guest's only way out,
// unless the request sets a variable itself. Programs differ in which
// spelling they read, so all four are set.
void add_proxy_variables(std::vector<std::string>& env) {
  const std::string proxy = kProxyUrl;
  const std::pair<const char*, std::string> variables[] = {
      {"HTTP_PROXY", proxy}, {"HTTPS_PROXY", proxy}, {"http_proxy", proxy}, {"https_proxy", proxy},
      {"NO_PROXY", "localhost,127.0.0.1,::1"}, {"no_proxy", "localhost,127.0.0.1,::1"},
  };
  for (const auto& [name, value] : variables) {
    const std::string prefix = std::string(name) + "=";
    const bool present = std::any_of(env.begin(), env.end(),
                                     [&](const std::string& entry) { return entry.compare(0, prefix.size(), prefix) == 0; });
    if (!present) env.push_back(prefix + value);
  }
}

}  // namespace

tl::expected<SpawnedProcess, protocol::ExitStatus> spawn_process(const protocol::ExecRequest& request) {
  int lookup_error = 0;
  const std::string program = resolve_program(request.argv[0], request.env, lookup_error);
  if (program.empty()) {
    if (lookup_error == EACCES) return tl::unexpected(start_failure(126, request.argv[0] + ": permission denied"));
    return tl::unexpected(start_failure(127, request.argv[0] + ": command not found"));
  }

  std::vector<std::string> argv_storage = request.argv;
  // A secret replaces a plain variable of the same name (getenv returns the
  // first match, so the plain one is dropped rather than shadowed).
  std::vector<std::string> env_storage;
  for (const std::string& entry : request.env) {
    const std::string key = entry.substr(0, entry.find('=') + 1);
    const bool replaced = std::any_of(request.secret_env.begin(), request.secret_env.end(),
                                      [&](const std::string& secret) { return secret.compare(0, key.size(), key) == 0; });
    if (!replaced) env_storage.push_back(entry);
  }
  env_storage.insert(env_storage.end(), request.secret_env.begin(), request.secret_env.end());
  add_proxy_variables(env_storage);
  std::vector<char*> argv;
  std::vector<char*> envp;
  for (std::string& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  for (std::string& entry : env_storage) envp.push_back(entry.data());
  envp.push_back(nullptr);

  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return tl::unexpected(start_failure(126, "cannot create a pipe"));
  UniqueFd report_read(report[0]);
  UniqueFd report_write(report[1]);

  SpawnedProcess process;
  UniqueFd child_stdin;
  UniqueFd child_stdout;
  UniqueFd child_stderr;
  UniqueFd terminal;
  if (request.tty) {
    int master = -1;
    int slave = -1;
    winsize size{request.rows, request.cols, 0, 0};
    if (::openpty(&master, &slave, nullptr, nullptr, size.ws_row > 0 ? &size : nullptr) != 0) {
      return tl::unexpected(start_failure(126, std::string("cannot open a terminal: ") + std::strerror(errno)));
    }
    ::fcntl(master, F_SETFD, FD_CLOEXEC);
    process.stdout_fd.reset(master);
    process.stdin_fd.reset(::fcntl(master, F_DUPFD_CLOEXEC, 0));
    terminal.reset(slave);
  } else {
    int in[2];
    int out[2];
    int err[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      return tl::unexpected(start_failure(126, "cannot create pipes"));
    }
    child_stdin.reset(in[0]);
    process.stdin_fd.reset(in[1]);
    process.stdout_fd.reset(out[0]);
    child_stdout.reset(out[1]);
    process.stderr_fd.reset(err[0]);
    child_stderr.reset(err[1]);
  }

  const int in_fd = request.tty ? terminal.get() : child_stdin.get();
  const int out_fd = request.tty ? terminal.get() : child_stdout.get();
  const int err_fd = request.tty ? terminal.get() : child_stderr.get();
  const pid_t pid = ::fork();
  if (pid < 0) return tl::unexpected(start_failure(126, std::string("cannot fork: ") + std::strerror(errno)));
  if (pid == 0) {
    run_child(request, program, argv.data(), envp.data(), in_fd, out_fd, err_fd, terminal.get(), report_write.get());
  }
  report_write.reset();

  ChildFailure failure;
  ssize_t count;
  do {
    count = ::read(report_read.get(), &failure, sizeof failure);
  } while (count < 0 && errno == EINTR);
  if (count == static_cast<ssize_t>(sizeof failure)) {
    // The child exits right after reporting; the session's SIGCHLD handler
    // reaps it like any other orphan.
    static constexpr const char* kSteps[] = {"", "cannot change to the working directory", "cannot switch user",
                                             "cannot execute", "cannot attach the terminal"};
    const int code = failure.step == 3 && failure.error == ENOENT ? 127 : 126;
    return tl::unexpected(start_failure(
        code, request.argv[0] + ": " + kSteps[failure.step] + ": " + std::strerror(failure.error)));
  }

  process.pid = pid;
  set_nonblocking(process.stdin_fd.get());
  set_nonblocking(process.stdout_fd.get());
  if (process.stderr_fd) set_nonblocking(process.stderr_fd.get());
  return process;
}

}  // namespace zwrm::guest
