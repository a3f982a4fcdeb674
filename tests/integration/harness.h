// Harness for integration tests that drive the real zwrm binary and boot real
// VMs. Each test owns a TestHome: a temporary ZWRM_HOME (state, volumes,
// logs) that is removed afterwards, while the artifact cache (kernel,
// initramfs, template images) is shared between tests, because its entries
// are content-addressed and written atomically.
//
//   ZWRM_TEST_CACHE_DIR   artifact cache for the tests (default
//                         /var/lib/zwrm/cache, the cache ./setup.sh fills)
//
// The harness only observes zwrm from outside: exit codes, output, files
// under ZWRM_HOME, `zwrm ps --json` and /proc. It never links zwrm's code.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace zwrm::integration {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Milliseconds = std::chrono::milliseconds;

// Returns the path of the zwrm binary under test (set by CMake).
std::string zwrm_binary();

// Returns the shared artifact cache: $ZWRM_TEST_CACHE_DIR, else
// /var/lib/zwrm/cache.
std::string shared_cache_dir();

// Calls condition every interval until it returns true or timeout passes.
// Returns whether it became true.
bool wait_until(const std::function<bool()>& condition, Milliseconds timeout, Milliseconds interval = 50ms);

// Returns the hex SHA-256 of bytes.
std::string sha256_hex(std::string_view bytes);

// Memory for test VMs that need no more: enough for the minimal template.
inline constexpr const char* kSmallMemory = "256M";

// Builds the arguments of `zwrm run` for a small VM of project: options go
// before `--`, the guest command after it.
std::vector<std::string> run_args(const std::string& project, const std::vector<std::string>& command,
                                  const std::vector<std::string>& options = {});

// Returns the lines of text, each without its '\n'. A final line without
// '\n' is included.
std::vector<std::string> split_lines(std::string_view text);

// Removes the lines zwrm prints about its own progress ("zwrm: ..." but not
// "zwrm: error: ...") from the start of stderr, so tests can compare the
// rest exactly. Progress lines are allowed only before any output of the
// guest command.
std::string strip_leading_progress(std::string_view stderr_text);

// How one zwrm process ended and what it printed.
struct Outcome {
  int exit_code = -1;  // the exit status, or 128 + N when killed by signal N
  std::string out;
  std::string err;
  Milliseconds elapsed{0};
  bool timed_out = false;  // the harness killed it at its timeout
};

// Prints an Outcome in gtest failure messages.
std::ostream& operator<<(std::ostream& stream, const Outcome& outcome);

struct InvokeOptions {
  // Bytes written to zwrm's stdin, which is then closed. Without them stdin
  // is /dev/null.
  std::optional<std::string> stdin_bytes;
  // The harness kills zwrm with SIGKILL after this long.
  Milliseconds timeout = 120s;
};

// A zwrm process running in the background with stdout and stderr captured
// into files.
class Background {
 public:
  Background(pid_t pid, std::string out_path, std::string err_path, int stdin_fd);
  ~Background();  // SIGKILLs and reaps the process if it still runs
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  pid_t pid() const { return pid_; }
  std::string out() const;
  std::string err() const;

  // Waits until stdout contains text. Returns false on timeout or when the
  // process exited first.
  bool wait_for_output(std::string_view text, Milliseconds timeout);

  // Writes to the process's stdin (only when started with an open stdin).
  void write_stdin(std::string_view bytes);
  void close_stdin();

  void send_signal(int signal_number) const;

  // Waits for the process to exit. Returns nullopt when it still runs after
  // timeout (it is left running).
  std::optional<Outcome> wait(Milliseconds timeout);

 private:
  pid_t pid_;
  std::string out_path_;
  std::string err_path_;
  int stdin_fd_;
  Clock::time_point started_ = Clock::now();
  std::optional<int> exit_code_;
};

// A zwrm process on the slave side of a pseudo-terminal, as a user at a
// terminal would run it.
class Terminal {
 public:
  Terminal(pid_t pid, int master_fd);
  ~Terminal();  // SIGKILLs and reaps the process if it still runs
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  pid_t pid() const { return pid_; }

  // Writes keys to the terminal as typed (use "\r" for Enter, "\x03" for
  // Ctrl-C).
  void type(std::string_view keys);

  // Reads output until text appears after the point the previous successful
  // wait_for stopped at. On success, the next search starts after the match.
  bool wait_for(std::string_view text, Milliseconds timeout);

  // Sets the terminal's size on the master side and sends SIGWINCH to zwrm,
  // as a terminal emulator does when its window changes.
  void resize(unsigned short rows, unsigned short cols);

  // Everything zwrm printed on the terminal so far.
  const std::string& screen() const { return screen_; }

  // Waits for zwrm to exit, reading its output meanwhile. Returns its exit
  // code, or nullopt on timeout.
  std::optional<int> wait(Milliseconds timeout);

 private:
  // Reads what the master has within `wait`. Returns false at the end of output.
  bool read_some(Milliseconds wait);

  pid_t pid_;
  int master_fd_;
  std::string screen_;
  std::size_t cursor_ = 0;
  std::optional<int> exit_code_;
};

// One test's private zwrm state directory and the environment zwrm runs in.
class TestHome {
 public:
  TestHome();   // creates a fresh directory under $TMPDIR or /tmp
  ~TestHome();  // kills what the test left running in it, then removes it
  TestHome(const TestHome&) = delete;
  TestHome& operator=(const TestHome&) = delete;

  // ZWRM_HOME for every zwrm started through this object.
  const std::string& home() const { return home_; }
  // A directory for the test's own files, outside ZWRM_HOME.
  const std::string& scratch() const { return scratch_; }
  // ZWRM_SECRET_KEY for every zwrm started through this object: the
  // test's own key, under the test directory.
  std::string secret_key() const { return root_ + "/keys/secret.key"; }
  // ZWRM_CACHE_DIR for every zwrm started through this object.
  const std::string& cache() const { return cache_; }
  void set_cache(std::string cache) { cache_ = std::move(cache); }
  // Adds or replaces a variable in zwrm's environment.
  void set_env(const std::string& name, const std::string& value);

  // Runs zwrm with args and waits for it.
  Outcome zwrm(const std::vector<std::string>& args, const InvokeOptions& options = {});
  // Runs a /bin/sh script (for pipelines around zwrm) in zwrm's environment
  // and waits for it.
  Outcome shell(const std::string& script, const InvokeOptions& options = {});

  // Starts zwrm with args in the background. With open_stdin, its stdin is a
  // pipe the test writes to. Otherwise its stdin is /dev/null.
  std::unique_ptr<Background> start(const std::vector<std::string>& args, bool open_stdin = false);

  // Starts zwrm with args on a new pseudo-terminal of the given size.
  std::unique_ptr<Terminal> start_terminal(const std::vector<std::string>& args, unsigned short rows,
                                           unsigned short cols);

  // Returns the pids of QEMU processes started for a run of this ZWRM_HOME
  // (found by the run ids in its database), so VMs of other homes and other
  // users are never counted.
  std::vector<pid_t> vmm_pids() const;

  // Returns the entries of $ZWRM_HOME/run (one per live run).
  std::vector<std::string> run_directories() const;

  // Returns the runs `zwrm ps --json` lists (`-a` with all), one object each.
  std::vector<nlohmann::json> runs(bool all);

  // Returns the number of rows in the events table of $ZWRM_HOME/zwrm.db, or
  // 0 when the database does not exist yet.
  std::int64_t event_count() const;

  // Returns the data of every event of type in $ZWRM_HOME/zwrm.db, oldest
  // first.
  std::vector<nlohmann::json> events(const std::string& type) const;

  // Returns the hex SHA-256 of a project's volume image, or an empty string
  // when the project has none.
  std::string volume_digest(const std::string& project) const;

  // Returns the path of a project's volume image.
  std::string volume_path(const std::string& project) const;

 private:
  std::vector<std::string> environment() const;
  pid_t spawn(const std::vector<std::string>& argv, int stdin_fd, int stdout_fd, int stderr_fd) const;
  Outcome invoke(const std::vector<std::string>& argv, const InvokeOptions& options);

  std::string root_;
  std::string home_;
  std::string scratch_;
  std::string cache_;
  std::vector<std::pair<std::string, std::string>> extra_env_;
  int background_count_ = 0;
};

// Copies the kernel and minimal template entries of the shared cache into
// destination, so a test can damage artifacts without touching the shared
// cache. zwrm writes the initramfs there on first use. With accel_verdict,
// the cached KVM probe verdicts are copied too, else the next run probes KVM
// again. Returns an empty string, or what failed.
std::string copy_cache(const std::string& destination, bool accel_verdict);

}  // namespace zwrm::integration
