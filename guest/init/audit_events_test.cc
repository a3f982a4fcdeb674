#include "guest/init/audit_events.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

namespace zwrm::guest {
namespace {

using protocol::GuestEvent;

TEST(EventRateLimit, AdmitsBurstThenRate) {
  EventRateLimit limit(200, 100);
  int admitted = 0;
  for (int i = 0; i < 1000; ++i) admitted += limit.admit(1000) ? 1 : 0;
  EXPECT_EQ(admitted, 100) << "the bucket starts full with the burst";

  // 200 per second is one token every 5 ms.
  EXPECT_FALSE(limit.admit(1004));
  EXPECT_TRUE(limit.admit(1005));
  EXPECT_FALSE(limit.admit(1005));

  admitted = 0;
  for (std::int64_t now = 1006; now <= 2005; ++now) {
    while (limit.admit(now)) ++admitted;
  }
  EXPECT_EQ(admitted, 200) << "one second later";
}

TEST(EventRateLimit, RefillStopsAtBurst) {
  EventRateLimit limit(200, 100);
  while (limit.admit(0)) {
  }
  int admitted = 0;
  while (limit.admit(3'600'000)) ++admitted;
  EXPECT_EQ(admitted, 100);
}

TEST(EventRateLimit, ClockGoingBackAddsNothing) {
  EventRateLimit limit(200, 1);
  EXPECT_TRUE(limit.admit(5000));
  EXPECT_FALSE(limit.admit(1000));
  EXPECT_FALSE(limit.admit(5000));
  EXPECT_TRUE(limit.admit(5005));
}

GuestEvent file_event(std::size_t path_size) {
  GuestEvent event;
  event.kind = GuestEvent::Kind::kFileModify;
  event.pid = 7;
  event.path = std::string(path_size, 'p');
  return event;
}

TEST(EncodeBatches, SplitsByCount) {
  std::vector<GuestEvent> events(protocol::kMaxGuestEventsPerBatch * 2 + 1, file_event(10));
  const std::vector<protocol::Bytes> payloads = encode_batches(std::move(events), 5);
  ASSERT_EQ(payloads.size(), 3u);
  std::vector<std::size_t> counts;
  for (const protocol::Bytes& payload : payloads) {
    auto batch = protocol::decode_guest_events(payload);
    ASSERT_TRUE(batch) << batch.error().message;
    counts.push_back(batch->events.size());
    EXPECT_EQ(batch->dropped, counts.size() == 1 ? 5u : 0u) << "only the first batch carries the drop count";
  }
  EXPECT_EQ(counts, (std::vector<std::size_t>{protocol::kMaxGuestEventsPerBatch, protocol::kMaxGuestEventsPerBatch, 1}));
}

TEST(EncodeBatches, SplitsBySize) {
  GuestEvent exec;
  exec.kind = GuestEvent::Kind::kExec;
  exec.pid = 9;
  exec.argv.assign(protocol::kMaxEventArgvBytes / protocol::kMaxEventArgBytes, std::string(protocol::kMaxEventArgBytes, 'a'));
  std::vector<GuestEvent> events(40, exec);
  const std::vector<protocol::Bytes> payloads = encode_batches(std::move(events), 0);
  ASSERT_GT(payloads.size(), 1u) << "40 events of over 4 KiB do not fit one frame";
  std::size_t total = 0;
  for (const protocol::Bytes& payload : payloads) {
    EXPECT_LE(payload.size(), protocol::kMaxPayload);
    auto batch = protocol::decode_guest_events(payload);
    ASSERT_TRUE(batch) << batch.error().message;
    total += batch->events.size();
  }
  EXPECT_EQ(total, 40u);
  // Each frame but the last is full: the next event would not have fit.
  EXPECT_GT(payloads[0].size() + protocol::encoded_size(exec), protocol::kMaxPayload);
}

TEST(EncodeBatches, DropCountAlone) {
  const std::vector<protocol::Bytes> payloads = encode_batches({}, 12);
  ASSERT_EQ(payloads.size(), 1u);
  auto batch = protocol::decode_guest_events(payloads[0]);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->dropped, 12u);
  EXPECT_TRUE(batch->events.empty());
  EXPECT_TRUE(encode_batches({}, 0).empty());
}

TEST(ExecEvent, FromArgvAndStatus) {
  ProcessDetails details;
  details.argv = Argv{{"ls", "/"}, false};
  details.status = ProcStatus{"ls", 50, 40, 1000};
  const GuestEvent exec = make_exec_event(50, 30, details);
  EXPECT_EQ(exec.kind, GuestEvent::Kind::kExec);
  EXPECT_EQ(exec.pid, 50u);
  EXPECT_EQ(exec.ppid, 40u) << "the parent now, from /proc, over the one at fork";
  EXPECT_EQ(exec.uid, 1000u);
  EXPECT_EQ(exec.comm, "ls");
  EXPECT_EQ(exec.argv, (std::vector<std::string>{"ls", "/"}));
  EXPECT_EQ(exec.flags, 0);
  EXPECT_TRUE(protocol::decode_guest_events(protocol::encode(protocol::GuestEvents{0, {exec}})));
}

TEST(ExecEvent, TruncatedArgvIsFlagged) {
  ProcessDetails details;
  details.argv = Argv{{"python3", "-c", "x"}, true};
  details.status = ProcStatus{"python3", 50, 40, 0};
  EXPECT_EQ(make_exec_event(50, 40, details).flags, GuestEvent::kArgvTruncated);
}

TEST(ExecEvent, ProcessGoneKeepsForkParent) {
  const GuestEvent exec = make_exec_event(50, 30, ProcessDetails{});
  EXPECT_EQ(exec.pid, 50u);
  EXPECT_EQ(exec.ppid, 30u);
  EXPECT_TRUE(exec.argv.empty());
  EXPECT_TRUE(exec.comm.empty());
  EXPECT_EQ(exec.flags, GuestEvent::kArgvUnreadable | GuestEvent::kStatusUnreadable);
  EXPECT_TRUE(protocol::decode_guest_events(protocol::encode(protocol::GuestEvents{0, {exec}})));
}

TEST(ExecEvent, ZombieHasStatusButNoArgv) {
  ProcessDetails details;
  details.status = ProcStatus{"true", 50, 40, 1000};
  const GuestEvent exec = make_exec_event(50, 40, details);
  EXPECT_EQ(exec.comm, "true");
  EXPECT_EQ(exec.uid, 1000u);
  EXPECT_EQ(exec.flags, GuestEvent::kArgvUnreadable);
}

TEST(ExitStatus, ExitCodeAndSignal) {
  GuestEvent exited;
  set_exit_status(exited, 3 << 8);
  EXPECT_EQ(exited.status, 3u);
  EXPECT_EQ(exited.flags & GuestEvent::kSignaled, 0);

  GuestEvent killed;
  set_exit_status(killed, 9);
  EXPECT_EQ(killed.status, 9u);
  EXPECT_NE(killed.flags & GuestEvent::kSignaled, 0);

  GuestEvent dumped;
  set_exit_status(dumped, 0x80 | 11);  // SIGSEGV with a core dump
  EXPECT_EQ(dumped.status, 11u);
  EXPECT_NE(dumped.flags & GuestEvent::kSignaled, 0);
}

// The whole collector against the real kernel, with a tmpfs standing in for
// the volume. Needs root (a private mount namespace, the process events
// connector, open_by_handle_at), so it is skipped elsewhere. Other activity
// on the machine shares the rate limit, so only this test's processes are
// looked at.
TEST(AuditEvents, ReportsExecsAndFileChanges) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  char pattern[] = "/tmp/audit-events-test.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string workspace = pattern;
  // The mount namespace stays private to this test process; it must be
  // created before any thread starts.
  if (::unshare(CLONE_NEWNS) != 0) GTEST_SKIP() << "cannot create a mount namespace: " << std::strerror(errno);
  ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << std::strerror(errno);
  ASSERT_EQ(::mount("tmpfs", workspace.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);

  std::unique_ptr<AuditEvents> events = AuditEvents::start(workspace.c_str());
  ASSERT_NE(events, nullptr);
  // sleep lives long enough for its argv to be read even on a busy machine
  // with more CPUs than the guest. The integration tests measure the race
  // with short-lived processes.
  const std::string script = "sleep 0.2; echo a > " + workspace + "/f; mv " + workspace + "/f " + workspace +
                             "/g; rm " + workspace + "/g; mkdir " + workspace + "/d";
  const pid_t shell = ::fork();
  if (shell == 0) {
    ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(shell, 0);
  int status = 0;
  ::waitpid(shell, &status, 0);
  EXPECT_EQ(status, 0);

  std::vector<GuestEvent> seen;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  auto has = [&](GuestEvent::Kind kind, const std::string& path) {
    for (const GuestEvent& event : seen) {
      if (event.kind == kind && event.path == path) return true;
    }
    return false;
  };
  while (!has(GuestEvent::Kind::kFileCreate, workspace + "/d") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (const protocol::Bytes& payload : events->take_batches()) {
      auto batch = protocol::decode_guest_events(payload);
      ASSERT_TRUE(batch) << batch.error().message;
      seen.insert(seen.end(), batch->events.begin(), batch->events.end());
    }
  }
  events.reset();
  ::umount(workspace.c_str());
  ::rmdir(workspace.c_str());

  const GuestEvent* shell_exec = nullptr;
  const GuestEvent* sleep_exec = nullptr;
  const GuestEvent* shell_exit = nullptr;
  for (const GuestEvent& event : seen) {
    if (event.kind == GuestEvent::Kind::kExec && event.pid == static_cast<std::uint32_t>(shell)) shell_exec = &event;
    if (event.kind == GuestEvent::Kind::kExec && event.ppid == static_cast<std::uint32_t>(shell) &&
        !event.argv.empty() && event.argv[0] == "sleep") {
      sleep_exec = &event;
    }
    if (event.kind == GuestEvent::Kind::kExit && event.pid == static_cast<std::uint32_t>(shell)) shell_exit = &event;
  }
  ASSERT_NE(shell_exec, nullptr);
  EXPECT_EQ(shell_exec->argv, (std::vector<std::string>{"sh", "-c", script}));
  EXPECT_EQ(shell_exec->ppid, static_cast<std::uint32_t>(::getpid()));
  EXPECT_EQ(shell_exec->uid, 0u);
  EXPECT_EQ(shell_exec->comm, "sh");
  ASSERT_NE(sleep_exec, nullptr);
  EXPECT_EQ(sleep_exec->argv, (std::vector<std::string>{"sleep", "0.2"}));
  EXPECT_EQ(sleep_exec->comm, "sleep");
  ASSERT_NE(shell_exit, nullptr);
  EXPECT_EQ(shell_exit->status, 0u);
  EXPECT_EQ(shell_exit->comm, "sh");

  EXPECT_TRUE(has(GuestEvent::Kind::kFileCreate, workspace + "/f"));
  EXPECT_TRUE(has(GuestEvent::Kind::kFileModify, workspace + "/f"));
  EXPECT_TRUE(has(GuestEvent::Kind::kFileDelete, workspace + "/g"));
  EXPECT_TRUE(has(GuestEvent::Kind::kFileCreate, workspace + "/d"));
  bool renamed = false;
  for (const GuestEvent& event : seen) {
    renamed = renamed || (event.kind == GuestEvent::Kind::kFileRename && event.path == workspace + "/f" &&
                          event.new_path == workspace + "/g");
  }
  EXPECT_TRUE(renamed);
}

}  // namespace
}  // namespace zwrm::guest
