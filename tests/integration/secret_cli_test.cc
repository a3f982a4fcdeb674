// `zwrm secret set`, `ls` and `rm` from outside: a value goes in only
// through stdin or a prompt with echo off, and never comes out again, not in
// any output, error, event or database file. No VM boots: the agent row is
// written straight into the database that zwrm created.
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "tests/integration/harness.h"

extern char** environ;

namespace zwrm::integration {
namespace {

namespace fs = std::filesystem;

constexpr const char* kAgent = "demo";
// Values distinctive enough that finding one anywhere means it leaked.
constexpr const char* kValue = "piped-Q4x8-value-never-shown";
constexpr const char* kTypedValue = "typed-R7w2-value-never-shown";

std::string read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream content;
  content << file.rdbuf();
  return content.str();
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Returns why stderr is not exactly one "zwrm: error:" line, or an empty
// string when it is.
std::string check_error_line(const Outcome& outcome) {
  if (!outcome.err.starts_with("zwrm: error: ")) return "stderr does not start with 'zwrm: error: '";
  if (outcome.err.find('\n') != outcome.err.size() - 1) return "stderr is not exactly one line";
  return {};
}

// Runs one SQL statement on the database zwrm created and returns the
// first column of every row.
std::vector<std::string> query(const std::string& path, const std::string& sql) {
  std::vector<std::string> rows;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "cannot open " << path << ": " << sqlite3_errmsg(db);
    sqlite3_close(db);
    return rows;
  }
  sqlite3_busy_timeout(db, 10'000);
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "cannot prepare " << sql << ": " << sqlite3_errmsg(db);
  }
  int code = SQLITE_DONE;
  while (statement != nullptr && (code = sqlite3_step(statement)) == SQLITE_ROW) {
    const auto* bytes = static_cast<const char*>(sqlite3_column_blob(statement, 0));
    rows.emplace_back(bytes != nullptr ? bytes : "", static_cast<std::size_t>(sqlite3_column_bytes(statement, 0)));
  }
  if (statement != nullptr && code != SQLITE_DONE) ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return rows;
}

// Decrypts a stored value the way the format promises (AES-256-GCM, the
// ciphertext followed by a 16-byte tag, associated data agent NUL name), so
// the test checks what was stored without linking zwrm's code.
std::optional<std::string> decrypt_stored(const std::string& key, const std::string& nonce, const std::string& sealed,
                                          const std::string& associated_data) {
  if (key.size() != 32 || nonce.size() != 12 || sealed.size() < 16) return std::nullopt;
  const std::size_t size = sealed.size() - 16;
  std::string plaintext(size, '\0');
  std::string tag = sealed.substr(size);
  EVP_CIPHER_CTX* context = EVP_CIPHER_CTX_new();
  int length = 0;
  const auto* key_bytes = reinterpret_cast<const unsigned char*>(key.data());
  const auto* nonce_bytes = reinterpret_cast<const unsigned char*>(nonce.data());
  const bool done =
      EVP_DecryptInit_ex(context, EVP_aes_256_gcm(), nullptr, key_bytes, nonce_bytes) == 1 &&
      EVP_DecryptUpdate(context, nullptr, &length, reinterpret_cast<const unsigned char*>(associated_data.data()),
                        static_cast<int>(associated_data.size())) == 1 &&
      EVP_DecryptUpdate(context, reinterpret_cast<unsigned char*>(plaintext.data()), &length,
                        reinterpret_cast<const unsigned char*>(sealed.data()), static_cast<int>(size)) == 1 &&
      EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(context, reinterpret_cast<unsigned char*>(plaintext.data()) + length, &length) == 1;
  EVP_CIPHER_CTX_free(context);
  if (!done) return std::nullopt;
  return plaintext;
}

// zwrm on a pseudo-terminal whose slave side the test keeps open, so the
// test can read the terminal's settings after zwrm has exited.
class PromptTerminal {
 public:
  PromptTerminal(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    if (::openpty(&master_, &slave_, nullptr, nullptr, nullptr) != 0) {
      ADD_FAILURE() << "cannot open a pseudo-terminal: " << std::strerror(errno);
      return;
    }
    pid_ = ::fork();
    if (pid_ == 0) exec_on_slave(argv, env);
    if (pid_ < 0) ADD_FAILURE() << "cannot fork: " << std::strerror(errno);
    ::fcntl(master_, F_SETFL, ::fcntl(master_, F_GETFL) | O_NONBLOCK);
  }

  ~PromptTerminal() {
    if (pid_ > 0 && !exit_code_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(master_);
    ::close(slave_);
  }

  PromptTerminal(const PromptTerminal&) = delete;
  PromptTerminal& operator=(const PromptTerminal&) = delete;

  bool wait_for(std::string_view text, Milliseconds timeout) {
    return wait_until(
        [&] {
          read_available();
          return contains(screen_, text);
        },
        timeout);
  }

  void type(std::string_view keys) {
    ASSERT_EQ(::write(master_, keys.data(), keys.size()), static_cast<ssize_t>(keys.size()));
  }

  bool echo_on() const {
    termios settings{};
    EXPECT_EQ(::tcgetattr(slave_, &settings), 0) << std::strerror(errno);
    return (settings.c_lflag & ECHO) != 0;
  }

  // Returns the exit status, or 128 + N when signal N killed zwrm.
  std::optional<int> wait(Milliseconds timeout) {
    wait_until(
        [&] {
          read_available();
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
          exit_code_ = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
          return true;
        },
        timeout);
    read_available();
    return exit_code_;
  }

  const std::string& screen() const { return screen_; }

 private:
  [[noreturn]] void exec_on_slave(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int signal_number = 1; signal_number < NSIG; ++signal_number) ::signal(signal_number, SIG_DFL);
    ::setsid();
    ::ioctl(slave_, TIOCSCTTY, 0);
    ::dup2(slave_, STDIN_FILENO);
    ::dup2(slave_, STDOUT_FILENO);
    ::dup2(slave_, STDERR_FILENO);
    ::close(master_);
    ::close(slave_);
    std::vector<char*> argv_pointers;
    for (const std::string& arg : argv) argv_pointers.push_back(const_cast<char*>(arg.c_str()));
    argv_pointers.push_back(nullptr);
    std::vector<char*> env_pointers;
    for (const std::string& entry : env) env_pointers.push_back(const_cast<char*>(entry.c_str()));
    env_pointers.push_back(nullptr);
    ::execve(argv_pointers[0], argv_pointers.data(), env_pointers.data());
    ::_exit(127);
  }

  void read_available() {
    char buffer[4096];
    ssize_t count = 0;
    while ((count = ::read(master_, buffer, sizeof buffer)) > 0)
      screen_.append(buffer, static_cast<std::size_t>(count));
  }

  int master_ = -1;
  int slave_ = -1;
  pid_t pid_ = -1;
  std::string screen_;
  std::optional<int> exit_code_;
};

class SecretCli : public ::testing::Test {
 protected:
  void SetUp() override {
    home_.set_env("ZWRM_SECRET_KEY", key_path());
    // Any command creates the database. The agent row is inserted directly
    // instead of through `zwrm agent create`, which would also make a volume.
    const Outcome listed = home_.zwrm({"ps"});
    ASSERT_EQ(listed.exit_code, 0) << listed;
    query(database(), std::string("INSERT INTO agents (name, template, volume_path, volume_bytes, created_at, "
                                  "updated_at) VALUES ('") +
                          kAgent + "', 'minimal', '/nonexistent', 0, 0, 0)");
  }

  // The test's own key: in the test directory, outside ZWRM_HOME and never
  // the host's key.
  std::string key_path() const { return fs::path(home_.scratch()).parent_path() / "keys" / "secret.key"; }
  std::string database() const { return home_.home() + "/zwrm.db"; }

  Outcome set_from_stdin(const std::string& name, const std::string& input) {
    InvokeOptions options;
    options.stdin_bytes = input;
    Outcome outcome = home_.zwrm({"secret", "set", kAgent, name}, options);
    all_output_ += outcome.out + outcome.err;
    return outcome;
  }

  Outcome zwrm(const std::vector<std::string>& args) {
    Outcome outcome = home_.zwrm(args);
    all_output_ += outcome.out + outcome.err;
    return outcome;
  }

  std::vector<std::string> stored_names() {
    return query(database(), std::string("SELECT name FROM secrets WHERE agent = '") + kAgent + "' ORDER BY name");
  }

  // Returns the stored value of a secret, decrypted with the key file.
  std::optional<std::string> stored_value(const std::string& name) {
    const std::string where = " FROM secrets WHERE agent = '" + std::string(kAgent) + "' AND name = '" + name + "'";
    const auto nonces = query(database(), "SELECT nonce" + where);
    const auto sealed = query(database(), "SELECT ciphertext" + where);
    if (nonces.size() != 1 || sealed.size() != 1) return std::nullopt;
    return decrypt_stored(read_bytes(key_path()), nonces[0], sealed[0], std::string(kAgent) + '\0' + name);
  }

  // The database file and its write-ahead log, as bytes on disk.
  std::string database_bytes() const { return read_bytes(database()) + read_bytes(database() + "-wal"); }

  // zwrm's environment for a process the test starts itself.
  std::vector<std::string> environment() const {
    std::vector<std::string> env;
    for (char** entry = environ; *entry != nullptr; ++entry) {
      if (!std::string_view(*entry).starts_with("ZWRM_")) env.emplace_back(*entry);
    }
    env.push_back("ZWRM_HOME=" + home_.home());
    env.push_back("ZWRM_CACHE_DIR=" + home_.cache());
    env.push_back("ZWRM_SECRET_KEY=" + key_path());
    env.push_back("TERM=xterm");
    return env;
  }

  TestHome home_;
  std::string all_output_;  // stdout and stderr of every command so far
};

TEST_F(SecretCli, SetFromStdinThenList) {
  const Outcome set = set_from_stdin("API_TOKEN", std::string(kValue) + "\n");
  ASSERT_EQ(set.exit_code, 0) << set;

  const Outcome listed = zwrm({"secret", "ls", kAgent});
  ASSERT_EQ(listed.exit_code, 0) << listed;
  EXPECT_TRUE(contains(listed.out, "API_TOKEN")) << listed;
  const Outcome as_json = zwrm({"secret", "ls", kAgent, "--json"});
  ASSERT_EQ(as_json.exit_code, 0) << as_json;
  const auto object = nlohmann::json::parse(as_json.out, nullptr, false);
  ASSERT_TRUE(object.is_object()) << as_json;
  EXPECT_EQ(object["name"], "API_TOKEN");
  EXPECT_TRUE(object["set_at_ms"].is_number_integer()) << as_json;
  EXPECT_EQ(object.size(), 2u) << as_json;

  EXPECT_EQ(stored_value("API_TOKEN"), std::optional<std::string>(kValue));
  EXPECT_FALSE(contains(all_output_, kValue)) << all_output_;
}

TEST_F(SecretCli, StdinLosesOneTrailingNewline) {
  ASSERT_EQ(set_from_stdin("TWO_LINES", "first\nsecond\n\n").exit_code, 0);
  EXPECT_EQ(stored_value("TWO_LINES"), std::optional<std::string>("first\nsecond\n"));
  ASSERT_EQ(set_from_stdin("NO_NEWLINE", "bare").exit_code, 0);
  EXPECT_EQ(stored_value("NO_NEWLINE"), std::optional<std::string>("bare"));
}

TEST_F(SecretCli, KeyFileIsOwnerOnly) {
  ASSERT_EQ(set_from_stdin("API_TOKEN", kValue).exit_code, 0);
  EXPECT_EQ(fs::status(key_path()).permissions(), fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(fs::path(key_path()).parent_path()).permissions(), fs::perms::owner_all);
  EXPECT_EQ(fs::file_size(key_path()), 32u);
}

TEST_F(SecretCli, ValueNotInDatabaseFiles) {
  ASSERT_EQ(set_from_stdin("API_TOKEN", kValue).exit_code, 0);
  const std::string bytes = database_bytes();
  EXPECT_TRUE(contains(bytes, "API_TOKEN")) << "the search does not see the stored row";
  EXPECT_FALSE(contains(bytes, kValue));
  for (const auto& entry : fs::recursive_directory_iterator(home_.home())) {
    if (!entry.is_regular_file()) continue;
    EXPECT_FALSE(contains(read_bytes(entry.path()), kValue)) << entry.path();
  }
}

TEST_F(SecretCli, NameWithEqualsRejected) {
  ASSERT_EQ(set_from_stdin("KEPT", kValue).exit_code, 0);
  const std::int64_t events = home_.event_count();

  InvokeOptions options;
  options.stdin_bytes = kValue;
  const Outcome rejected = home_.zwrm({"secret", "set", kAgent, "API_TOKEN=inline-value-77"}, options);
  EXPECT_EQ(rejected.exit_code, 125) << rejected;
  EXPECT_EQ(check_error_line(rejected), "") << rejected;
  EXPECT_TRUE(contains(rejected.err, "'API_TOKEN=...'")) << rejected;
  EXPECT_FALSE(contains(rejected.err, "inline-value-77")) << rejected;
  EXPECT_FALSE(contains(rejected.err + rejected.out, kValue)) << rejected;

  EXPECT_EQ(stored_names(), std::vector<std::string>{"KEPT"});
  EXPECT_EQ(home_.event_count(), events);
}

TEST_F(SecretCli, ValueOnCommandLineRejected) {
  for (const std::vector<std::string>& args : {
           std::vector<std::string>{"secret", "set", kAgent, "API_TOKEN", "argv-value-55"},
           std::vector<std::string>{"secret", "set", kAgent, "API_TOKEN", "--value=argv-value-55"},
           std::vector<std::string>{"secret", "set", kAgent, "API_TOKEN", "--", "argv-value-55"},
       }) {
    InvokeOptions options;
    options.stdin_bytes = kValue;
    const Outcome rejected = home_.zwrm(args, options);
    EXPECT_EQ(rejected.exit_code, 125) << rejected;
    EXPECT_EQ(check_error_line(rejected), "") << rejected;
    EXPECT_TRUE(contains(rejected.err, "stdin")) << rejected;
    EXPECT_FALSE(contains(rejected.err + rejected.out, "argv-value-55")) << rejected;
  }
  EXPECT_TRUE(stored_names().empty());
}

TEST_F(SecretCli, UnknownAgentRejected) {
  const std::int64_t events = home_.event_count();
  InvokeOptions options;
  options.stdin_bytes = kValue;
  const Outcome rejected = home_.zwrm({"secret", "set", "nobody", "API_TOKEN"}, options);
  EXPECT_EQ(rejected.exit_code, 125) << rejected;
  EXPECT_EQ(check_error_line(rejected), "") << rejected;
  EXPECT_TRUE(contains(rejected.err, "zwrm agent create nobody")) << rejected;
  EXPECT_EQ(home_.event_count(), events);
}

TEST_F(SecretCli, EmptyValueRejected) {
  for (const char* input : {"", "\n"}) {
    const Outcome rejected = set_from_stdin("API_TOKEN", input);
    EXPECT_EQ(rejected.exit_code, 125) << rejected;
    EXPECT_EQ(check_error_line(rejected), "") << rejected;
    EXPECT_TRUE(contains(rejected.err, "empty")) << rejected;
  }
  EXPECT_TRUE(stored_names().empty());
}

TEST_F(SecretCli, RemoveDeletesSecret) {
  ASSERT_EQ(set_from_stdin("API_TOKEN", kValue).exit_code, 0);
  ASSERT_EQ(set_from_stdin("OTHER", kValue).exit_code, 0);

  const Outcome removed = zwrm({"secret", "rm", kAgent, "API_TOKEN"});
  EXPECT_EQ(removed.exit_code, 0) << removed;
  EXPECT_EQ(stored_names(), std::vector<std::string>{"OTHER"});
  const Outcome listed = zwrm({"secret", "ls", kAgent});
  EXPECT_FALSE(contains(listed.out, "API_TOKEN")) << listed;
  EXPECT_TRUE(contains(listed.out, "OTHER")) << listed;

  const Outcome again = zwrm({"secret", "rm", kAgent, "API_TOKEN"});
  EXPECT_EQ(again.exit_code, 125) << again;
  EXPECT_EQ(check_error_line(again), "") << again;
  EXPECT_FALSE(contains(all_output_, kValue)) << all_output_;
}

TEST_F(SecretCli, EventsHoldNamesOnly) {
  ASSERT_EQ(set_from_stdin("API_TOKEN", kValue).exit_code, 0);
  ASSERT_EQ(zwrm({"secret", "rm", kAgent, "API_TOKEN"}).exit_code, 0);

  const auto types = query(database(), "SELECT type FROM events WHERE type LIKE 'secret.%' ORDER BY id");
  EXPECT_EQ(types, (std::vector<std::string>{"secret.set", "secret.remove"}));
  const auto data = query(database(), "SELECT data FROM events WHERE type LIKE 'secret.%' ORDER BY id");
  for (const std::string& text : data) EXPECT_EQ(nlohmann::json::parse(text), nlohmann::json({{"name", "API_TOKEN"}}));
  const auto projects = query(database(), "SELECT project FROM events WHERE type LIKE 'secret.%'");
  for (const std::string& project : projects) EXPECT_EQ(project, kAgent);
  for (const std::string& row : query(database(), "SELECT project || run || type || data FROM events")) {
    EXPECT_FALSE(contains(row, kValue)) << row;
  }
}

TEST_F(SecretCli, PromptHidesTypedValue) {
  PromptTerminal terminal({zwrm_binary(), "secret", "set", kAgent, "TYPED"}, environment());
  ASSERT_TRUE(terminal.wait_for("Value for TYPED: ", 30s)) << terminal.screen();
  EXPECT_FALSE(terminal.echo_on());
  terminal.type(std::string(kTypedValue) + "\r");
  EXPECT_EQ(terminal.wait(30s), std::optional<int>(0)) << terminal.screen();
  EXPECT_TRUE(terminal.echo_on());
  EXPECT_FALSE(contains(terminal.screen(), kTypedValue)) << terminal.screen();
  EXPECT_EQ(stored_value("TYPED"), std::optional<std::string>(kTypedValue));
}

TEST_F(SecretCli, CtrlCAtPromptRestoresEcho) {
  PromptTerminal terminal({zwrm_binary(), "secret", "set", kAgent, "TYPED"}, environment());
  ASSERT_TRUE(terminal.wait_for("Value for TYPED: ", 30s)) << terminal.screen();
  ASSERT_FALSE(terminal.echo_on());
  terminal.type(std::string(kTypedValue) + "\x03");
  EXPECT_EQ(terminal.wait(30s), std::optional<int>(128 + SIGINT)) << terminal.screen();
  EXPECT_TRUE(terminal.echo_on());
  EXPECT_FALSE(contains(terminal.screen(), kTypedValue)) << terminal.screen();
  EXPECT_TRUE(stored_names().empty());
}

}  // namespace
}  // namespace zwrm::integration
