#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include "state/audit.h"
#include "state/database.h"
#include "state/names.h"
#include "state/agents.h"
#include "state/runs.h"

namespace zwrm::state {
namespace {

class StateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/zwrm-state-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto db = Database::open(dir_ + "/zwrm.db");
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    std::system(("rm -rf " + dir_).c_str());
  }

  state::Run sample_run(const std::string& id, const std::string& project) {
    state::Run run;
    run.id = id;
    run.project = project;
    run.template_name = "minimal";
    run.command = R"(["true"])";
    run.cpus = 1;
    run.memory_mib = 512;
    run.supervisor_pid = ::getpid();
    run.supervisor_start_ticks = process_start_ticks(::getpid());
    run.log_dir = dir_ + "/logs/" + id;
    return run;
  }

  std::string dir_;
  std::unique_ptr<Database> db_;
};

TEST_F(StateTest, EventsAreAppendOnly) {
  auto id = append_event(*db_, {"p1", "r1", EventSource::kHost, "run.start", {{"cpus", 1}}});
  ASSERT_TRUE(id) << id.error().message;
  auto updated = db_->execute("UPDATE events SET type = 'x'");
  ASSERT_FALSE(updated);
  EXPECT_NE(updated.error().message.find("append-only"), std::string::npos);
  EXPECT_FALSE(db_->execute("DELETE FROM events"));
  auto events = read_events(*db_, "r1");
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ(events->front().type, "run.start");
  EXPECT_EQ(events->front().data["cpus"], 1);
}

state::Agent sample_agent(const std::string& name) {
  state::Agent agent;
  agent.name = name;
  agent.template_name = "minimal";
  agent.volume_path = "/v/" + name + ".ext4";
  agent.volume_bytes = 1ull << 30;
  return agent;
}

TEST_F(StateTest, ReopenKeepsSchemaAndRows) {
  ASSERT_TRUE(insert_agent(*db_, sample_agent("p1")));
  db_.reset();
  auto reopened = Database::open(dir_ + "/zwrm.db");
  ASSERT_TRUE(reopened);
  auto agent = find_agent(**reopened, "p1");
  ASSERT_TRUE(agent);
  ASSERT_TRUE(agent->has_value());
  EXPECT_EQ((*agent)->volume_bytes, 1ull << 30);
}

TEST_F(StateTest, InsertAgentTwiceKeepsFirst) {
  state::Agent second = sample_agent("p1");
  second.template_name = "debian";
  auto inserted_first = insert_agent(*db_, sample_agent("p1"));
  auto inserted_second = insert_agent(*db_, second);
  ASSERT_TRUE(inserted_first);
  ASSERT_TRUE(inserted_second);
  EXPECT_TRUE(*inserted_first);
  EXPECT_FALSE(*inserted_second);
  EXPECT_EQ((*find_agent(*db_, "p1"))->template_name, "minimal");
}

TEST_F(StateTest, UpdateAgentChangesSettings) {
  ASSERT_TRUE(insert_agent(*db_, sample_agent("p1")));
  state::Agent changed = sample_agent("p1");
  changed.cpus = 2;
  changed.memory_mib = 2048;
  changed.timeout_ms = 60'000;
  ASSERT_TRUE(update_agent(*db_, changed));
  auto agent = *find_agent(*db_, "p1");
  EXPECT_EQ(agent->cpus, 2u);
  EXPECT_EQ(agent->memory_mib, 2048u);
  EXPECT_EQ(agent->timeout_ms, 60'000);
  EXPECT_FALSE(agent->idle_timeout_ms.has_value());
  EXPECT_FALSE(update_agent(*db_, sample_agent("nobody")));
}

TEST_F(StateTest, AgentEnvironmentSetUnsetAndCascade) {
  ASSERT_TRUE(insert_agent(*db_, sample_agent("p1")));
  ASSERT_TRUE(set_agent_env(*db_, "p1", "B", "2"));
  ASSERT_TRUE(set_agent_env(*db_, "p1", "A", "1"));
  ASSERT_TRUE(set_agent_env(*db_, "p1", "A", "one"));
  auto env = agent_env(*db_, "p1");
  ASSERT_TRUE(env);
  ASSERT_EQ(env->size(), 2u);
  EXPECT_EQ((*env)[0], (std::pair<std::string, std::string>{"A", "one"}));
  auto removed = unset_agent_env(*db_, "p1", "B");
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  auto missing = unset_agent_env(*db_, "p1", "B");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
  auto deleted = delete_agent(*db_, "p1");
  ASSERT_TRUE(deleted);
  EXPECT_TRUE(*deleted);
  EXPECT_TRUE(agent_env(*db_, "p1")->empty());
}

TEST_F(StateTest, MigrationKeepsProjectsAsAgents) {
  // A database at schema version 1 with a project, as zwrm 0.1 wrote it.
  db_.reset();
  const std::string path = dir_ + "/old.db";
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         "CREATE TABLE projects (name TEXT PRIMARY KEY, template TEXT NOT NULL, volume_path TEXT NOT "
                         "NULL, volume_bytes INTEGER NOT NULL, created_at INTEGER NOT NULL);"
                         "CREATE TABLE runs (id TEXT PRIMARY KEY, project TEXT NOT NULL, template TEXT NOT NULL, command "
                         "TEXT NOT NULL, state TEXT NOT NULL, accel TEXT NOT NULL DEFAULT '', cpus INTEGER NOT NULL, "
                         "memory_mib INTEGER NOT NULL, timeout_ms INTEGER, supervisor_pid INTEGER NOT NULL, "
                         "supervisor_start_ticks INTEGER NOT NULL, vmm_pid INTEGER, created_at INTEGER NOT NULL, "
                         "ended_at INTEGER, exit_code INTEGER, stop_cause TEXT, stop_detail TEXT, log_dir TEXT NOT NULL);"
                         "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, project "
                         "TEXT NOT NULL DEFAULT '', run TEXT NOT NULL DEFAULT '', source TEXT NOT NULL, type TEXT NOT "
                         "NULL, data TEXT NOT NULL);"
                         "INSERT INTO projects VALUES ('old', 'debian', '/v/old.ext4', 4096, 7);"
                         "PRAGMA user_version = 1;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  auto migrated = Database::open(path);
  ASSERT_TRUE(migrated) << migrated.error().message;
  auto agent = find_agent(**migrated, "old");
  ASSERT_TRUE(agent);
  ASSERT_TRUE(agent->has_value());
  EXPECT_EQ((*agent)->template_name, "debian");
  EXPECT_EQ((*agent)->volume_bytes, 4096u);
  EXPECT_EQ((*agent)->created_at_ms, 7);
}

TEST_F(StateTest, RunLifecycleAndPrefixLookup) {
  ASSERT_TRUE(insert_run(*db_, sample_run("abcdef012345", "p1")));
  ASSERT_TRUE(insert_run(*db_, sample_run("abce00000000", "p2")));
  auto live = find_live_run_of_project(*db_, "p1");
  ASSERT_TRUE(live);
  ASSERT_TRUE(live->has_value());
  EXPECT_EQ((*live)->id, "abcdef012345");

  EXPECT_FALSE(find_run(*db_, "abc"));            // too short
  EXPECT_FALSE(find_run(*db_, "ffff"));           // matches nothing
  EXPECT_FALSE(find_run(*db_, "ABCD"));           // not hex
  auto unique = find_run(*db_, "abce");
  ASSERT_TRUE(unique);
  EXPECT_EQ(unique->id, "abce00000000");
  ASSERT_TRUE(mark_run_running(*db_, "abcdef012345", 42, "tcg"));
  ASSERT_TRUE(mark_run_ended(*db_, "abcdef012345", 3, "exit", ""));
  auto ended = find_run(*db_, "abcdef");
  ASSERT_TRUE(ended);
  EXPECT_EQ(ended->state, "ended");
  EXPECT_EQ(ended->exit_code, 3);
  EXPECT_EQ(ended->vmm_pid, 42);
  auto none = find_live_run_of_project(*db_, "p1");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST_F(StateTest, EndedRunsBeforeSkipsNewest) {
  for (int i = 0; i < 5; ++i) {
    state::Run run = sample_run("00000000000" + std::to_string(i), "p1");
    run.created_at_ms = 1000 + i;
    ASSERT_TRUE(insert_run(*db_, run));
    if (i != 2) {
      ASSERT_TRUE(mark_run_ended(*db_, run.id, 0, "exit", ""));
    }
  }
  auto older = list_ended_runs_before(*db_, 2);
  ASSERT_TRUE(older);
  ASSERT_EQ(older->size(), 2u);  // runs 4 and 3 are kept, 2 is live
  EXPECT_EQ((*older)[0].id, "000000000001");
  EXPECT_EQ((*older)[1].id, "000000000000");
}

TEST_F(StateTest, AmbiguousPrefixIsRejected) {
  ASSERT_TRUE(insert_run(*db_, sample_run("abcd11111111", "p1")));
  ASSERT_TRUE(insert_run(*db_, sample_run("abcd22222222", "p2")));
  auto found = find_run(*db_, "abcd");
  ASSERT_FALSE(found);
  EXPECT_NE(found.error().message.find("ambiguous"), std::string::npos);
}

TEST_F(StateTest, SupervisorAliveChecksStartTime) {
  state::Run run = sample_run("0123456789ab", "p1");
  EXPECT_TRUE(supervisor_alive(run));
  run.supervisor_start_ticks += 1;  // same pid, different process
  EXPECT_FALSE(supervisor_alive(run));
}

TEST_F(StateTest, ExitedSupervisorIsNotAlive) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  state::Run run = sample_run("0123456789ab", "p1");
  run.supervisor_pid = child;
  run.supervisor_start_ticks = process_start_ticks(child);
  // Unreaped, the child stays a zombie with the same pid and start time.
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  EXPECT_EQ(process_start_ticks(child), run.supervisor_start_ticks);
  EXPECT_FALSE(supervisor_alive(run));
  ::waitpid(child, nullptr, 0);
}

TEST(Names, ProjectNames) {
  EXPECT_TRUE(validate_project_name("my-project"));
  EXPECT_TRUE(validate_project_name("p1"));
  for (const char* bad : {"", "a/b", "..", "a..b", "-a", "a-", "UPPER", "a b", "a\nb", "a\x1b[2Jb"}) {
    EXPECT_FALSE(validate_project_name(bad)) << printable(bad);
  }
  auto error = validate_project_name("a\x1b[2J");
  ASSERT_FALSE(error);
  EXPECT_EQ(error.error().message.find('\x1b'), std::string::npos);
  EXPECT_NE(error.error().message.find("\\x1b"), std::string::npos);
}

}  // namespace
}  // namespace zwrm::state
