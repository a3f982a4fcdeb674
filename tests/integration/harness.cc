#include "tests/integration/harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sqlite3.h>

extern char** environ;

namespace zwrm::integration {

namespace {

namespace fs = std::filesystem;

// Variables that point zwrm at state or artifacts. The harness sets the
// first two itself and drops the rest, so the developer's own settings
// cannot redirect the binary under test.
constexpr const char* kOwnedVariables[] = {"ZWRM_HOME", "ZWRM_CACHE_DIR", "ZWRM_INIT", "ZWRM_DATA_DIR",
                                           "ZWRM_SECRET_KEY"};

std::string read_whole_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream content;
  content << file.rdbuf();
  return content.str();
}

int decode_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Reaps pid if it has exited. Returns its exit code then, else nullopt.
std::optional<int> try_reap(pid_t pid) {
  int status = 0;
  const pid_t done = ::waitpid(pid, &status, WNOHANG);
  if (done == pid) return decode_wait_status(status);
  return std::nullopt;
}

void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Returns the NUL-separated fields of /proc/PID/<name> (cmdline, environ).
std::vector<std::string> proc_fields(const std::string& pid, const char* name) {
  const std::string content = read_whole_file("/proc/" + pid + "/" + name);
  std::vector<std::string> fields;
  std::size_t start = 0;
  while (start < content.size()) {
    std::size_t end = content.find('\0', start);
    if (end == std::string::npos) end = content.size();
    fields.push_back(content.substr(start, end - start));
    start = end + 1;
  }
  return fields;
}

// Returns the pids of live processes for which matches(pid) is true.
std::vector<pid_t> find_processes(const std::function<bool(const std::string&)>& matches) {
  std::vector<pid_t> pids;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* entry = ::readdir(proc)) {
    const std::string name = entry->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (matches(name)) pids.push_back(static_cast<pid_t>(std::stol(name)));
  }
  ::closedir(proc);
  return pids;
}

// Child side of a spawn: runs between fork and execve.
[[noreturn]] void exec_child(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  // The test process may die at a ctest timeout; zwrm must not outlive it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int signal_number = 1; signal_number < NSIG; ++signal_number) ::signal(signal_number, SIG_DFL);
  ::syscall(SYS_close_range, 3, ~0U, 0);

  std::vector<char*> argv_pointers;
  for (const std::string& arg : argv) argv_pointers.push_back(const_cast<char*>(arg.c_str()));
  argv_pointers.push_back(nullptr);
  std::vector<char*> env_pointers;
  for (const std::string& entry : env) env_pointers.push_back(const_cast<char*>(entry.c_str()));
  env_pointers.push_back(nullptr);
  ::execve(argv_pointers[0], argv_pointers.data(), env_pointers.data());
  ::_exit(127);
}

std::vector<std::string> with_binary(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {zwrm_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

}  // namespace

std::string zwrm_binary() { return ZWRM_TEST_BINARY; }

std::string shared_cache_dir() {
  const char* configured = std::getenv("ZWRM_TEST_CACHE_DIR");
  return configured != nullptr && *configured != '\0' ? configured : "/var/lib/zwrm/cache";
}

bool wait_until(const std::function<bool()>& condition, Milliseconds timeout, Milliseconds interval) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

std::vector<std::string> run_args(const std::string& project, const std::vector<std::string>& command,
                                  const std::vector<std::string>& options) {
  std::vector<std::string> args = {"run", "--memory", kSmallMemory, "--project", project};
  args.insert(args.end(), options.begin(), options.end());
  args.push_back("--");
  args.insert(args.end(), command.begin(), command.end());
  return args;
}

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    lines.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::string strip_leading_progress(std::string_view stderr_text) {
  while (stderr_text.starts_with("zwrm: ") && !stderr_text.starts_with("zwrm: error:")) {
    const std::size_t newline = stderr_text.find('\n');
    if (newline == std::string_view::npos) return {};
    stderr_text.remove_prefix(newline + 1);
  }
  return std::string(stderr_text);
}

std::ostream& operator<<(std::ostream& stream, const Outcome& outcome) {
  stream << "exit code " << outcome.exit_code << " after " << outcome.elapsed.count() << " ms"
         << (outcome.timed_out ? " (killed at the harness timeout)" : "") << "\n--- stdout ("
         << outcome.out.size() << " bytes) ---\n"
         << (outcome.out.size() > 4096 ? outcome.out.substr(0, 4096) + "[...]" : outcome.out)
         << "\n--- stderr ---\n"
         << outcome.err << "\n---";
  return stream;
}

// Background

Background::Background(pid_t pid, std::string out_path, std::string err_path, int stdin_fd)
    : pid_(pid), out_path_(std::move(out_path)), err_path_(std::move(err_path)), stdin_fd_(stdin_fd) {}

Background::~Background() {
  close_stdin();
  if (!exit_code_) kill_and_reap(pid_);
}

std::string Background::out() const { return read_whole_file(out_path_); }
std::string Background::err() const { return read_whole_file(err_path_); }

bool Background::wait_for_output(std::string_view text, Milliseconds timeout) {
  return wait_until(
      [&] {
        if (out().find(text) != std::string::npos) return true;
        if (!exit_code_) exit_code_ = try_reap(pid_);
        return exit_code_.has_value();
      },
      timeout) &&
         out().find(text) != std::string::npos;
}

void Background::write_stdin(std::string_view bytes) {
  ASSERT_GE(stdin_fd_, 0) << "the process was started without an open stdin";
  while (!bytes.empty()) {
    const ssize_t count = ::write(stdin_fd_, bytes.data(), bytes.size());
    if (count < 0 && errno == EINTR) continue;
    ASSERT_GT(count, 0) << "cannot write to zwrm's stdin: " << std::strerror(errno);
    bytes.remove_prefix(static_cast<std::size_t>(count));
  }
}

void Background::close_stdin() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

void Background::send_signal(int signal_number) const {
  if (!exit_code_) ::kill(pid_, signal_number);
}

std::optional<Outcome> Background::wait(Milliseconds timeout) {
  wait_until(
      [&] {
        if (!exit_code_) exit_code_ = try_reap(pid_);
        return exit_code_.has_value();
      },
      timeout, 20ms);
  if (!exit_code_) return std::nullopt;
  Outcome outcome;
  outcome.exit_code = *exit_code_;
  outcome.out = out();
  outcome.err = err();
  outcome.elapsed = std::chrono::duration_cast<Milliseconds>(Clock::now() - started_);
  return outcome;
}

// Terminal

Terminal::Terminal(pid_t pid, int master_fd) : pid_(pid), master_fd_(master_fd) { set_nonblocking(master_fd_); }

Terminal::~Terminal() {
  if (!exit_code_) kill_and_reap(pid_);
  ::close(master_fd_);
}

void Terminal::type(std::string_view keys) {
  while (!keys.empty()) {
    const ssize_t count = ::write(master_fd_, keys.data(), keys.size());
    if (count < 0 && (errno == EINTR || errno == EAGAIN)) {
      read_some(10ms);
      continue;
    }
    ASSERT_GT(count, 0) << "cannot write to the terminal: " << std::strerror(errno);
    keys.remove_prefix(static_cast<std::size_t>(count));
  }
}

bool Terminal::read_some(Milliseconds wait) {
  pollfd fd{master_fd_, POLLIN, 0};
  if (::poll(&fd, 1, static_cast<int>(wait.count())) <= 0) return true;
  char buffer[4096];
  const ssize_t count = ::read(master_fd_, buffer, sizeof buffer);
  if (count > 0) {
    screen_.append(buffer, static_cast<std::size_t>(count));
    return true;
  }
  // EIO: every holder of the slave side closed it, so zwrm has exited.
  return count < 0 && (errno == EAGAIN || errno == EINTR);
}

bool Terminal::wait_for(std::string_view text, Milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const std::size_t found = screen_.find(text, cursor_);
    if (found != std::string::npos) {
      cursor_ = found + text.size();
      return true;
    }
    if (Clock::now() >= deadline) return false;
    if (!read_some(50ms) && screen_.find(text, cursor_) == std::string::npos) return false;
  }
}

void Terminal::resize(unsigned short rows, unsigned short cols) {
  winsize size{rows, cols, 0, 0};
  ASSERT_EQ(::ioctl(master_fd_, TIOCSWINSZ, &size), 0) << std::strerror(errno);
  ::kill(pid_, SIGWINCH);
}

std::optional<int> Terminal::wait(Milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!exit_code_ && Clock::now() < deadline) {
    read_some(20ms);
    exit_code_ = try_reap(pid_);
  }
  // Collect what zwrm printed just before it exited.
  while (exit_code_ && Clock::now() < deadline) {
    const std::size_t before = screen_.size();
    if (!read_some(20ms) || screen_.size() == before) break;
  }
  return exit_code_;
}

// TestHome

TestHome::TestHome() : cache_(shared_cache_dir()) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string pattern = std::string(tmpdir != nullptr && *tmpdir == '/' ? tmpdir : "/tmp") + "/zwrm-it.XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "cannot create a test directory " << pattern << ": " << std::strerror(errno);
  }
  root_ = pattern;
  home_ = root_ + "/home";
  scratch_ = root_ + "/scratch";
  fs::create_directories(home_);
  fs::create_directories(scratch_);
}

TestHome::~TestHome() {
  // Whatever the test left running under this home (a CLI, a supervisor
  // and through it a VMM) carries ZWRM_HOME in its environment.
  const std::string marker = "ZWRM_HOME=" + home_;
  auto leftovers = [&] {
    return find_processes([&](const std::string& pid) {
      for (const std::string& entry : proc_fields(pid, "environ")) {
        if (entry == marker) return true;
      }
      return false;
    });
  };
  for (pid_t pid : leftovers()) ::kill(pid, SIGKILL);
  for (pid_t pid : vmm_pids()) ::kill(pid, SIGKILL);
  wait_until([&] { return leftovers().empty() && vmm_pids().empty(); }, 10s);

  std::error_code error;
  fs::remove_all(root_, error);
  if (error) ADD_FAILURE() << "cannot remove " << root_ << ": " << error.message();
}

void TestHome::set_env(const std::string& name, const std::string& value) {
  for (auto& [existing, existing_value] : extra_env_) {
    if (existing == name) {
      existing_value = value;
      return;
    }
  }
  extra_env_.emplace_back(name, value);
}

std::vector<std::string> TestHome::environment() const {
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    bool owned = false;
    for (const char* name : kOwnedVariables) {
      owned = owned || (text.starts_with(name) && text.size() > std::strlen(name) && text[std::strlen(name)] == '=');
    }
    for (const auto& [name, value] : extra_env_) {
      owned = owned || (text.starts_with(name) && text.size() > name.size() && text[name.size()] == '=');
    }
    if (!owned) env.emplace_back(text);
  }
  env.push_back("ZWRM_HOME=" + home_);
  env.push_back("ZWRM_CACHE_DIR=" + cache_);
  // Each test has its own secret key, never the host's.
  env.push_back("ZWRM_SECRET_KEY=" + root_ + "/keys/secret.key");
  for (const auto& [name, value] : extra_env_) env.push_back(name + "=" + value);
  return env;
}

pid_t TestHome::spawn(const std::vector<std::string>& argv, int stdin_fd, int stdout_fd, int stderr_fd) const {
  const std::vector<std::string> env = environment();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(stdin_fd, 0);
    ::dup2(stdout_fd, 1);
    ::dup2(stderr_fd, 2);
    exec_child(argv, env);
  }
  if (pid < 0) ADD_FAILURE() << "cannot fork: " << std::strerror(errno);
  return pid;
}

Outcome TestHome::zwrm(const std::vector<std::string>& args, const InvokeOptions& options) {
  return invoke(with_binary(args), options);
}

Outcome TestHome::shell(const std::string& script, const InvokeOptions& options) {
  return invoke({"/bin/sh", "-c", script}, options);
}

Outcome TestHome::invoke(const std::vector<std::string>& argv, const InvokeOptions& options) {
  int in[2];
  int out[2];
  int err[2];
  Outcome outcome;
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "cannot create pipes: " << std::strerror(errno);
    return outcome;
  }
  const auto started = Clock::now();
  const pid_t pid = spawn(argv, in[0], out[1], err[1]);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  int stdin_fd = in[1];
  std::string_view pending = options.stdin_bytes ? std::string_view(*options.stdin_bytes) : std::string_view();
  if (!options.stdin_bytes) {
    ::close(stdin_fd);
    stdin_fd = -1;
  } else {
    set_nonblocking(stdin_fd);
  }
  ::signal(SIGPIPE, SIG_IGN);

  int readers[2] = {out[0], err[0]};
  std::string* sinks[2] = {&outcome.out, &outcome.err};
  std::optional<int> exit_code;
  std::optional<Clock::time_point> exited_at;
  const auto deadline = started + options.timeout;
  while (readers[0] >= 0 || readers[1] >= 0 || !exit_code) {
    if (stdin_fd >= 0 && pending.empty()) {
      ::close(stdin_fd);
      stdin_fd = -1;
    }
    pollfd fds[3] = {{readers[0], POLLIN, 0}, {readers[1], POLLIN, 0}, {stdin_fd, POLLOUT, 0}};
    ::poll(fds, 3, 20);
    for (int i = 0; i < 2; ++i) {
      if (readers[i] < 0 || fds[i].revents == 0) continue;
      char buffer[65536];
      const ssize_t count = ::read(readers[i], buffer, sizeof buffer);
      if (count > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(count));
      } else if (count == 0 || errno != EINTR) {
        ::close(readers[i]);
        readers[i] = -1;
      }
    }
    if (stdin_fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR))) {
      const ssize_t count = ::write(stdin_fd, pending.data(), pending.size());
      if (count > 0) {
        pending.remove_prefix(static_cast<std::size_t>(count));
      } else if (count < 0 && errno != EAGAIN && errno != EINTR) {
        pending = {};  // zwrm closed its stdin; the rest is not wanted
      }
    }
    if (!exit_code) {
      exit_code = try_reap(pid);
      if (exit_code) exited_at = Clock::now();
    }
    // zwrm's own descriptors close when it exits. A descendant that keeps
    // them open gets a moment, then the harness stops reading.
    if (exited_at && Clock::now() - *exited_at > 2s) break;
    if (!exit_code && Clock::now() >= deadline) {
      outcome.timed_out = true;
      kill_and_reap(pid);
      exit_code = 128 + SIGKILL;
      exited_at = Clock::now();
    }
  }
  for (int fd : {readers[0], readers[1], stdin_fd}) {
    if (fd >= 0) ::close(fd);
  }
  outcome.exit_code = *exit_code;
  outcome.elapsed = std::chrono::duration_cast<Milliseconds>(Clock::now() - started);
  return outcome;
}

std::unique_ptr<Background> TestHome::start(const std::vector<std::string>& args, bool open_stdin) {
  const int number = ++background_count_;
  const std::string out_path = scratch_ + "/background-" + std::to_string(number) + ".out";
  const std::string err_path = scratch_ + "/background-" + std::to_string(number) + ".err";
  const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int in[2] = {-1, -1};
  if (open_stdin) {
    if (::pipe2(in, O_CLOEXEC) != 0) ADD_FAILURE() << "cannot create a pipe: " << std::strerror(errno);
  } else {
    in[0] = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  const pid_t pid = spawn(with_binary(args), in[0], out_fd, err_fd);
  ::close(in[0]);
  ::close(out_fd);
  ::close(err_fd);
  return std::make_unique<Background>(pid, out_path, err_path, in[1]);
}

std::unique_ptr<Terminal> TestHome::start_terminal(const std::vector<std::string>& args, unsigned short rows,
                                                   unsigned short cols) {
  const std::vector<std::string> argv = with_binary(args);
  std::vector<std::string> env = environment();
  env.push_back("TERM=xterm");
  winsize size{rows, cols, 0, 0};
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, &size);
  if (pid == 0) exec_child(argv, env);
  if (pid < 0) ADD_FAILURE() << "cannot start a pseudo-terminal: " << std::strerror(errno);
  ::fcntl(master, F_SETFD, FD_CLOEXEC);
  return std::make_unique<Terminal>(pid, master);
}

std::vector<pid_t> TestHome::vmm_pids() const {
  // Every run of this home has a row in its runs table, and its VMM runs
  // with `-name zwrm-RUNID`. The row outlives the supervisor, so a VMM left
  // behind by a killed supervisor is still found.
  std::vector<std::string> names;
  const std::string path = home_ + "/zwrm.db";
  sqlite3* db = nullptr;
  if (fs::exists(path) && sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 10'000);
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT id FROM runs", -1, &statement, nullptr) == SQLITE_OK) {
      while (sqlite3_step(statement) == SQLITE_ROW) {
        names.push_back("zwrm-" + std::string(reinterpret_cast<const char*>(sqlite3_column_text(statement, 0))));
      }
    }
    sqlite3_finalize(statement);
  }
  sqlite3_close(db);
  if (names.empty()) return {};
  return find_processes([&](const std::string& pid) {
    const std::vector<std::string> argv = proc_fields(pid, "cmdline");
    if (argv.empty() || fs::path(argv[0]).filename().string().rfind("qemu-system", 0) != 0) return false;
    for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
      if (argv[i] == "-name" && std::find(names.begin(), names.end(), argv[i + 1]) != names.end()) return true;
    }
    return false;
  });
}

std::vector<std::string> TestHome::run_directories() const {
  std::vector<std::string> entries;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(home_ + "/run", error)) {
    entries.push_back(entry.path().filename().string());
  }
  return entries;
}

std::vector<nlohmann::json> TestHome::runs(bool all) {
  std::vector<std::string> args = {"ps", "--json"};
  if (all) args.push_back("-a");
  const Outcome listed = zwrm(args);
  EXPECT_EQ(listed.exit_code, 0) << listed;
  std::vector<nlohmann::json> runs;
  for (const std::string& line : split_lines(listed.out)) {
    nlohmann::json run = nlohmann::json::parse(line, nullptr, false);
    EXPECT_TRUE(run.is_object()) << "zwrm ps --json printed a line that is not a JSON object: " << line;
    if (run.is_object()) runs.push_back(std::move(run));
  }
  return runs;
}

std::int64_t TestHome::event_count() const {
  const std::string path = home_ + "/zwrm.db";
  if (!fs::exists(path)) return 0;
  sqlite3* db = nullptr;
  std::int64_t count = -1;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 10'000);
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &statement, nullptr) == SQLITE_OK &&
        sqlite3_step(statement) == SQLITE_ROW) {
      count = sqlite3_column_int64(statement, 0);
    }
    sqlite3_finalize(statement);
  }
  if (count < 0) ADD_FAILURE() << "cannot count the events in " << path << ": " << sqlite3_errmsg(db);
  sqlite3_close(db);
  return count;
}

std::vector<nlohmann::json> TestHome::events(const std::string& type) const {
  std::vector<nlohmann::json> rows;
  const std::string path = home_ + "/zwrm.db";
  if (!fs::exists(path)) return rows;
  sqlite3* db = nullptr;
  bool ok = false;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 10'000);
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT data FROM events WHERE type = ? ORDER BY id", -1, &statement, nullptr) ==
        SQLITE_OK) {
      sqlite3_bind_text(statement, 1, type.c_str(), -1, SQLITE_TRANSIENT);
      int code = SQLITE_ROW;
      while ((code = sqlite3_step(statement)) == SQLITE_ROW) {
        rows.push_back(nlohmann::json::parse(reinterpret_cast<const char*>(sqlite3_column_text(statement, 0))));
      }
      ok = code == SQLITE_DONE;
    }
    sqlite3_finalize(statement);
  }
  if (!ok) ADD_FAILURE() << "cannot read the " << type << " events in " << path << ": " << sqlite3_errmsg(db);
  sqlite3_close(db);
  return rows;
}

std::string TestHome::volume_path(const std::string& project) const { return home_ + "/volumes/" + project + ".ext4"; }

std::string TestHome::volume_digest(const std::string& project) const {
  const std::string path = volume_path(project);
  if (!fs::exists(path)) return {};
  return sha256_hex(read_whole_file(path));
}

std::string copy_cache(const std::string& destination, bool accel_verdict) {
  const fs::path source = shared_cache_dir();
  std::error_code error;
  fs::create_directories(fs::path(destination) / "templates", error);
  if (error) return "cannot create " + destination + ": " + error.message();
  fs::copy(source / "kernels", fs::path(destination) / "kernels", fs::copy_options::recursive, error);
  if (error) return "cannot copy " + (source / "kernels").string() + ": " + error.message();

  for (const fs::directory_entry& entry : fs::directory_iterator(source, error)) {
    const std::string name = entry.path().filename().string();
    if (accel_verdict && name.starts_with("accel-")) fs::copy(entry.path(), fs::path(destination) / name, error);
    if (error) return "cannot copy " + entry.path().string() + ": " + error.message();
  }
  for (const fs::directory_entry& entry : fs::directory_iterator(source / "templates", error)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("minimal-") || !entry.is_directory() || name.find(".build-") != std::string::npos) continue;
    const fs::path target = fs::path(destination) / "templates" / name;
    fs::copy(entry.path(), target, fs::copy_options::recursive | fs::copy_options::copy_symlinks, error);
    if (error) return "cannot copy " + entry.path().string() + ": " + error.message();
    // zwrm checks an image's size and mtime against its manifest, and a
    // copy gets a new mtime.
    fs::last_write_time(target / "rootfs.ext4", fs::last_write_time(entry.path() / "rootfs.ext4"), error);
    if (error) return "cannot set the mtime of " + (target / "rootfs.ext4").string() + ": " + error.message();
  }
  if (error) return "cannot list " + source.string() + ": " + error.message();
  return {};
}

}  // namespace zwrm::integration
