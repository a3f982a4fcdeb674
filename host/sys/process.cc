#include "host/sys/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "common/unique_fd.h"

extern char** environ;

namespace zwrm::sys {

namespace {

constexpr std::size_t kOutputTail = 64 * 1024;

std::vector<std::string> merged_environment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view current(*entry);
    const std::string_view key = current.substr(0, current.find('='));
    bool replaced = false;
    for (const std::string& added : extra) {
      if (std::string_view(added).substr(0, added.find('=')) == key) replaced = true;
    }
    if (!replaced) env.emplace_back(current);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& values) {
  std::vector<char*> pointers;
  for (std::string& value : values) pointers.push_back(value.data());
  pointers.push_back(nullptr);
  return pointers;
}

}  // namespace

std::string ProcessResult::describe() const {
  std::string text;
  if (timed_out) {
    text = "timed out";
  } else if (signal != 0) {
    text = std::string("was killed by signal ") + strsignal(signal);
  } else {
    text = "exited with status " + std::to_string(exit_code);
  }
  // The most useful line: the last one containing "error", else the last line.
  std::string_view chosen;
  std::string_view rest(output);
  while (!rest.empty()) {
    const std::size_t newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
    if (line.empty()) continue;
    const bool says_error = line.find("error") != std::string_view::npos;
    if (says_error || chosen.find("error") == std::string_view::npos) chosen = line;
  }
  if (!chosen.empty()) text += ": " + std::string(chosen);
  return text;
}

std::string find_program(std::string_view name) {
  if (name.find('/') != std::string_view::npos) return std::string(name);
  const char* path = std::getenv("PATH");
  std::string_view directories = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  // Debian keeps mkfs.ext4 and friends in /sbin, which a non-root PATH lacks.
  std::string search = std::string(directories) + ":/usr/sbin:/sbin";
  std::size_t start = 0;
  while (start <= search.size()) {
    std::size_t end = search.find(':', start);
    if (end == std::string::npos) end = search.size();
    std::string candidate = search.substr(start, end - start) + "/" + std::string(name);
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

Result<ProcessResult> run_process(const std::vector<std::string>& argv, const ProcessOptions& options) {
  ZWRM_CHECK(!argv.empty());
  const std::string program = find_program(argv[0]);
  if (program.empty()) return fail(argv[0] + " not found in PATH; install it (see README)", ENOENT);

  int output_pipe[2];
  int input_pipe[2] = {-1, -1};
  if (::pipe2(output_pipe, O_CLOEXEC) != 0) return fail_errno("cannot create a pipe");
  UniqueFd output_read(output_pipe[0]);
  UniqueFd output_write(output_pipe[1]);
  if (options.stdin_data && ::pipe2(input_pipe, O_CLOEXEC) != 0) return fail_errno("cannot create a pipe");
  UniqueFd input_read(input_pipe[0]);
  UniqueFd input_write(input_pipe[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (options.stdin_data) {
    posix_spawn_file_actions_adddup2(&actions, input_read.get(), 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, output_write.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, output_write.get(), 2);
  if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, options.cwd.c_str());

  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t defaults;
  sigfillset(&defaults);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setsigmask(&attributes, &empty);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<std::string> args = argv;
  std::vector<std::string> env = merged_environment(options.extra_env);
  std::vector<char*> c_args = c_strings(args);
  std::vector<char*> c_env = c_strings(env);
  pid_t pid = -1;
  const int spawn_error = ::posix_spawn(&pid, program.c_str(), &actions, &attributes, c_args.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (spawn_error != 0) return fail_errno("cannot start " + program, spawn_error);
  output_write.reset();
  input_read.reset();

  ProcessResult result;
  std::string pending_line;
  std::size_t input_offset = 0;
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  if (input_write) ::fcntl(input_write.get(), F_SETFL, O_NONBLOCK);

  while (output_read) {
    pollfd fds[2] = {{output_read.get(), POLLIN, 0}, {input_write.get(), POLLOUT, 0}};
    int wait_ms = -1;
    if (options.timeout.count() > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        ::kill(pid, SIGKILL);
        result.timed_out = true;
        break;
      }
      wait_ms = static_cast<int>(left.count());
    }
    if (::poll(fds, input_write ? 2 : 1, wait_ms) < 0 && errno != EINTR) break;

    if (input_write && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const std::string& data = *options.stdin_data;
      const ssize_t count = ::write(input_write.get(), data.data() + input_offset, data.size() - input_offset);
      if (count > 0) input_offset += static_cast<std::size_t>(count);
      if (count < 0 && errno != EAGAIN) input_write.reset();
      if (input_offset == data.size()) input_write.reset();
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buffer[16 * 1024];
      const ssize_t count = ::read(output_read.get(), buffer, sizeof buffer);
      if (count <= 0) {
        if (count < 0 && errno == EINTR) continue;
        output_read.reset();
        break;
      }
      result.output.append(buffer, static_cast<std::size_t>(count));
      if (result.output.size() > 2 * kOutputTail) result.output.erase(0, result.output.size() - kOutputTail);
      if (options.on_line) {
        pending_line.append(buffer, static_cast<std::size_t>(count));
        std::size_t newline;
        while ((newline = pending_line.find('\n')) != std::string::npos) {
          options.on_line(std::string_view(pending_line).substr(0, newline));
          pending_line.erase(0, newline + 1);
        }
      }
    }
  }
  if (options.on_line && !pending_line.empty()) options.on_line(pending_line);
  if (result.output.size() > kOutputTail) result.output.erase(0, result.output.size() - kOutputTail);

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  } else {
    result.exit_code = WEXITSTATUS(status);
  }
  return result;
}

}  // namespace zwrm::sys
