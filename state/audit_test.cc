#include "state/audit.h"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace zwrm::state {
namespace {

namespace fs = std::filesystem;

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/zwrm-audit-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/zwrm.db";
    auto db = Database::open(path_);
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(dir_);
  }

  std::int64_t append(const std::string& type, nlohmann::json data = nlohmann::json::object(),
                      std::int64_t time_ms = 0) {
    Event event{"agent1", "run1", EventSource::kHost, type, std::move(data)};
    event.time_ms = time_ms;
    auto id = append_event(*db_, event);
    EXPECT_TRUE(id) << id.error().message;
    return id.value_or(0);
  }

  // Runs SQL on the database as someone who bypasses zwrm would: without
  // the triggers that keep the table append-only.
  void tamper(const std::string& sql) {
    const std::string script =
        "DROP TRIGGER IF EXISTS events_no_update; DROP TRIGGER IF EXISTS events_no_delete; " + sql;
    char* message = nullptr;
    ASSERT_EQ(sqlite3_exec(db_->handle(), script.c_str(), nullptr, nullptr, &message), SQLITE_OK) << message;
  }

  VerifyReport verify() {
    auto report = verify_events(*db_);
    EXPECT_TRUE(report) << report.error().message;
    return report.value_or(VerifyReport{});
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<Database> db_;
};

TEST_F(AuditTest, EventsChainAndHeadMatches) {
  const std::int64_t first = append("agent.create");
  const std::int64_t second = append("env.set", {{"keys", {"A"}}});
  auto events = read_events(*db_);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].prev_hash, "");
  EXPECT_EQ((*events)[1].prev_hash, (*events)[0].hash);
  EXPECT_EQ((*events)[1].actor, current_actor());
  std::ifstream head(audit_head_path(path_));
  std::int64_t head_id = 0;
  std::string head_hash;
  head >> head_id >> head_hash;
  EXPECT_EQ(head_id, second);
  EXPECT_EQ(head_hash, (*events)[1].hash);
  const VerifyReport report = verify();
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.events, 2);
  EXPECT_EQ(report.first_id, first);
}

TEST_F(AuditTest, TableRejectsUpdateAndDelete) {
  append("agent.create");
  char* message = nullptr;
  EXPECT_NE(sqlite3_exec(db_->handle(), "UPDATE events SET type = 'x'", nullptr, nullptr, &message), SQLITE_OK);
  sqlite3_free(message);
  EXPECT_NE(sqlite3_exec(db_->handle(), "DELETE FROM events", nullptr, nullptr, &message), SQLITE_OK);
  sqlite3_free(message);
  EXPECT_TRUE(verify().ok);
}

TEST_F(AuditTest, EditedFieldIsFound) {
  append("a");
  const std::int64_t edited = append("b", {{"argv", {"ls"}}});
  append("c");
  tamper("UPDATE events SET data = '{\"argv\":[\"rm\"]}' WHERE id = " + std::to_string(edited));
  const VerifyReport report = verify();
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.broken_id, edited);
  EXPECT_NE(report.problem.find("edited"), std::string::npos) << report.problem;
}

TEST_F(AuditTest, EditedActorIsFound) {
  const std::int64_t edited = append("a");
  append("b");
  tamper("UPDATE events SET actor = 'nobody (uid 65534)' WHERE id = " + std::to_string(edited));
  EXPECT_EQ(verify().broken_id, edited);
}

TEST_F(AuditTest, DeletedRowIsFound) {
  append("a");
  const std::int64_t deleted = append("b");
  const std::int64_t after = append("c");
  tamper("DELETE FROM events WHERE id = " + std::to_string(deleted));
  const VerifyReport report = verify();
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.broken_id, after);
  EXPECT_NE(report.problem.find("does not follow"), std::string::npos) << report.problem;
}

TEST_F(AuditTest, SwappedRowsAreFound) {
  append("a");
  const std::int64_t first = append("b", {{"n", 1}});
  const std::int64_t second = append("c", {{"n", 2}});
  append("d");
  // Swaps every column but the id between two rows.
  tamper("CREATE TEMP TABLE saved AS SELECT * FROM events WHERE id IN (" + std::to_string(first) + "," +
         std::to_string(second) + ");"
         "UPDATE events SET (time, type, data, prev_hash, hash) = (SELECT time, type, data, prev_hash, hash FROM saved "
         "WHERE saved.id = " + std::to_string(second) + ") WHERE id = " + std::to_string(first) + ";"
         "UPDATE events SET (time, type, data, prev_hash, hash) = (SELECT time, type, data, prev_hash, hash FROM saved "
         "WHERE saved.id = " + std::to_string(first) + ") WHERE id = " + std::to_string(second) + ";");
  const VerifyReport report = verify();
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.broken_id, first);
}

TEST_F(AuditTest, DroppedNewestRowsAreFound) {
  append("a");
  const std::int64_t kept = append("b");
  const std::int64_t newest = append("c");
  append("d");
  tamper("DELETE FROM events WHERE id >= " + std::to_string(newest));
  const VerifyReport report = verify();
  EXPECT_FALSE(report.ok);
  EXPECT_NE(report.problem.find("newest event is #" + std::to_string(kept)), std::string::npos) << report.problem;
}

// A later event must not paper over deleted newest events.
TEST_F(AuditTest, DroppedRowsStayFoundAfterAppend) {
  append("a");
  const std::int64_t dropped = append("b");
  tamper("DELETE FROM events WHERE id = " + std::to_string(dropped));
  append("c");
  const VerifyReport report = verify();
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.broken_id, dropped);
}

TEST_F(AuditTest, RebuiltChainIsFound) {
  append("a");
  const std::int64_t edited = append("b");
  // Edits a row, then recomputes every hash: the chain is consistent again,
  // but no longer matches the head file.
  tamper("UPDATE events SET type = 'forged' WHERE id = " + std::to_string(edited) +
         "; UPDATE events SET hash = '', prev_hash = '';");
  ASSERT_TRUE(hash_unhashed_events(*db_));
  // hash_unhashed_events writes the head only when newer, so the old head stays.
  const VerifyReport report = verify();
  EXPECT_FALSE(report.ok);
  EXPECT_NE(report.problem.find("rebuilt"), std::string::npos) << report.problem;
}

TEST_F(AuditTest, MissingHeadFileIsFound) {
  append("a");
  fs::remove(audit_head_path(path_));
  EXPECT_FALSE(verify().ok);
}

TEST_F(AuditTest, PruneKeepsChainVerifiable) {
  append("old1", {}, 1000);
  append("old2", {}, 2000);
  const std::int64_t kept = append("new", {}, 5000);
  auto pruned = prune_events(*db_, 3000);
  ASSERT_TRUE(pruned) << pruned.error().message;
  EXPECT_EQ(pruned->removed, 2);
  auto events = read_events(*db_);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].id, kept);
  EXPECT_EQ((*events)[1].type, "audit.prune");
  EXPECT_EQ((*events)[1].data["anchor_hash"], (*events)[0].prev_hash);
  const VerifyReport report = verify();
  EXPECT_TRUE(report.ok) << report.problem;

  // Without the prune event, the missing older rows are found.
  tamper("DELETE FROM events WHERE type = 'audit.prune'");
  append("later");
  EXPECT_FALSE(verify().ok);
}

TEST_F(AuditTest, PruneOfEverythingStaysVerifiable) {
  append("old1", {}, 1000);
  append("old2", {}, 2000);
  auto pruned = prune_events(*db_, 3000);
  ASSERT_TRUE(pruned);
  EXPECT_EQ(pruned->removed, 2);
  EXPECT_TRUE(verify().ok);
  append("new");
  const VerifyReport report = verify();
  EXPECT_TRUE(report.ok) << report.problem;
}

TEST_F(AuditTest, PruneWithNothingOlderChangesNothing) {
  append("a", {}, 5000);
  auto pruned = prune_events(*db_, 1000);
  ASSERT_TRUE(pruned);
  EXPECT_EQ(pruned->removed, 0);
  EXPECT_EQ(read_events(*db_)->size(), 1u);
}

TEST_F(AuditTest, RolledBackEventLeavesNoTrace) {
  append("a");
  auto rolled_back = transaction(*db_, [&]() -> Status {
    if (auto id = append_event(*db_, {"agent1", "", EventSource::kHost, "b", {}}); !id) return tl::unexpected(id.error());
    return fail("the change failed");
  });
  EXPECT_FALSE(rolled_back);
  EXPECT_EQ(read_events(*db_)->size(), 1u);
  EXPECT_TRUE(verify().ok);
}

TEST_F(AuditTest, ConcurrentWritersKeepChain) {
  constexpr int kWriters = 4;
  constexpr int kEach = 40;
  db_.reset();
  for (int writer = 0; writer < kWriters; ++writer) {
    if (::fork() == 0) {
      auto db = Database::open(path_);
      bool ok = static_cast<bool>(db);
      for (int i = 0; ok && i < kEach; ++i) {
        ok = static_cast<bool>(append_event(**db, {"agent1", "", EventSource::kHost, "w", {{"writer", writer}, {"i", i}}}));
      }
      ::_exit(ok ? 0 : 1);
    }
  }
  for (int writer = 0; writer < kWriters; ++writer) {
    int status = 0;
    ::wait(&status);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  auto db = Database::open(path_);
  ASSERT_TRUE(db);
  db_ = std::move(*db);
  EXPECT_EQ(read_events(*db_)->size(), static_cast<std::size_t>(kWriters * kEach));
  const VerifyReport report = verify();
  EXPECT_TRUE(report.ok) << report.problem;
}

TEST_F(AuditTest, FiltersSelectEvents) {
  append("run.start", {}, 1000);
  append("run.exec", {{"argv", {"ls", "-la"}}}, 2000);
  append("runaway", {}, 3000);
  Event guest{"agent2", "run2", EventSource::kGuest, "process.exec", {{"argv", {"python3"}}}};
  guest.time_ms = 4000;
  guest.actor = "guest";
  ASSERT_TRUE(append_event(*db_, guest));

  const auto types = [&](const EventFilter& filter) {
    std::vector<std::string> names;
    auto events = read_events(*db_, filter);
    EXPECT_TRUE(events);
    if (!events) return names;
    for (const Event& event : *events) names.push_back(event.type);
    return names;
  };
  EventFilter family;
  family.type = "run.";
  EXPECT_EQ(types(family), (std::vector<std::string>{"run.start", "run.exec"}));
  EventFilter exact;
  exact.type = "runaway";
  EXPECT_EQ(types(exact), std::vector<std::string>{"runaway"});
  EventFilter window;
  window.since_ms = 2000;
  window.until_ms = 4000;
  EXPECT_EQ(types(window), (std::vector<std::string>{"run.exec", "runaway"}));
  EventFilter by_source;
  by_source.source = EventSource::kGuest;
  EXPECT_EQ(types(by_source), std::vector<std::string>{"process.exec"});
  EventFilter by_agent;
  by_agent.project = "agent2";
  EXPECT_EQ(types(by_agent), std::vector<std::string>{"process.exec"});
  EventFilter grep;
  grep.grep = "-la";
  EXPECT_EQ(types(grep), std::vector<std::string>{"run.exec"});
  EventFilter newest;
  newest.limit = 2;
  EXPECT_EQ(types(newest), (std::vector<std::string>{"runaway", "process.exec"}));
  EventFilter after;
  after.after_id = read_events(*db_)->at(2).id;
  EXPECT_EQ(types(after), std::vector<std::string>{"process.exec"});
}

TEST_F(AuditTest, MigrationHashesOlderEvents) {
  db_.reset();
  fs::remove(path_);
  fs::remove(audit_head_path(path_));
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  // The events table as schema version 4 had it, with two events.
  ASSERT_EQ(sqlite3_exec(raw,
                         "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, project "
                         "TEXT NOT NULL DEFAULT '', run TEXT NOT NULL DEFAULT '', source TEXT NOT NULL, type TEXT NOT "
                         "NULL, data TEXT NOT NULL);"
                         "INSERT INTO events (time, project, run, source, type, data) VALUES (1, 'a', '', 'host', "
                         "'agent.create', '{}'), (2, 'a', '', 'host', 'env.set', '{}');",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  // Replays migrations 2 to 5 on top: the tables they change must exist.
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         "CREATE TABLE projects (name TEXT PRIMARY KEY, template TEXT NOT NULL, volume_path TEXT NOT "
                         "NULL, volume_bytes INTEGER NOT NULL, created_at INTEGER NOT NULL);"
                         "CREATE TABLE runs (id TEXT PRIMARY KEY);"
                         "PRAGMA user_version = 1;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  auto db = Database::open(path_);
  ASSERT_TRUE(db) << db.error().message;
  db_ = std::move(*db);
  auto events = read_events(*db_);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1].prev_hash, (*events)[0].hash);
  EXPECT_FALSE((*events)[0].hash.empty());
  EXPECT_TRUE(verify().ok);
  char* message = nullptr;
  EXPECT_NE(sqlite3_exec(db_->handle(), "UPDATE events SET type = 'x'", nullptr, nullptr, &message), SQLITE_OK);
  sqlite3_free(message);
}

}  // namespace
}  // namespace zwrm::state
