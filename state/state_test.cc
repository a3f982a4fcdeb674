#include <gtest/gtest.h>

#include <unistd.h>

#include "state/audit.h"
#include "state/database.h"
#include "state/names.h"
#include "state/projects.h"
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

TEST_F(StateTest, ReopenKeepsSchemaAndRows) {
  ASSERT_TRUE(insert_project(*db_, {"p1", "minimal", "/v/p1.ext4", 1 << 30, 0}));
  db_.reset();
  auto reopened = Database::open(dir_ + "/zwrm.db");
  ASSERT_TRUE(reopened);
  auto project = find_project(**reopened, "p1");
  ASSERT_TRUE(project);
  ASSERT_TRUE(project->has_value());
  EXPECT_EQ((*project)->volume_bytes, 1u << 30);
}

TEST_F(StateTest, InsertProjectTwiceKeepsFirst) {
  auto first = insert_project(*db_, {"p1", "minimal", "/v/p1.ext4", 1, 0});
  auto second = insert_project(*db_, {"p1", "debian", "/v/p1.ext4", 2, 0});
  ASSERT_TRUE(first);
  ASSERT_TRUE(second);
  EXPECT_TRUE(*first);
  EXPECT_FALSE(*second);
  EXPECT_EQ((*find_project(*db_, "p1"))->template_name, "minimal");
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
