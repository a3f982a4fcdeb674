// `zwrm audit` from outside. Every CLI action records exactly its event, the
// query options select what they promise, and --follow prints new events
// until interrupted. `verify` finds each way of altering the log directly in
// the database, with the protecting triggers dropped first. No VM boots.
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

using nlohmann::json;

constexpr int kExitBroken = 1;
constexpr int kExitError = 125;

// Returns "NAME (uid N)" for the user running the test, as zwrm records
// the actor of a CLI action.
std::string expected_actor() {
  const uid_t uid = ::getuid();
  const passwd* entry = ::getpwuid(uid);
  return std::string(entry != nullptr ? entry->pw_name : "unknown") + " (uid " + std::to_string(uid) + ")";
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

// Formats Unix milliseconds as the test's local time, "2026-12-04 23:54:16".
std::string local_time(std::int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm parts{};
  ::localtime_r(&seconds, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &parts);
  return text;
}

std::vector<std::int64_t> ids_of(const std::vector<json>& events) {
  std::vector<std::int64_t> ids;
  for (const json& event : events) ids.push_back(event["id"].get<std::int64_t>());
  return ids;
}

// One row of the events table as stored.
struct Row {
  std::int64_t id = 0;
  std::int64_t time_ms = 0;
  std::string project, run, source, type, actor, data, prev_hash, hash;
};

// Direct access to $ZWRM_HOME/zwrm.db, as someone with write access to
// ZWRM_HOME has it.
class RawDatabase {
 public:
  explicit RawDatabase(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_busy_timeout(db_, 10'000);
  }
  ~RawDatabase() { sqlite3_close(db_); }
  RawDatabase(const RawDatabase&) = delete;
  RawDatabase& operator=(const RawDatabase&) = delete;

  // Runs SQL statements and fails the test if SQLite rejects them.
  void execute(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (message != nullptr ? message : "unknown error");
    }
    sqlite3_free(message);
  }

  // Returns SQLite's error for sql, or an empty string when it succeeds.
  std::string try_execute(const std::string& sql) {
    char* message = nullptr;
    const int code = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
    std::string error = code == SQLITE_OK ? "" : (message != nullptr ? message : "unknown error");
    sqlite3_free(message);
    return error;
  }

  // Drops the triggers that make the events table append-only.
  void drop_triggers() { execute("DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;"); }

  std::vector<Row> rows() {
    std::vector<Row> rows;
    sqlite3_stmt* statement = nullptr;
    const char* sql =
        "SELECT id, time, project, run, source, type, actor, data, prev_hash, hash FROM events ORDER BY id";
    if (sqlite3_prepare_v2(db_, sql, -1, &statement, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return rows;
    }
    while (sqlite3_step(statement) == SQLITE_ROW) {
      auto text = [&](int column) {
        const auto* bytes = reinterpret_cast<const char*>(sqlite3_column_text(statement, column));
        return std::string(bytes != nullptr ? bytes : "");
      };
      rows.push_back({sqlite3_column_int64(statement, 0), sqlite3_column_int64(statement, 1), text(2), text(3),
                      text(4), text(5), text(6), text(7), text(8), text(9)});
    }
    sqlite3_finalize(statement);
    return rows;
  }

  // Binds text to a statement of one parameter and runs it.
  void execute_with(const std::string& sql, const std::string& value) {
    sqlite3_stmt* statement = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr), SQLITE_OK) << sqlite3_errmsg(db_);
    sqlite3_bind_text(statement, 1, value.c_str(), -1, SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(statement), SQLITE_DONE) << sql << ": " << sqlite3_errmsg(db_);
    sqlite3_finalize(statement);
  }

 private:
  sqlite3* db_ = nullptr;
};

// A TestHome with an agent a1 of the minimal template, whose creation is
// the first event.
class AuditCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const Outcome created = home_.zwrm({"agent", "create", "a1", "--template", "minimal"});
    ASSERT_EQ(created.exit_code, 0) << created;
  }

  std::string database() const { return home_.home() + "/zwrm.db"; }
  std::string head_file() const { return database() + ".audit-head"; }

  // Runs `zwrm audit --json ARGS` and returns its events.
  std::vector<json> query(const std::vector<std::string>& args = {}) {
    std::vector<std::string> argv = {"audit", "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    const Outcome listed = home_.zwrm(argv);
    EXPECT_EQ(listed.exit_code, 0) << listed;
    std::vector<json> events;
    for (const std::string& line : split_lines(listed.out)) {
      json event = json::parse(line, nullptr, false);
      EXPECT_TRUE(event.is_object()) << "not a JSON object: " << line;
      if (event.is_object()) events.push_back(std::move(event));
    }
    return events;
  }

  // Runs a CLI action and returns the one event it added, checking the
  // fields every host event about an agent outside a run shares.
  json only_new_event(const std::vector<std::string>& action, const std::string& type,
                      const InvokeOptions& options = {}, const std::string& agent = "a1") {
    const std::vector<json> before = query();
    const std::int64_t started_ms = now_ms();
    const Outcome done = home_.zwrm(action, options);
    const std::int64_t ended_ms = now_ms();
    EXPECT_EQ(done.exit_code, 0) << done;
    const std::vector<json> after = query();
    EXPECT_EQ(after.size(), before.size() + 1) << "the action added not exactly one event";
    if (after.size() != before.size() + 1) return json::object();

    const json event = after.back();
    EXPECT_EQ(event["type"], type);
    EXPECT_EQ(event["agent"], agent);
    EXPECT_EQ(event["run"], "");
    EXPECT_EQ(event["source"], "host");
    EXPECT_EQ(event["actor"], expected_actor());
    EXPECT_GE(event["time_ms"].get<std::int64_t>(), started_ms);
    EXPECT_LE(event["time_ms"].get<std::int64_t>(), ended_ms);
    if (!before.empty()) {
      EXPECT_GT(event["id"].get<std::int64_t>(), before.back()["id"].get<std::int64_t>());
      EXPECT_EQ(event["prev_hash"], before.back()["hash"]);
    }
    EXPECT_EQ(event["hash"].get<std::string>().size(), 64u) << event;
    return event;
  }

  // Adds `count` env.set events to agent a1, for KEY0, KEY1, ...
  void add_env_events(int count) {
    for (int i = 0; i < count; ++i) {
      const Outcome set = home_.zwrm({"env", "set", "a1", "KEY" + std::to_string(i) + "=value"});
      ASSERT_EQ(set.exit_code, 0) << set;
    }
  }

  Outcome verify() { return home_.zwrm({"audit", "verify"}); }

  // Checks that verify fails with status 1, naming event id.
  void expect_broken_at(std::int64_t id) {
    const Outcome verified = verify();
    EXPECT_EQ(verified.exit_code, kExitBroken) << verified;
    EXPECT_EQ(check_error_line(verified), "") << verified;
    EXPECT_TRUE(verified.err.starts_with("zwrm: error: the audit log is broken at event #" + std::to_string(id) + ": "))
        << verified;
    EXPECT_EQ(verified.out, "") << verified;
  }

  static std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  TestHome home_;
};

// Each CLI action records exactly its event.

TEST_F(AuditCli, AgentCreateRecorded) {
  const json event =
      only_new_event({"agent", "create", "a2", "--template", "minimal", "--cpus", "2"}, "agent.create", {}, "a2");
  EXPECT_EQ(event["data"]["template"], "minimal") << event;
  EXPECT_EQ(event["data"]["cpus"], 2) << event;
  EXPECT_EQ(event["data"]["volume_created"], true) << event;
  EXPECT_EQ(event["data"]["volume"], home_.volume_path("a2")) << event;
}

TEST_F(AuditCli, FirstEventIsAgentCreate) {
  const std::vector<json> events = query();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "agent.create");
  EXPECT_EQ(events[0]["agent"], "a1");
  EXPECT_EQ(events[0]["actor"], expected_actor());
  EXPECT_EQ(events[0]["prev_hash"], "");
}

TEST_F(AuditCli, AgentSetRecordsChanges) {
  const json event = only_new_event({"agent", "set", "a1", "--cpus", "2", "--timeout", "30m"}, "agent.change");
  EXPECT_EQ(event["data"]["changes"], (json{{"cpus", 2}, {"timeout_ms", 1'800'000}})) << event;
}

TEST_F(AuditCli, AgentRmRecordsDelete) {
  const json event = only_new_event({"agent", "rm", "a1", "--yes"}, "agent.delete");
  EXPECT_EQ(event["data"]["volume"], home_.volume_path("a1")) << event;
  EXPECT_EQ(event["data"]["volume_deleted"], true) << event;
}

TEST_F(AuditCli, EnvSetRecordsKeysOnly) {
  const json event = only_new_event({"env", "set", "a1", "FOO=bar-value-7", "BAZ=1"}, "env.set");
  EXPECT_EQ(event["data"], (json{{"keys", {"FOO", "BAZ"}}})) << event;
  EXPECT_FALSE(contains(event.dump(), "bar-value-7")) << event;
}

TEST_F(AuditCli, EnvUnsetRecordsKeys) {
  ASSERT_EQ(home_.zwrm({"env", "set", "a1", "FOO=1"}).exit_code, 0);
  const json event = only_new_event({"env", "unset", "a1", "FOO"}, "env.unset");
  EXPECT_EQ(event["data"], (json{{"keys", {"FOO"}}})) << event;
}

TEST_F(AuditCli, SecretEventsHoldNameOnly) {
  constexpr const char* kValue = "audit-S3cr3t-value-never-logged";
  const json set = only_new_event({"secret", "set", "a1", "API_TOKEN"}, "secret.set",
                                  {.stdin_bytes = std::string(kValue) + "\n"});
  EXPECT_EQ(set["data"], (json{{"name", "API_TOKEN"}})) << set;
  const json removed = only_new_event({"secret", "rm", "a1", "API_TOKEN"}, "secret.remove");
  EXPECT_EQ(removed["data"], (json{{"name", "API_TOKEN"}})) << removed;

  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"audit"}, {"audit", "--json"}, {"audit", "export"}, {"audit", "show", std::to_string(set["id"].get<std::int64_t>())}}) {
    const Outcome output = home_.zwrm(args);
    EXPECT_EQ(output.exit_code, 0) << output;
    EXPECT_FALSE(contains(output.out + output.err, kValue)) << output;
  }
}

TEST_F(AuditCli, PolicyAllowAndDenyRecorded) {
  const json allowed = only_new_event({"policy", "allow", "a1", "API.example.com", "10.0.0.0/8"}, "policy.allow");
  EXPECT_EQ(allowed["data"], (json{{"rules", {"api.example.com", "10.0.0.0/8"}}})) << allowed;
  const json denied = only_new_event({"policy", "deny", "a1", "api.example.com"}, "policy.deny");
  EXPECT_EQ(denied["data"], (json{{"rules", {"api.example.com"}}})) << denied;
}

TEST_F(AuditCli, FailedActionRecordsNothing) {
  const std::size_t before = query().size();
  EXPECT_EQ(home_.zwrm({"env", "unset", "a1", "MISSING"}).exit_code, kExitError);
  EXPECT_EQ(home_.zwrm({"policy", "deny", "a1", "never.example.com"}).exit_code, kExitError);
  EXPECT_EQ(query().size(), before);
}

// Query options.

TEST_F(AuditCli, TextFormShowsColumns) {
  ASSERT_EQ(home_.zwrm({"env", "set", "a1", "FOO=1", "BAR=2"}).exit_code, 0);
  const json event = query({"--type", "env.set"}).at(0);
  const Outcome listed = home_.zwrm({"audit"});
  ASSERT_EQ(listed.exit_code, 0) << listed;
  const std::vector<std::string> lines = split_lines(listed.out);
  ASSERT_EQ(lines.size(), 3u) << listed;  // the header and two events
  EXPECT_TRUE(lines[0].starts_with("TIME ")) << lines[0];
  for (const char* title : {"ID", "SOURCE", "AGENT", "RUN", "TYPE", "DATA"}) {
    EXPECT_TRUE(contains(lines[0], title)) << lines[0];
  }

  std::istringstream fields(lines[2]);
  std::string date, time, id, source, agent, run, type;
  fields >> date >> time >> id >> source >> agent >> run >> type;
  EXPECT_EQ(date + " " + time, local_time(event["time_ms"].get<std::int64_t>()));
  EXPECT_EQ(id, std::to_string(event["id"].get<std::int64_t>()));
  EXPECT_EQ(source, "host");
  EXPECT_EQ(agent, "a1");
  EXPECT_EQ(run, "-");
  EXPECT_EQ(type, "env.set");
  EXPECT_TRUE(lines[2].ends_with("keys=[\"FOO\",\"BAR\"]")) << lines[2];
  // The columns line up: each event's type starts where the header's TYPE does.
  EXPECT_EQ(lines[1].find("agent.create"), lines[0].find("TYPE"));
  EXPECT_EQ(lines[2].find("env.set"), lines[0].find("TYPE"));
}

TEST_F(AuditCli, TextFormEscapesControlCharacters) {
  // An event as a guest might report it, with escape sequences in its type
  // and data. Inserting is allowed and only breaks the chain.
  RawDatabase db(database());
  db.execute(
      "INSERT INTO events (time, project, run, source, type, data, actor, prev_hash, hash) VALUES "
      "(1796378400000, 'a1', 'r1', 'guest', 'guest.x' || char(27) || '[2J', "
      "'{\"bare\":\"\\u001b[1m\",\"quoted\":\"\\u001b[31mred\\u0007 \\u009b\"}', 'guest', '', '')");
  const Outcome listed = home_.zwrm({"audit", "--source", "guest"});
  ASSERT_EQ(listed.exit_code, 0) << listed;
  EXPECT_FALSE(contains(listed.out, "\x1b")) << listed;
  EXPECT_FALSE(contains(listed.out, "\x07")) << listed;
  EXPECT_FALSE(contains(listed.out, "\xc2\x9b")) << listed;
  EXPECT_TRUE(contains(listed.out, "guest.x\\x1b[2J")) << listed;
  EXPECT_TRUE(contains(listed.out, "bare=\\x1b[1m")) << listed;
  EXPECT_TRUE(contains(listed.out, "quoted=\"\\u001b[31mred\\u0007 \\xc2\\x9b\"")) << listed;

  const Outcome as_json = home_.zwrm({"audit", "--json", "--source", "guest"});
  ASSERT_EQ(as_json.exit_code, 0) << as_json;
  for (char c : as_json.out) {
    EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7f)) << "byte " << static_cast<int>(static_cast<unsigned char>(c));
  }
}

TEST_F(AuditCli, JsonLinesHaveEveryField) {
  const std::vector<json> events = query();
  ASSERT_EQ(events.size(), 1u);
  for (const char* field : {"id", "time", "time_ms", "agent", "run", "source", "type", "actor", "data", "prev_hash",
                            "hash"}) {
    EXPECT_TRUE(events[0].contains(field)) << field << " missing in " << events[0];
  }
  EXPECT_TRUE(events[0]["data"].is_object()) << events[0];
}

TEST_F(AuditCli, AgentFilterSelectsOneAgent) {
  ASSERT_EQ(home_.zwrm({"agent", "create", "a2", "--template", "minimal"}).exit_code, 0);
  add_env_events(2);
  ASSERT_EQ(home_.zwrm({"env", "set", "a2", "OTHER=1"}).exit_code, 0);

  const std::vector<json> a2 = query({"--agent", "a2"});
  ASSERT_EQ(a2.size(), 2u);
  EXPECT_EQ(a2[0]["type"], "agent.create");
  EXPECT_EQ(a2[1]["type"], "env.set");
  for (const json& event : a2) EXPECT_EQ(event["agent"], "a2");
  EXPECT_EQ(query({"--agent", "a1"}).size(), 3u);
  EXPECT_TRUE(query({"--agent", "nobody"}).empty());
}

TEST_F(AuditCli, TypeFilterExactAndFamily) {
  add_env_events(2);
  ASSERT_EQ(home_.zwrm({"env", "unset", "a1", "KEY0"}).exit_code, 0);

  const std::vector<json> set = query({"--type", "env.set"});
  EXPECT_EQ(set.size(), 2u);
  for (const json& event : set) EXPECT_EQ(event["type"], "env.set");
  const std::vector<json> family = query({"--type", "env."});
  ASSERT_EQ(family.size(), 3u);
  EXPECT_EQ(family[2]["type"], "env.unset");
  // Without the trailing '.', a type matches exactly.
  EXPECT_TRUE(query({"--type", "env"}).empty());
  EXPECT_TRUE(query({"--type", "env.se"}).empty());
}

TEST_F(AuditCli, SourceFilter) {
  add_env_events(1);
  EXPECT_EQ(query({"--source", "host"}).size(), 2u);
  // No guest runs here, so no guest events.
  EXPECT_TRUE(query({"--source", "guest"}).empty());
}

TEST_F(AuditCli, GrepMatchesTypeAgentAndData) {
  ASSERT_EQ(home_.zwrm({"policy", "allow", "a1", "api.example.com"}).exit_code, 0);
  add_env_events(1);

  const std::vector<json> by_data = query({"--grep", "api.example"});
  ASSERT_EQ(by_data.size(), 1u);
  EXPECT_EQ(by_data[0]["type"], "policy.allow");
  EXPECT_EQ(query({"--grep", "env.set"}).size(), 1u);
  EXPECT_EQ(query({"--grep", "a1"}).size(), 3u);
  // Case-sensitive.
  EXPECT_TRUE(query({"--grep", "API.EXAMPLE"}).empty());
}

TEST_F(AuditCli, LimitKeepsNewestInOrder) {
  add_env_events(4);
  const std::vector<json> all = query();
  ASSERT_EQ(all.size(), 5u);
  const std::vector<json> newest = query({"--limit", "2"});
  EXPECT_EQ(ids_of(newest), (std::vector<std::int64_t>{all[3]["id"], all[4]["id"]}));
  EXPECT_EQ(query({"--limit", "100"}).size(), 5u);
  // The limit applies after the other filters.
  const std::vector<json> newest_set = query({"--type", "agent.create", "--limit", "1"});
  ASSERT_EQ(newest_set.size(), 1u);
  EXPECT_EQ(newest_set[0]["id"], all[0]["id"]);
}

TEST_F(AuditCli, SinceAndUntilSplitAtTime) {
  add_env_events(4);
  const std::vector<json> all = query();
  ASSERT_EQ(all.size(), 5u);
  const json& middle = all[2];
  const std::int64_t split_ms = middle["time_ms"].get<std::int64_t>();

  // The "time" field is UTC with milliseconds, a form --since accepts.
  const std::vector<json> since = query({"--since", middle["time"].get<std::string>()});
  const std::vector<json> until = query({"--until", middle["time"].get<std::string>()});
  EXPECT_EQ(since.size() + until.size(), all.size());
  for (const json& event : since) EXPECT_GE(event["time_ms"].get<std::int64_t>(), split_ms) << event;
  for (const json& event : until) EXPECT_LT(event["time_ms"].get<std::int64_t>(), split_ms) << event;
  EXPECT_TRUE(std::any_of(since.begin(), since.end(), [&](const json& event) { return event["id"] == middle["id"]; }));

  // A plain date and time is local time, to the second.
  const std::string local = local_time(split_ms);
  for (const json& event : query({"--since", local})) {
    EXPECT_GE(event["time_ms"].get<std::int64_t>(), split_ms / 1000 * 1000) << event;
  }
  EXPECT_EQ(query({"--since", local.substr(0, 10)}).size() + query({"--until", local.substr(0, 10)}).size(), 5u);
  EXPECT_EQ(query({"--since", "1h"}).size(), 5u);
  EXPECT_TRUE(query({"--until", "1h"}).empty());
  EXPECT_TRUE(query({"--since", "2000-01-01", "--until", "2000-01-02"}).empty());
}

TEST_F(AuditCli, SinceDurationExcludesOlderEvents) {
  // The first event (agent.create) is made 4 s before the second, so
  // `--since 3s` right after the second excludes it.
  std::this_thread::sleep_for(4s);
  add_env_events(1);
  const std::vector<json> recent = query({"--since", "3s"});
  ASSERT_EQ(recent.size(), 1u);
  EXPECT_EQ(recent[0]["type"], "env.set");
}

TEST_F(AuditCli, RunFilterSelectsRun) {
  // Run events need a VM, so three rows are inserted directly. Inserting is
  // allowed and only breaks the chain.
  RawDatabase db(database());
  db.execute(
      "INSERT INTO events (time, project, run, source, type, data, actor, prev_hash, hash) VALUES "
      "(1796378400000, 'a1', 'r1', 'host', 'run.start', '{}', 'root (uid 0)', '', ''), "
      "(1796378400001, 'a1', 'r2', 'host', 'run.start', '{}', 'root (uid 0)', '', ''), "
      "(1796378400002, 'a1', 'r1', 'host', 'run.end', '{}', 'root (uid 0)', '', '')");
  const std::vector<json> r1 = query({"--run", "r1"});
  ASSERT_EQ(r1.size(), 2u);
  EXPECT_EQ(r1[0]["type"], "run.start");
  EXPECT_EQ(r1[1]["type"], "run.end");
  EXPECT_EQ(query({"--type", "run.", "--run", "r2"}).size(), 1u);
}

TEST_F(AuditCli, NoMatchPrintsNote) {
  const Outcome listed = home_.zwrm({"audit", "--type", "nothing.here"});
  EXPECT_EQ(listed.exit_code, 0) << listed;
  EXPECT_EQ(listed.out, "") << listed;
  EXPECT_EQ(listed.err, "zwrm: no events match\n") << listed;
  const Outcome as_json = home_.zwrm({"audit", "--json", "--type", "nothing.here"});
  EXPECT_EQ(as_json.exit_code, 0) << as_json;
  EXPECT_EQ(as_json.out + as_json.err, "") << as_json;
}

TEST_F(AuditCli, FollowPrintsNewEventsUntilInterrupted) {
  add_env_events(1);
  auto follow = home_.start({"audit", "--follow", "--type", "env."});
  ASSERT_TRUE(follow->wait_for_output("keys=[\"KEY0\"]", 10s)) << follow->out() << follow->err();

  ASSERT_EQ(home_.zwrm({"env", "set", "a1", "LATER=1"}).exit_code, 0);
  ASSERT_EQ(home_.zwrm({"policy", "allow", "a1", "api.example.com"}).exit_code, 0);
  ASSERT_EQ(home_.zwrm({"env", "unset", "a1", "LATER"}).exit_code, 0);
  EXPECT_TRUE(follow->wait_for_output("env.unset", 10s)) << follow->out() << follow->err();

  follow->send_signal(SIGINT);
  const std::optional<Outcome> ended = follow->wait(5s);
  ASSERT_TRUE(ended.has_value()) << "zwrm audit --follow still runs 5 s after SIGINT";
  EXPECT_EQ(ended->exit_code, 0) << *ended;
  const std::vector<std::string> lines = split_lines(ended->out);
  ASSERT_EQ(lines.size(), 4u) << *ended;  // the header and three env events, not the policy event
  EXPECT_TRUE(contains(lines[1], "keys=[\"KEY0\"]")) << *ended;
  EXPECT_TRUE(contains(lines[2], "keys=[\"LATER\"]")) << *ended;
  EXPECT_TRUE(contains(lines[3], "env.unset")) << *ended;
  EXPECT_EQ(ended->err, "") << *ended;
}

TEST_F(AuditCli, FollowJsonEndsOnSigterm) {
  auto follow = home_.start({"audit", "--follow", "--json", "--limit", "1"});
  ASSERT_TRUE(follow->wait_for_output("agent.create", 10s)) << follow->out() << follow->err();
  ASSERT_EQ(home_.zwrm({"env", "set", "a1", "LATER=1"}).exit_code, 0);
  ASSERT_TRUE(follow->wait_for_output("LATER", 10s)) << follow->out() << follow->err();

  follow->send_signal(SIGTERM);
  const std::optional<Outcome> ended = follow->wait(5s);
  ASSERT_TRUE(ended.has_value()) << "zwrm audit --follow still runs 5 s after SIGTERM";
  EXPECT_EQ(ended->exit_code, 0) << *ended;
  const std::vector<std::string> lines = split_lines(ended->out);
  ASSERT_EQ(lines.size(), 2u) << *ended;
  EXPECT_EQ(json::parse(lines[0], nullptr, false)["type"], "agent.create") << *ended;
  EXPECT_EQ(json::parse(lines[1], nullptr, false)["type"], "env.set") << *ended;
}

// export and show.

TEST_F(AuditCli, ExportWritesJsonLines) {
  add_env_events(2);
  const Outcome listed = home_.zwrm({"audit", "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed;
  const std::string file = home_.scratch() + "/events.jsonl";
  const Outcome to_file = home_.shell("'" + zwrm_binary() + "' audit export > '" + file + "'");
  ASSERT_EQ(to_file.exit_code, 0) << to_file;
  std::ifstream stream(file);
  std::stringstream content;
  content << stream.rdbuf();
  EXPECT_EQ(content.str(), listed.out);
  EXPECT_EQ(split_lines(content.str()).size(), 3u);

  const Outcome filtered = home_.zwrm({"audit", "export", "--type", "env.set", "--limit", "1"});
  ASSERT_EQ(filtered.exit_code, 0) << filtered;
  ASSERT_EQ(split_lines(filtered.out).size(), 1u) << filtered;
  EXPECT_TRUE(contains(filtered.out, "KEY1")) << filtered;
}

TEST_F(AuditCli, ExportToFullDiskFails) {
  const Outcome exported = home_.shell("'" + zwrm_binary() + "' audit export > /dev/full");
  EXPECT_EQ(exported.exit_code, kExitError) << exported;
  EXPECT_EQ(check_error_line(exported), "") << exported;
}

TEST_F(AuditCli, ShowPrintsEventInFull) {
  add_env_events(1);
  const std::vector<json> events = query();
  ASSERT_EQ(events.size(), 2u);
  const std::string id = std::to_string(events[1]["id"].get<std::int64_t>());
  for (const std::string& argument : {id, "#" + id}) {
    const Outcome shown = home_.zwrm({"audit", "show", argument});
    ASSERT_EQ(shown.exit_code, 0) << shown;
    EXPECT_GT(split_lines(shown.out).size(), 10u) << "not pretty-printed: " << shown;
    EXPECT_EQ(json::parse(shown.out, nullptr, false), events[1]) << shown;
  }
}

TEST_F(AuditCli, ShowOfMissingEventFails) {
  const Outcome shown = home_.zwrm({"audit", "show", "999"});
  EXPECT_EQ(shown.exit_code, kExitError) << shown;
  EXPECT_EQ(check_error_line(shown), "") << shown;
  EXPECT_TRUE(contains(shown.err, "no event #999")) << shown;
  EXPECT_EQ(shown.out, "");
}

TEST_F(AuditCli, BadInputRejected) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"audit", "--source", "vm"}, "'vm'"},
      {{"audit", "--since", "yesterday"}, "'yesterday'"},
      {{"audit", "--since", "2026"}, "'2026'"},
      {{"audit", "--until", "2026-02-30"}, "'2026-02-30'"},
      {{"audit", "--since", "1h", "--until", "2h"}, "--until '2h'"},
      {{"audit", "--limit", "0"}, "'0'"},
      {{"audit", "--limit", "ten"}, "'ten'"},
      {{"audit", "--agent", "Bad_Name"}, "'Bad_Name'"},
      {{"audit", "--agent", ""}, "--agent ''"},
      {{"audit", "export", "--source", "vm"}, "'vm'"},
      {{"audit", "--type", "env.set", "export"}, "--type"},
      {{"audit", "show", "abc"}, "'abc'"},
      {{"audit", "show", "0"}, "'0'"},
      {{"audit", "show", "999"}, "#999"},
      {{"audit", "prune", "--before", "soon"}, "'soon'"},
      {{"audit", "prune", "--before", "2999-01-01", "--yes"}, "'2999-01-01'"},
      {{"audit", "verify", "extra"}, "extra"},
  };
  for (const auto& [args, named] : cases) {
    const Outcome result = home_.zwrm(args);
    EXPECT_EQ(result.exit_code, kExitError) << result;
    EXPECT_EQ(check_error_line(result), "") << result;
    EXPECT_TRUE(contains(result.err, named)) << "the error does not name " << named << ": " << result;
  }
  // Nothing was pruned or added by the rejected commands.
  EXPECT_EQ(query().size(), 1u);
}

// verify and tampering.

TEST_F(AuditCli, VerifyPassesUntouchedLog) {
  add_env_events(3);
  const std::vector<json> events = query();
  const Outcome verified = verify();
  EXPECT_EQ(verified.exit_code, 0) << verified;
  EXPECT_EQ(verified.out, "ok: 4 events from #" + std::to_string(events.front()["id"].get<std::int64_t>()) + " to #" +
                              std::to_string(events.back()["id"].get<std::int64_t>()) +
                              ", chain and head intact\n")
      << verified;
  EXPECT_EQ(verified.err, "") << verified;
}

TEST_F(AuditCli, TriggersRejectEditsAndDeletes) {
  RawDatabase db(database());
  EXPECT_NE(db.try_execute("UPDATE events SET data = '{}'"), "");
  EXPECT_NE(db.try_execute("DELETE FROM events"), "");
  EXPECT_EQ(verify().exit_code, 0);
}

TEST_F(AuditCli, EditedFieldDetected) {
  add_env_events(5);
  RawDatabase db(database());
  db.drop_triggers();
  const Row original = db.rows().at(2);
  const std::string where = " WHERE id = " + std::to_string(original.id);
  // Each column a hash covers, changed and then restored.
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"data", "{\"keys\":[\"OTHER\"]}"}, {"type", "env.unset"}, {"actor", "alice (uid 1000)"},
      {"project", "a2"},                  {"run", "r1"},         {"source", "guest"},
  };
  for (const auto& [column, value] : edits) {
    SCOPED_TRACE("edited column " + column);
    db.execute_with("UPDATE events SET " + column + " = ?" + where, value);
    expect_broken_at(original.id);
    db.execute("UPDATE events SET project = 'a1', run = '', source = 'host', type = 'env.set'" + where);
    db.execute_with("UPDATE events SET data = ?" + where, original.data);
    db.execute_with("UPDATE events SET actor = ?" + where, original.actor);
    ASSERT_EQ(verify().exit_code, 0) << "restoring the row did not restore the chain";
  }
  db.execute("UPDATE events SET time = time + 1" + where);
  expect_broken_at(original.id);
}

TEST_F(AuditCli, DeletedRowDetected) {
  add_env_events(5);
  RawDatabase db(database());
  db.drop_triggers();
  const std::vector<Row> rows = db.rows();
  db.execute("DELETE FROM events WHERE id = " + std::to_string(rows[2].id));
  expect_broken_at(rows[3].id);
}

TEST_F(AuditCli, SwappedRowsDetected) {
  add_env_events(5);
  RawDatabase db(database());
  db.drop_triggers();
  const std::vector<Row> rows = db.rows();
  const Row& first = rows[2];
  const Row& second = rows[3];
  // Every column but the id trades places, hashes included.
  auto assign = [&](const Row& from, std::int64_t to_id) {
    db.execute_with("UPDATE events SET time = " + std::to_string(from.time_ms) + ", project = '" + from.project +
                        "', run = '" + from.run + "', source = '" + from.source + "', type = '" + from.type +
                        "', actor = '" + from.actor + "', prev_hash = '" + from.prev_hash + "', hash = '" + from.hash +
                        "', data = ? WHERE id = " + std::to_string(to_id),
                    from.data);
  };
  assign(second, first.id);
  assign(first, second.id);
  expect_broken_at(first.id);
}

TEST_F(AuditCli, DeletedOldestRowsDetected) {
  add_env_events(5);
  RawDatabase db(database());
  db.drop_triggers();
  const std::vector<Row> rows = db.rows();
  db.execute("DELETE FROM events WHERE id <= " + std::to_string(rows[1].id));
  expect_broken_at(rows[2].id);
}

TEST_F(AuditCli, DeletedNewestRowsDetected) {
  add_env_events(5);
  RawDatabase db(database());
  db.drop_triggers();
  const std::vector<Row> rows = db.rows();
  db.execute("DELETE FROM events WHERE id >= " + std::to_string(rows[4].id));
  // The head file still names the newest event, which is gone.
  expect_broken_at(rows.back().id);
}

TEST_F(AuditCli, DeletedNewestRowsStillDetectedAfterAppend) {
  add_env_events(5);
  {
    RawDatabase db(database());
    db.drop_triggers();
    const std::vector<Row> rows = db.rows();
    db.execute("DELETE FROM events WHERE id >= " + std::to_string(rows[4].id));
  }
  // A later event must not hide the gap by chaining to what is left.
  ASSERT_EQ(home_.zwrm({"env", "set", "a1", "AFTER=1"}).exit_code, 0);
  const Outcome verified = verify();
  EXPECT_EQ(verified.exit_code, kExitBroken) << verified;
}

TEST_F(AuditCli, RebuiltChainDetectedByHead) {
  add_env_events(3);
  RawDatabase db(database());
  db.drop_triggers();
  std::vector<Row> rows = db.rows();
  // Edit one event, then rehash it and every later one as zwrm does: SHA-256
  // of the previous hash, a newline and the columns as a JSON array.
  rows[1].data = "{\"keys\":[\"REWRITTEN\"]}";
  for (std::size_t i = 1; i < rows.size(); ++i) {
    Row& row = rows[i];
    row.prev_hash = rows[i - 1].hash;
    const std::string content =
        json::array({row.id, row.time_ms, row.project, row.run, row.source, row.type, row.actor, row.data}).dump();
    row.hash = sha256_hex(row.prev_hash + "\n" + content);
    db.execute_with("UPDATE events SET prev_hash = '" + row.prev_hash + "', hash = '" + row.hash +
                        "', data = ? WHERE id = " + std::to_string(row.id),
                    row.data);
  }
  expect_broken_at(rows.back().id);

  // An attacker who can also write the head file hides the rebuild, because
  // the head shows a rebuild only while it is out of the attacker's reach.
  // Passing here also proves that the rebuild above is a valid chain.
  std::ofstream(head_file()) << rows.back().id << " " << rows.back().hash << "\n";
  const Outcome verified = verify();
  EXPECT_EQ(verified.exit_code, 0) << verified;
}

TEST_F(AuditCli, MissingHeadFileDetected) {
  add_env_events(1);
  ASSERT_EQ(std::remove(head_file().c_str()), 0) << std::strerror(errno);
  const Outcome verified = verify();
  EXPECT_EQ(verified.exit_code, kExitBroken) << verified;
  EXPECT_TRUE(contains(verified.err, "head")) << verified;
}

// prune.

TEST_F(AuditCli, PruneKeepsChainVerifiable) {
  add_env_events(4);
  const std::vector<json> before = query();
  ASSERT_EQ(before.size(), 5u);
  const json& kept_first = before[3];

  const Outcome pruned = home_.zwrm({"audit", "prune", "--before", kept_first["time"].get<std::string>(), "--yes"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned;
  EXPECT_TRUE(pruned.out.starts_with("removed ")) << pruned;

  const std::vector<json> after = query();
  ASSERT_FALSE(after.empty());
  for (const json& event : after) {
    EXPECT_TRUE(event["type"] == "audit.prune" || event["time_ms"] >= kept_first["time_ms"]) << event;
  }
  const json& record = after.back();
  EXPECT_EQ(record["type"], "audit.prune");
  EXPECT_EQ(record["agent"], "");
  EXPECT_EQ(record["actor"], expected_actor());
  const std::int64_t removed = record["data"]["removed"].get<std::int64_t>();
  EXPECT_EQ(static_cast<std::size_t>(removed) + after.size(), before.size() + 1);
  EXPECT_TRUE(contains(pruned.out, "removed " + std::to_string(removed) + " event")) << pruned;
  EXPECT_TRUE(contains(pruned.out, "#" + std::to_string(record["id"].get<std::int64_t>()))) << pruned;

  const Outcome verified = verify();
  EXPECT_EQ(verified.exit_code, 0) << verified;
  add_env_events(1);
  EXPECT_EQ(verify().exit_code, 0);
}

TEST_F(AuditCli, PruneEverything) {
  add_env_events(2);
  const Outcome pruned = home_.zwrm({"audit", "prune", "--before", "0s", "--yes"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned;
  EXPECT_TRUE(pruned.out.starts_with("removed 3 events before ")) << pruned;
  const std::vector<json> after = query();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0]["type"], "audit.prune");
  EXPECT_EQ(after[0]["data"]["removed"], 3);
  EXPECT_EQ(verify().exit_code, 0) << verify();
}

TEST_F(AuditCli, PruneOfNothingRecordsNothing) {
  const Outcome pruned = home_.zwrm({"audit", "prune", "--before", "2000-01-01"});
  EXPECT_EQ(pruned.exit_code, 0) << pruned;
  EXPECT_TRUE(pruned.out.starts_with("no events before ")) << pruned;
  EXPECT_EQ(query().size(), 1u);
}

TEST_F(AuditCli, PruneWithoutTerminalNeedsYes) {
  add_env_events(1);
  const Outcome pruned = home_.zwrm({"audit", "prune", "--before", "0s"});
  EXPECT_EQ(pruned.exit_code, kExitError) << pruned;
  EXPECT_EQ(check_error_line(pruned), "") << pruned;
  EXPECT_TRUE(contains(pruned.err, "--yes")) << pruned;
  EXPECT_EQ(query().size(), 2u);
}

TEST_F(AuditCli, PruneAsksOnTerminal) {
  add_env_events(1);
  auto declined = home_.start_terminal({"audit", "prune", "--before", "0s"}, 24, 200);
  ASSERT_TRUE(declined->wait_for("for good? [y/N]", 10s)) << declined->screen();
  declined->type("n\r");
  EXPECT_EQ(declined->wait(10s), std::optional<int>(kExitError)) << declined->screen();
  EXPECT_TRUE(contains(declined->screen(), "nothing removed")) << declined->screen();
  EXPECT_EQ(query().size(), 2u);

  auto confirmed = home_.start_terminal({"audit", "prune", "--before", "0s"}, 24, 200);
  ASSERT_TRUE(confirmed->wait_for("for good? [y/N]", 10s)) << confirmed->screen();
  confirmed->type("y\r");
  EXPECT_EQ(confirmed->wait(10s), std::optional<int>(0)) << confirmed->screen();
  EXPECT_TRUE(contains(confirmed->screen(), "removed 2 events")) << confirmed->screen();
  EXPECT_EQ(query().size(), 1u);
}

}  // namespace
}  // namespace zwrm::integration
