// `zwrm secret`: an agent's secrets, encrypted on the host and handed to its
// processes as environment variables. A value is read only from stdin or a
// prompt with echo off, never from the command line (which other users can
// read in /proc), and no command prints it.
#include <signal.h>
#include <sys/prctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include "cli/commands.h"
#include "common/printable.h"
#include "state/audit.h"
#include "state/names.h"
#include "state/secrets.h"

namespace zwrm::cli {

namespace {

// Room for the longest value plus the one trailing newline that is
// stripped, and one byte more to notice a value that is too long.
constexpr std::size_t kValueBufferBytes = state::kMaxSecretValueBytes + 2;

// A fixed buffer for a value, wiped when it goes out of scope. It never
// grows, so no copy of the value is left in freed memory.
class ValueBuffer {
 public:
  ValueBuffer() : bytes_(kValueBufferBytes) {}
  ~ValueBuffer() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }
  ValueBuffer(const ValueBuffer&) = delete;
  ValueBuffer& operator=(const ValueBuffer&) = delete;

  char* data() { return bytes_.data(); }
  std::size_t capacity() const { return bytes_.size(); }
  std::string_view view() const { return {bytes_.data(), length}; }

  std::size_t length = 0;

 private:
  std::vector<char> bytes_;
};

// The terminal settings that the signal handlers below restore and reapply.
// Globals because a handler can reach nothing else.
int g_prompt_fd = -1;
termios g_visible_settings{};
termios g_hidden_settings{};

// Signals that end the process at the prompt (Ctrl-C, Ctrl-\, a closed
// terminal, kill) and signals that suspend it (Ctrl-Z, background I/O).
constexpr int kEndingSignals[] = {SIGINT, SIGQUIT, SIGHUP, SIGTERM};
constexpr int kSuspendingSignals[] = {SIGTSTP, SIGTTIN, SIGTTOU};

void raise_with_default_action(int signal_number) {
  ::signal(signal_number, SIG_DFL);
  sigset_t unblocked;
  ::sigemptyset(&unblocked);
  ::sigaddset(&unblocked, signal_number);
  ::sigprocmask(SIG_UNBLOCK, &unblocked, nullptr);
  ::raise(signal_number);
}

void install_handler(int signal_number, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  ::sigemptyset(&action.sa_mask);
  ::sigaction(signal_number, &action, nullptr);
}

// Restores echo, then lets the signal end the process as it would have.
extern "C" void end_prompt(int signal_number) {
  ::tcsetattr(g_prompt_fd, TCSAFLUSH, &g_visible_settings);
  (void)::write(STDERR_FILENO, "\n", 1);
  raise_with_default_action(signal_number);
}

// Restores echo while the shell has the terminal, and hides input again
// once the process is continued.
extern "C" void suspend_prompt(int signal_number) {
  const int saved_errno = errno;
  ::tcsetattr(g_prompt_fd, TCSAFLUSH, &g_visible_settings);
  raise_with_default_action(signal_number);
  ::tcsetattr(g_prompt_fd, TCSAFLUSH, &g_hidden_settings);
  install_handler(signal_number, suspend_prompt);
  errno = saved_errno;
}

// Turns echo off on a terminal and restores it, with the previous signal
// handlers, on every way out: return, error, or a signal from the keyboard.
class HiddenInput {
 public:
  explicit HiddenInput(int fd) {
    if (::tcgetattr(fd, &g_visible_settings) != 0) {
      failure_ = fail_errno("cannot read the terminal settings of stdin");
      return;
    }
    saved_ = true;
    g_prompt_fd = fd;
    g_hidden_settings = g_visible_settings;
    g_hidden_settings.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL);
    for (int signal_number : kEndingSignals) save_and_install(signal_number, end_prompt);
    for (int signal_number : kSuspendingSignals) save_and_install(signal_number, suspend_prompt);
    if (::tcsetattr(fd, TCSAFLUSH, &g_hidden_settings) != 0) failure_ = fail_errno("cannot turn off echo on stdin");
  }

  ~HiddenInput() {
    if (!saved_) return;
    // The terminal first: a signal arriving in between finds the handler
    // still there and restores it again, which is harmless.
    ::tcsetattr(g_prompt_fd, TCSAFLUSH, &g_visible_settings);
    for (const auto& [signal_number, action] : saved_actions_) ::sigaction(signal_number, &action, nullptr);
  }

  HiddenInput(const HiddenInput&) = delete;
  HiddenInput& operator=(const HiddenInput&) = delete;

  const Status& status() const { return failure_; }

 private:
  void save_and_install(int signal_number, void (*handler)(int)) {
    struct sigaction previous {};
    ::sigaction(signal_number, nullptr, &previous);
    saved_actions_.emplace_back(signal_number, previous);
    install_handler(signal_number, handler);
  }

  bool saved_ = false;
  Status failure_;
  std::vector<std::pair<int, struct sigaction>> saved_actions_;
};

// Reads stdin to its end. One trailing newline is stripped, so that
// `echo VALUE |` and a file that ends in a newline give VALUE.
Status read_value_from_pipe(ValueBuffer& value) {
  while (value.length < value.capacity()) {
    const ssize_t count = ::read(STDIN_FILENO, value.data() + value.length, value.capacity() - value.length);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return fail_errno("cannot read the secret's value from stdin");
    if (count == 0) break;
    value.length += static_cast<std::size_t>(count);
  }
  if (value.length > 0 && value.data()[value.length - 1] == '\n') --value.length;
  return {};
}

// Prompts on stderr and reads one line from the terminal on stdin with echo
// off. Line editing still works. A line is at most 4095 bytes on Linux, so
// longer values must come through a pipe.
Status read_value_from_terminal(const std::string& name, ValueBuffer& value) {
  HiddenInput hidden(STDIN_FILENO);
  if (!hidden.status()) return hidden.status();
  const std::string prompt = "Value for " + name + ": ";
  (void)::write(STDERR_FILENO, prompt.data(), prompt.size());
  while (value.length < value.capacity()) {
    const ssize_t count = ::read(STDIN_FILENO, value.data() + value.length, value.capacity() - value.length);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return fail_errno("cannot read the secret's value from the terminal");
    if (count == 0) break;
    value.length += static_cast<std::size_t>(count);
    if (value.data()[value.length - 1] == '\n') {
      --value.length;
      break;
    }
  }
  // The Enter key was not echoed either.
  (void)::write(STDERR_FILENO, "\n", 1);
  return {};
}

Status read_value(const std::string& name, ValueBuffer& value) {
  Status read = ::isatty(STDIN_FILENO) ? read_value_from_terminal(name, value) : read_value_from_pipe(value);
  if (!read) return read;
  if (value.length == 0) {
    return fail("the value of secret " + name + " is empty; type it at the prompt or pipe it on stdin");
  }
  if (value.length > state::kMaxSecretValueBytes) {
    return fail("the value of secret " + name + " is longer than " + std::to_string(state::kMaxSecretValueBytes) +
                " bytes, the maximum");
  }
  return {};
}

// Checks the agent and secret names before anything is read or opened.
Status validate_names(const std::string& agent, const std::string* name) {
  if (Status valid = state::validate_project_name(agent); !valid) return valid;
  if (name != nullptr) return state::validate_secret_name(*name);
  return {};
}

Status append_secret_event(state::Database& db, const std::string& agent, const char* type, const std::string& name) {
  auto appended = state::append_event(db, {agent, "", state::EventSource::kHost, type, {{"name", name}}});
  if (!appended) return tl::unexpected(appended.error());
  return {};
}

int set_secret(const std::string& agent, const std::string& name, const std::vector<std::string>& extra) {
  // No core dump and no ptrace by other processes of this user while the
  // value is in memory.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (!extra.empty()) {
    return report_error(
        {"zwrm secret set takes no value on the command line, because other users can read command "
         "lines; pipe the value on stdin or type it at the prompt"});
  }
  if (Status valid = validate_names(agent, &name); !valid) return report_error(valid.error());
  auto session = open_session();
  if (!session) return report_error(session.error());
  // list_secrets fails when the agent does not exist. Checked before the
  // prompt, so that a user does not type a value only to learn that.
  if (auto listed = state::list_secrets(*session->db, agent); !listed) return report_error(listed.error());
  auto store = state::SecretStore::open(*session->db);
  if (!store) return report_error(store.error());

  ValueBuffer value;
  if (Status read = read_value(name, value); !read) return report_error(read.error());
  Status stored = state::transaction(*session->db, [&]() -> Status {
    if (Status set = store->set(agent, name, value.view()); !set) return set;
    return append_secret_event(*session->db, agent, "secret.set", name);
  });
  if (!stored) return report_error(stored.error());
  std::printf("set secret %s of agent %s\n", name.c_str(), agent.c_str());
  return 0;
}

int remove_secret(const std::string& agent, const std::string& name) {
  if (Status valid = validate_names(agent, &name); !valid) return report_error(valid.error());
  auto session = open_session();
  if (!session) return report_error(session.error());
  bool removed = false;
  Status done = state::transaction(*session->db, [&]() -> Status {
    auto deleted = state::remove_secret(*session->db, agent, name);
    if (!deleted) return tl::unexpected(deleted.error());
    removed = *deleted;
    if (!removed) return {};
    return append_secret_event(*session->db, agent, "secret.remove", name);
  });
  if (!done) return report_error(done.error());
  if (!removed) {
    return report_error(
        {"agent " + agent + " has no secret named " + name + "; `zwrm secret ls " + agent + "` lists its secrets"});
  }
  std::printf("removed secret %s of agent %s\n", name.c_str(), agent.c_str());
  return 0;
}

std::string local_time(std::int64_t unix_ms) {
  const time_t seconds = static_cast<time_t>(unix_ms / 1000);
  tm local{};
  char text[32] = "?";
  if (::localtime_r(&seconds, &local) != nullptr) std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

int list_secrets(const std::string& agent, bool as_json) {
  if (Status valid = validate_names(agent, nullptr); !valid) return report_error(valid.error());
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto secrets = state::list_secrets(*session->db, agent);
  if (!secrets) return report_error(secrets.error());

  if (as_json) {
    for (const state::SecretInfo& secret : *secrets) {
      std::printf("%s\n", nlohmann::json{{"name", secret.name}, {"set_at_ms", secret.set_at_ms}}.dump().c_str());
    }
    return 0;
  }
  if (secrets->empty()) {
    std::printf("agent %s has no secrets; `zwrm secret set %s NAME` adds one\n", agent.c_str(), agent.c_str());
    return 0;
  }
  int width = 4;
  for (const state::SecretInfo& secret : *secrets) width = std::max(width, static_cast<int>(secret.name.size()));
  std::printf("%-*s  %s\n", width, "NAME", "SET AT");
  for (const state::SecretInfo& secret : *secrets) {
    std::printf("%-*s  %s\n", width, secret.name.c_str(), local_time(secret.set_at_ms).c_str());
  }
  return 0;
}

}  // namespace

void add_secret_commands(CLI::App& app, Context& context) {
  CLI::App* secret = app.add_subcommand("secret", "Set, list and remove an agent's secrets");
  secret->require_subcommand(1);

  auto set_agent = std::make_shared<std::string>();
  auto set_name = std::make_shared<std::string>();
  auto set_extra = std::make_shared<std::vector<std::string>>();
  CLI::App* set = secret->add_subcommand(
      "set", "Set a secret from stdin, or from a prompt with echo off; every process of the agent gets it as NAME");
  set->add_option("agent", *set_agent, "Agent name")->required();
  set->add_option("name", *set_name, "Secret name, which is also the environment variable's name")->required();
  // Anything more is collected here and rejected without being printed: it
  // is most likely the value, which an error message must not repeat.
  set->add_option("extra", *set_extra)->group("");
  set->allow_extras();
  set->callback([set, set_agent, set_name, set_extra, &context] {
    std::vector<std::string> extra = *set_extra;
    for (const std::string& argument : set->remaining()) extra.push_back(argument);
    context.exit_code = set_secret(*set_agent, *set_name, extra);
  });

  auto ls_agent = std::make_shared<std::string>();
  auto ls_json = std::make_shared<bool>(false);
  CLI::App* ls = secret->add_subcommand("ls", "List an agent's secret names and when each was set (local time)");
  ls->add_option("agent", *ls_agent, "Agent name")->required();
  ls->add_flag("--json", *ls_json, "Print one JSON object per secret: name and set_at_ms (Unix milliseconds)");
  ls->callback([ls_agent, ls_json, &context] { context.exit_code = list_secrets(*ls_agent, *ls_json); });

  auto rm_agent = std::make_shared<std::string>();
  auto rm_name = std::make_shared<std::string>();
  CLI::App* rm = secret->add_subcommand("rm", "Remove one of an agent's secrets");
  rm->add_option("agent", *rm_agent, "Agent name")->required();
  rm->add_option("name", *rm_name, "Secret name")->required();
  rm->callback([rm_agent, rm_name, &context] { context.exit_code = remove_secret(*rm_agent, *rm_name); });
}

}  // namespace zwrm::cli
