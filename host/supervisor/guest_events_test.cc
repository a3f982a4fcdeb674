#include "host/supervisor/guest_events.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "state/audit.h"

namespace zwrm::supervisor {
namespace {

using protocol::GuestEvent;
using Clock = GuestEventLog::Clock;

GuestEvent exec_event(std::uint32_t pid, std::vector<std::string> argv) {
  GuestEvent event;
  event.kind = GuestEvent::Kind::kExec;
  event.time_ms = 1700000000000;
  event.pid = pid;
  event.ppid = 1;
  event.uid = 1000;
  event.comm = argv.empty() ? "" : argv[0].substr(0, protocol::kMaxEventCommBytes);
  event.argv = std::move(argv);
  return event;
}

GuestEvent file_event(GuestEvent::Kind kind, std::string path) {
  GuestEvent event;
  event.kind = kind;
  event.pid = 12;
  event.path = std::move(path);
  return event;
}

TEST(ValidUtf8, KeepsValidText) {
  EXPECT_EQ(valid_utf8("plain"), "plain");
  EXPECT_EQ(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(valid_utf8(std::string("a\0b", 3)), std::string("a\0b", 3));
}

TEST(ValidUtf8, ReplacesEachInvalidByte) {
  EXPECT_EQ(valid_utf8("bad\xffname"), "bad\xef\xbf\xbdname");
  EXPECT_EQ(valid_utf8("\xc3"), "\xef\xbf\xbd") << "a sequence cut short";
  EXPECT_EQ(valid_utf8("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd") << "an overlong '/'";
  EXPECT_EQ(valid_utf8("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") << "a UTF-16 surrogate";
  EXPECT_EQ(valid_utf8("\xf4\x90\x80\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") << "above U+10FFFF";
}

TEST(GuestRecord, ExecData) {
  const GuestRecord record = make_guest_record(exec_event(42, {"python3", "-c", "pass"}));
  EXPECT_EQ(record.type, "process.exec");
  EXPECT_EQ(record.data["pid"], 42);
  EXPECT_EQ(record.data["ppid"], 1);
  EXPECT_EQ(record.data["uid"], 1000);
  EXPECT_EQ(record.data["comm"], "python3");
  EXPECT_EQ(record.data["argv"], nlohmann::json({"python3", "-c", "pass"}));
  EXPECT_EQ(record.data["argv_truncated"], false);
  EXPECT_EQ(record.data["argv_unreadable"], false);
  EXPECT_EQ(record.data["guest_time_ms"], 1700000000000);
}

TEST(GuestRecord, ExecOfVanishedProcess) {
  GuestEvent event = exec_event(42, {});
  event.comm.clear();
  event.ppid = 0;
  event.flags = GuestEvent::kArgvUnreadable | GuestEvent::kStatusUnreadable;
  const GuestRecord record = make_guest_record(event);
  EXPECT_EQ(record.data["argv_unreadable"], true);
  EXPECT_EQ(record.data["argv"], nlohmann::json::array());
  EXPECT_TRUE(record.data["uid"].is_null()) << "uid 0 would claim root";
  EXPECT_TRUE(record.data["ppid"].is_null());
  EXPECT_TRUE(record.data["comm"].is_null());
}

TEST(GuestRecord, ExitData) {
  GuestEvent exited;
  exited.kind = GuestEvent::Kind::kExit;
  exited.pid = 42;
  exited.ppid = 7;
  exited.comm = "ls";
  exited.status = 2;
  GuestRecord record = make_guest_record(exited);
  EXPECT_EQ(record.type, "process.exit");
  EXPECT_EQ(record.data["exit_status"], 2);
  EXPECT_TRUE(record.data["signal"].is_null());
  EXPECT_EQ(record.data["comm"], "ls");

  exited.flags = GuestEvent::kSignaled;
  exited.status = 9;
  record = make_guest_record(exited);
  EXPECT_EQ(record.data["exit_status"], 137);
  EXPECT_EQ(record.data["signal"], 9);
}

TEST(GuestRecord, FileData) {
  GuestEvent rename = file_event(GuestEvent::Kind::kFileRename, "/workspace/a");
  rename.new_path = "/workspace/b\xff";
  rename.flags = GuestEvent::kDirectory;
  const GuestRecord record = make_guest_record(rename);
  EXPECT_EQ(record.type, "file.rename");
  EXPECT_EQ(record.data["path"], "/workspace/a");
  EXPECT_EQ(record.data["new_path"], "/workspace/b\xef\xbf\xbd");
  EXPECT_EQ(record.data["directory"], true);
  EXPECT_EQ(record.data["path_truncated"], false);
  EXPECT_EQ(record.data["path_unresolved"], false);
  EXPECT_EQ(record.data["pid"], 12);

  EXPECT_EQ(make_guest_record(file_event(GuestEvent::Kind::kFileCreate, "/x")).type, "file.create");
  EXPECT_EQ(make_guest_record(file_event(GuestEvent::Kind::kFileModify, "/x")).type, "file.modify");
  EXPECT_EQ(make_guest_record(file_event(GuestEvent::Kind::kFileDelete, "/x")).type, "file.delete");
  EXPECT_FALSE(make_guest_record(file_event(GuestEvent::Kind::kFileDelete, "/x")).data.contains("new_path"));
}

TEST(GuestRecord, OversizedExecArgvIsCut) {
  // Control characters take six bytes each in JSON.
  std::vector<std::string> argv(4, std::string(protocol::kMaxEventArgBytes, '\x01'));
  GuestRecord record = make_guest_record(exec_event(42, argv));
  ASSERT_GT(record.data.dump().size(), 16u * 1024);
  ASSERT_TRUE(fit_guest_record(record, 16 * 1024));
  EXPECT_LE(record.data.dump().size(), 16u * 1024);
  EXPECT_EQ(record.data["argv_truncated"], true);
  EXPECT_EQ(record.data["argv"].size(), 4u) << "every argument is kept, each shorter";
}

TEST(GuestRecord, CutKeepsWholeCharacters) {
  std::vector<std::string> argv(1, "");
  for (int i = 0; i < 600; ++i) argv[0] += "\xe2\x82\xac";  // 1800 bytes of euro signs
  GuestRecord record = make_guest_record(exec_event(42, argv));
  ASSERT_TRUE(fit_guest_record(record, 600));
  const std::string cut = record.data["argv"][0].get<std::string>();
  EXPECT_EQ(cut.size() % 3, 0u);
  EXPECT_EQ(valid_utf8(cut), cut);
}

TEST(GuestRecord, OversizedFileEventDoesNotFit) {
  GuestRecord record = make_guest_record(file_event(GuestEvent::Kind::kFileCreate, std::string(900, 'p')));
  EXPECT_FALSE(fit_guest_record(record, 512));
  GuestRecord small = make_guest_record(file_event(GuestEvent::Kind::kFileCreate, "/workspace/a"));
  EXPECT_TRUE(fit_guest_record(small, 512));
}

// A GuestEventLog over a fresh database in a temporary directory.
class GuestEventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/guest-events-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    directory_ = pattern;
    auto db = state::Database::open(directory_ + "/zwrm.db");
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(directory_);
  }

  std::vector<state::Event> events_of_type(const std::string& type) {
    auto events = state::read_events(*db_, "run1");
    EXPECT_TRUE(events) << events.error().message;
    std::vector<state::Event> matching;
    for (state::Event& event : *events) {
      if (event.type == type) matching.push_back(std::move(event));
    }
    return matching;
  }

  std::string directory_;
  std::unique_ptr<state::Database> db_;
  Clock::time_point start_ = Clock::now();
};

TEST_F(GuestEventLogTest, RecordsBatchAsGuestEvents) {
  GuestEventLog log(*db_, "agent1", "run1");
  const protocol::GuestEvents batch{0, {exec_event(42, {"ls", "/"}), file_event(GuestEvent::Kind::kFileCreate, "/workspace/a")}};
  ASSERT_TRUE(log.on_batch(protocol::encode(batch), start_));
  EXPECT_EQ(log.recorded(), 2u);
  EXPECT_EQ(log.dropped(), 0u);

  const auto execs = events_of_type("process.exec");
  ASSERT_EQ(execs.size(), 1u);
  EXPECT_EQ(execs[0].source, state::EventSource::kGuest);
  EXPECT_EQ(execs[0].project, "agent1");
  EXPECT_EQ(execs[0].actor, "guest");
  EXPECT_EQ(execs[0].data["argv"], nlohmann::json({"ls", "/"}));
  const auto creates = events_of_type("file.create");
  ASSERT_EQ(creates.size(), 1u);
  EXPECT_EQ(creates[0].data["path"], "/workspace/a");
  EXPECT_TRUE(events_of_type("guest.events_dropped").empty());
}

TEST_F(GuestEventLogTest, MalformedBatchIsAnError) {
  GuestEventLog log(*db_, "agent1", "run1");
  protocol::Bytes payload = protocol::encode(protocol::GuestEvents{0, {exec_event(42, {"ls"})}});
  payload.pop_back();
  auto result = log.on_batch(payload, start_);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("malformed guest-events"), std::string::npos) << result.error().message;
  EXPECT_EQ(log.recorded(), 0u);
}

TEST_F(GuestEventLogTest, RateLimitDropsAndReportsEveryTenSeconds) {
  GuestEventLimits limits;
  limits.rate = 10;
  limits.burst = 10;
  GuestEventLog log(*db_, "agent1", "run1", limits);
  const std::vector<GuestEvent> events(64, file_event(GuestEvent::Kind::kFileModify, "/workspace/log"));

  ASSERT_TRUE(log.on_batch(protocol::encode(protocol::GuestEvents{5, events}), start_));
  EXPECT_EQ(log.recorded(), 10u);
  EXPECT_EQ(log.dropped(), 5u + 54u) << "the guest's count plus the host's";
  auto reports = events_of_type("guest.events_dropped");
  ASSERT_EQ(reports.size(), 1u) << "the first drop is reported at once";
  EXPECT_EQ(reports[0].source, state::EventSource::kHost);
  EXPECT_EQ(reports[0].data["dropped"], 59);
  EXPECT_EQ(reports[0].data["guest_dropped"], 5);
  EXPECT_EQ(reports[0].data["host_dropped"], 54);

  // One second later: 10 more tokens, the rest dropped but not yet reported.
  ASSERT_TRUE(log.on_batch(protocol::encode(protocol::GuestEvents{0, events}), start_ + std::chrono::seconds(1)));
  EXPECT_EQ(log.recorded(), 20u);
  EXPECT_EQ(events_of_type("guest.events_dropped").size(), 1u);
  ASSERT_TRUE(log.next_wakeup().has_value());
  EXPECT_EQ(*log.next_wakeup(), start_ + kDropReportInterval);

  log.handle_timers(start_ + std::chrono::seconds(9));
  EXPECT_EQ(events_of_type("guest.events_dropped").size(), 1u);
  log.handle_timers(start_ + kDropReportInterval);
  reports = events_of_type("guest.events_dropped");
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[1].data["dropped"], 54);
  EXPECT_EQ(reports[1].data["total_dropped"], 113);
  EXPECT_FALSE(log.next_wakeup().has_value()) << "nothing left to report";
}

TEST_F(GuestEventLogTest, BatchRateDropsWholeBatches) {
  GuestEventLimits limits;
  limits.batch_rate = 1;
  limits.batch_burst = 2;
  GuestEventLog log(*db_, "agent1", "run1", limits);
  const protocol::Bytes payload = protocol::encode(protocol::GuestEvents{0, {exec_event(42, {"true"})}});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(log.on_batch(payload, start_));
  EXPECT_EQ(log.recorded(), 2u);
  EXPECT_EQ(log.dropped(), 1u);
  EXPECT_EQ(events_of_type("process.exec").size(), 2u);
}

TEST_F(GuestEventLogTest, MaxEventsPerRun) {
  GuestEventLimits limits;
  limits.max_events = 3;
  GuestEventLog log(*db_, "agent1", "run1", limits);
  const std::vector<GuestEvent> events(5, exec_event(42, {"true"}));
  ASSERT_TRUE(log.on_batch(protocol::encode(protocol::GuestEvents{0, events}), start_));
  ASSERT_TRUE(log.on_batch(protocol::encode(protocol::GuestEvents{0, events}), start_ + std::chrono::seconds(60)));
  EXPECT_EQ(log.recorded(), 3u);
  EXPECT_EQ(log.dropped(), 7u);
  EXPECT_EQ(events_of_type("process.exec").size(), 3u);
}

TEST_F(GuestEventLogTest, DropCountAloneIsReported) {
  GuestEventLog log(*db_, "agent1", "run1");
  ASSERT_TRUE(log.on_batch(protocol::encode(protocol::GuestEvents{17, {}}), start_));
  EXPECT_EQ(log.dropped(), 17u);
  const auto reports = events_of_type("guest.events_dropped");
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].data["guest_dropped"], 17);
}

}  // namespace
}  // namespace zwrm::supervisor
