#include "tests/integration/test_network.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

namespace zwrm::integration {

namespace {

namespace fs = std::filesystem;

// 10.231.0.0/16, cut into 16384 /30 subnets.
constexpr std::uint32_t kPoolBase = (10u << 24) | (231u << 16);
constexpr std::uint32_t kPoolSubnets = 1u << 14;

// Serializes choosing a subnet and adding its address between test
// processes, so two of them cannot pick the same free /30. A fixed path,
// because concurrent tests may have different TMPDIRs.
constexpr const char* kSubnetLockPath = "/tmp/zwrm-test-network.lock";

constexpr Milliseconds kServerStartTimeout = 10s;
constexpr Milliseconds kServerStopTimeout = 5s;

std::atomic<int> network_count{0};

std::string read_whole_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream content;
  content << file.rdbuf();
  return content.str();
}

std::string join(const std::vector<std::string>& argv) {
  std::string text;
  for (const std::string& arg : argv) text += (text.empty() ? "" : " ") + arg;
  return text;
}

std::string format_ipv4(std::uint32_t address) {
  return std::to_string(address >> 24) + "." + std::to_string((address >> 16) & 0xff) + "." +
         std::to_string((address >> 8) & 0xff) + "." + std::to_string(address & 0xff);
}

std::string temp_root() {
  const char* tmpdir = std::getenv("TMPDIR");
  return tmpdir != nullptr && *tmpdir == '/' ? tmpdir : "/tmp";
}

int decode_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Forks and runs argv with stdin on /dev/null and stdout and stderr on the
// given descriptors. The child gets SIGKILL when the calling thread ends, so
// a test killed at its timeout leaves no server behind.
pid_t spawn(const std::vector<std::string>& argv, int stdout_fd, int stderr_fd) {
  std::vector<char*> pointers;
  for (const std::string& arg : argv) pointers.push_back(const_cast<char*>(arg.c_str()));
  pointers.push_back(nullptr);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  const int null_fd = ::open("/dev/null", O_RDONLY);
  ::dup2(null_fd, 0);
  ::dup2(stdout_fd, 1);
  ::dup2(stderr_fd, 2);
  ::syscall(SYS_close_range, 3, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execvp(pointers[0], pointers.data());
  ::_exit(127);
}

// Runs argv and returns an empty string when it exits with 0, else the
// command, its exit code and its stderr.
std::string run_checked(const std::vector<std::string>& argv) {
  const CommandResult result = run_command(argv);
  if (result.exit_code == 0) return {};
  return "`" + join(argv) + "` failed with exit code " + std::to_string(result.exit_code) + ": " + result.err;
}

// Holds an exclusive flock on kSubnetLockPath while it exists.
class SubnetLock {
 public:
  SubnetLock() : fd_(::open(kSubnetLockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    if (fd_ < 0 || ::flock(fd_, LOCK_EX) != 0) {
      error_ = std::string("cannot lock ") + kSubnetLockPath + ": " + std::strerror(errno);
    }
  }
  ~SubnetLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  SubnetLock(const SubnetLock&) = delete;
  SubnetLock& operator=(const SubnetLock&) = delete;

  const std::string& error() const { return error_; }

 private:
  int fd_;
  std::string error_;
};

// An inclusive range of IPv4 addresses.
struct AddressRange {
  std::uint32_t first;
  std::uint32_t last;
};

// Returns every address and prefix ("a.b.c.d" or "a.b.c.d/n") in text as a
// range. A bare address is a range of one.
std::vector<AddressRange> find_ranges(const std::string& text) {
  static const std::regex kAddress(R"((\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:/(\d{1,2}))?)");
  std::vector<AddressRange> ranges;
  for (auto match = std::sregex_iterator(text.begin(), text.end(), kAddress); match != std::sregex_iterator();
       ++match) {
    std::uint32_t address = 0;
    for (int i = 1; i <= 4; ++i) address = (address << 8) | (std::stoul((*match)[i].str()) & 0xff);
    const int prefix = (*match)[5].matched ? std::min(std::stoi((*match)[5].str()), 32) : 32;
    const std::uint32_t host_mask = prefix == 0 ? ~0u : (1u << (32 - prefix)) - 1;
    ranges.push_back({address & ~host_mask, address | host_mask});
  }
  return ranges;
}

// Returns the host's IPv4 addresses and routes, as ranges, or an error.
std::string collect_used_ranges(std::vector<AddressRange>* ranges) {
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{"ip", "-4", "-o", "addr", "show"}, {"ip", "-4", "route", "show", "table", "all"}}) {
    const CommandResult result = run_command(argv);
    if (result.exit_code != 0) {
      return "`" + join(argv) + "` failed with exit code " + std::to_string(result.exit_code) + ": " + result.err;
    }
    const std::vector<AddressRange> found = find_ranges(result.out);
    ranges->insert(ranges->end(), found.begin(), found.end());
  }
  return {};
}

// Returns whether pid is a process that has not exited. A zombie has.
// NOTE: a pid that the kernel reused for another process counts as alive, so
// a namespace of a test killed with SIGKILL stays until that process ends.
bool process_running(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  const std::string stat = read_whole_file("/proc/" + std::to_string(pid) + "/stat");
  const std::size_t name_end = stat.rfind(')');
  return name_end == std::string::npos || name_end + 2 >= stat.size() || stat[name_end + 2] != 'Z';
}

// Kills the zwrm-test-server processes left in namespace_name, so that
// deleting the namespace also frees its veth pair.
void kill_stale_servers(const std::string& namespace_name) {
  const CommandResult pids = run_command({"ip", "netns", "pids", namespace_name});
  std::istringstream lines(pids.out);
  for (std::string pid; std::getline(lines, pid);) {
    // comm is cut at 15 characters.
    if (read_whole_file("/proc/" + pid + "/comm") == "zwrm-test-serve\n") ::kill(std::stoi(pid), SIGKILL);
  }
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv) {
  CommandResult result;
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    result.err = std::string("cannot create pipes: ") + std::strerror(errno);
    return result;
  }
  const pid_t pid = spawn(argv, out[1], err[1]);
  ::close(out[1]);
  ::close(err[1]);

  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* targets[2] = {&result.out, &result.err};
  int open_count = 2;
  while (open_count > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      const ssize_t count = ::read(fds[i].fd, buffer, sizeof buffer);
      if (count > 0) {
        targets[i]->append(buffer, static_cast<std::size_t>(count));
      } else if (count == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
  for (const pollfd& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }

  int status = 0;
  if (pid < 0) {
    result.err = std::string("cannot fork: ") + std::strerror(errno);
  } else if (::waitpid(pid, &status, 0) == pid) {
    result.exit_code = decode_wait_status(status);
  }
  return result;
}

std::string test_server_binary() { return ZWRM_TEST_SERVER; }

std::unique_ptr<TestNetwork> TestNetwork::create(std::string* error) {
  remove_stale();
  // The destructor removes whatever set_up created before it failed.
  std::unique_ptr<TestNetwork> network(new TestNetwork());
  *error = network->set_up();
  if (!error->empty()) return nullptr;
  return network;
}

void TestNetwork::remove_stale() {
  static const std::regex kName(R"(zwrm-t(\d+)-\d+)");
  static const std::regex kDirectory(R"(zwrm-t(\d+)-\d+\.\w{6})");
  auto owner_exited = [](const std::string& name, const std::regex& pattern) {
    std::smatch match;
    return std::regex_match(name, match, pattern) && !process_running(static_cast<pid_t>(std::stol(match[1].str())));
  };

  const CommandResult list = run_command({"ip", "netns", "list"});
  std::istringstream lines(list.out);
  for (std::string line; std::getline(lines, line);) {
    // A line is "NAME" or "NAME (id: N)".
    const std::string name = line.substr(0, line.find(' '));
    if (!owner_exited(name, kName)) continue;
    kill_stale_servers(name);
    run_command({"ip", "netns", "delete", name});
  }

  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(temp_root(), error)) {
    if (owner_exited(entry.path().filename().string(), kDirectory)) fs::remove_all(entry.path(), error);
  }
}

TestNetwork::~TestNetwork() {
  if (server_pid_ > 0) {
    ::kill(server_pid_, SIGTERM);
    int status = 0;
    const bool stopped = wait_until([&] { return ::waitpid(server_pid_, &status, WNOHANG) != 0; }, kServerStopTimeout,
                                    10ms);
    if (!stopped) {
      ::kill(server_pid_, SIGKILL);
      ::waitpid(server_pid_, &status, 0);
    }
  }
  // Deleting one end of the pair deletes both at once, while the pair of a
  // deleted namespace goes away only some time after it.
  if (!host_interface_.empty()) {
    const std::string error = run_checked({"ip", "link", "delete", host_interface_});
    if (!error.empty()) ADD_FAILURE() << error;
  }
  if (namespace_created_) {
    const std::string error = run_checked({"ip", "netns", "delete", namespace_name_});
    if (!error.empty()) ADD_FAILURE() << error;
  }
  if (!directory_.empty()) {
    std::error_code error;
    fs::remove_all(directory_, error);
    if (error) ADD_FAILURE() << "cannot remove " << directory_ << ": " << error.message();
  }
}

std::string TestNetwork::log() const { return read_whole_file(log_path_); }

bool TestNetwork::wait_for_log(std::string_view text, Milliseconds timeout) const {
  return wait_until([&] { return log().find(text) != std::string::npos; }, timeout);
}

std::string TestNetwork::hosts_file(const std::vector<std::pair<std::string, std::string>>& names) {
  const std::string path = directory_ + "/hosts-" + std::to_string(++hosts_file_count_);
  std::ofstream file(path);
  for (const auto& [name, address] : names) file << address << ' ' << name << '\n';
  file.close();
  if (!file) ADD_FAILURE() << "cannot write " << path;
  return path;
}

std::string TestNetwork::set_up() {
  const std::string pid = std::to_string(::getpid());
  number_ = network_count++;
  const std::string number = std::to_string(number_);
  namespace_name_ = "zwrm-t" + pid + "-" + number;
  namespace_interface_ = "zt" + pid + "n" + number;
  if (namespace_interface_.size() > 15) return "interface name " + namespace_interface_ + " is over 15 characters";

  // Named after the namespace, so remove_stale finds it too.
  std::string pattern = temp_root() + "/" + namespace_name_ + ".XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) return "cannot create " + pattern + ": " + std::strerror(errno);
  directory_ = pattern;
  log_path_ = directory_ + "/server.log";
  certificate_path_ = directory_ + "/server.pem";

  if (std::string error = run_checked({"ip", "netns", "add", namespace_name_}); !error.empty()) return error;
  namespace_created_ = true;

  {
    const SubnetLock lock;
    if (!lock.error().empty()) return lock.error();
    if (std::string error = choose_subnet(); !error.empty()) return error;
    if (std::string error = create_links(); !error.empty()) return error;
  }
  return start_server();
}

// Picks a /30 that overlaps no address or route of the host. The search
// starts at a point derived from the pid and the network's number, so
// concurrent test processes rarely even look at the same subnets.
std::string TestNetwork::choose_subnet() {
  std::vector<AddressRange> used;
  if (std::string error = collect_used_ranges(&used); !error.empty()) return error;

  const std::uint32_t start = static_cast<std::uint32_t>(::getpid()) * 64 + static_cast<std::uint32_t>(number_);
  for (std::uint32_t i = 0; i < kPoolSubnets; ++i) {
    const std::uint32_t base = kPoolBase + ((start + i) % kPoolSubnets) * 4;
    bool free = true;
    for (const AddressRange& range : used) free = free && (range.last < base || range.first > base + 3);
    if (!free) continue;
    subnet_ = format_ipv4(base) + "/30";
    host_side_address_ = format_ipv4(base + 1);
    address_ = format_ipv4(base + 2);
    return {};
  }
  return "no free /30 subnet in 10.231.0.0/16: every one overlaps an address or route of the host";
}

std::string TestNetwork::create_links() {
  const std::string host_name = "zt" + std::to_string(::getpid()) + "h" + std::to_string(number_);
  const std::vector<std::vector<std::string>> commands = {
      {"ip", "link", "add", host_name, "type", "veth", "peer", "name", namespace_interface_, "netns", namespace_name_},
      {"ip", "addr", "add", host_side_address_ + "/30", "dev", host_name},
      {"ip", "link", "set", host_name, "up"},
      {"ip", "-n", namespace_name_, "addr", "add", address_ + "/30", "dev", namespace_interface_},
      {"ip", "-n", namespace_name_, "link", "set", namespace_interface_, "up"},
      {"ip", "-n", namespace_name_, "link", "set", "lo", "up"},
  };
  for (std::size_t i = 0; i < commands.size(); ++i) {
    if (std::string error = run_checked(commands[i]); !error.empty()) return error;
    // Set only once the link exists, so the destructor never deletes a link
    // of the same name that another process made.
    if (i == 0) host_interface_ = host_name;
  }
  return {};
}

std::string TestNetwork::start_server() {
  const std::vector<std::string> argv = {"ip", "netns", "exec", namespace_name_, test_server_binary(),
                                         "--http", std::to_string(kHttpPort),
                                         "--https", std::to_string(kHttpsPort),
                                         "--tcp", std::to_string(kTcpPort),
                                         "--udp", std::to_string(kUdpPort),
                                         "--log", log_path_,
                                         "--cert-out", certificate_path_};
  const std::string stderr_path = directory_ + "/server.err";
  const int stderr_fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int out[2];
  if (stderr_fd < 0 || ::pipe2(out, O_CLOEXEC) != 0) {
    return "cannot set up the server's output: " + std::string(std::strerror(errno));
  }
  // `ip netns exec` execs the command in place, so this is the server's pid.
  server_pid_ = spawn(argv, out[1], stderr_fd);
  ::close(out[1]);
  ::close(stderr_fd);

  std::string output;
  const auto deadline = Clock::now() + kServerStartTimeout;
  while (output.find("ready\n") == std::string::npos && Clock::now() < deadline) {
    pollfd fd{out[0], POLLIN, 0};
    const auto left = std::chrono::duration_cast<Milliseconds>(deadline - Clock::now());
    if (::poll(&fd, 1, static_cast<int>(std::max<Milliseconds::rep>(left.count(), 0))) <= 0) continue;
    char buffer[256];
    const ssize_t count = ::read(out[0], buffer, sizeof buffer);
    if (count <= 0) break;  // the server exited
    output.append(buffer, static_cast<std::size_t>(count));
  }
  ::close(out[0]);
  if (output.find("ready\n") != std::string::npos) return {};

  int status = 0;
  std::string outcome = "did not print \"ready\" within " + std::to_string(kServerStartTimeout.count()) + " ms";
  // An exiting process closes its stdout just before it can be reaped.
  const auto reaped = [&] { return ::waitpid(server_pid_, &status, WNOHANG) == server_pid_; };
  if (server_pid_ > 0 && wait_until(reaped, 1s, 10ms)) {
    server_pid_ = -1;
    outcome = "exited with code " + std::to_string(decode_wait_status(status)) + " before it printed \"ready\"";
  }
  return "`" + join(argv) + "` " + outcome + "; stderr: " + read_whole_file(stderr_path);
}

}  // namespace zwrm::integration
