#include "protocol/message.h"

#include <gtest/gtest.h>

namespace zwrm::protocol {
namespace {

TEST(Message, ExecRequestRoundTrip) {
  ExecRequest request;
  request.argv = {"sh", "-c", "echo 'a b'"};
  request.env = {"PATH=/bin", "EMPTY="};
  request.secret_env = {"TOKEN=s3cret"};
  request.cwd = "/workspace";
  request.uid = 1000;
  request.gid = 1000;
  request.tty = true;
  request.rows = 40;
  request.cols = 120;
  auto decoded = decode_exec(encode(request));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->argv, request.argv);
  EXPECT_EQ(decoded->env, request.env);
  EXPECT_EQ(decoded->secret_env, request.secret_env);
  EXPECT_EQ(decoded->cwd, "/workspace");
  EXPECT_EQ(decoded->uid, 1000u);
  EXPECT_TRUE(decoded->tty);
  EXPECT_EQ(decoded->rows, 40);
  EXPECT_EQ(decoded->cols, 120);
}

TEST(Message, ExecRequestWithoutArgvIsMalformed) {
  ExecRequest request;
  request.cwd = "/";
  EXPECT_FALSE(decode_exec(encode(request)));
}

TEST(Message, TruncatedPayloadIsMalformed) {
  ExecRequest request;
  request.argv = {"true"};
  Bytes bytes = encode(request);
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    EXPECT_FALSE(decode_exec({bytes.data(), size})) << "prefix of " << size << " bytes";
  }
}

TEST(Message, TrailingBytesAreMalformed) {
  Bytes bytes = encode(Started{42});
  bytes.push_back(0);
  EXPECT_FALSE(decode_started(bytes));
}

TEST(Message, HugeStringCountIsRejectedBeforeAllocating) {
  Bytes bytes = {0xff, 0xff, 0xff, 0xff};  // argv count of 4 billion, no strings
  auto decoded = decode_exec(bytes);
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error().message.find("malformed exec"), std::string::npos);
}

TEST(Message, StringLengthBeyondPayloadIsMalformed) {
  Bytes bytes = {0x10, 0x00, 0x00, 0x00, 'a'};  // says 16 bytes, has one
  EXPECT_FALSE(decode_fatal(bytes));
}

TEST(Message, ExitStatusRoundTripAndShellStatus) {
  ExitStatus status{ExitStatus::Kind::kSignaled, 9, ""};
  auto decoded = decode_exit(encode(status));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->shell_status(), 137);
  EXPECT_EQ((ExitStatus{ExitStatus::Kind::kExited, 3, ""}.shell_status()), 3);
  EXPECT_EQ((ExitStatus{ExitStatus::Kind::kFailedToStart, 127, "not found"}.shell_status()), 127);
}

TEST(Message, ExitStatusOutOfRangeIsMalformed) {
  EXPECT_FALSE(decode_exit(encode(ExitStatus{ExitStatus::Kind::kSignaled, 0, ""})));
  EXPECT_FALSE(decode_exit(encode(ExitStatus{ExitStatus::Kind::kExited, 256, ""})));
  EXPECT_FALSE(decode_exit(encode(ExitStatus{ExitStatus::Kind::kExited, -1, ""})));
  Bytes bad_kind = encode(ExitStatus{});
  bad_kind[0] = 3;
  EXPECT_FALSE(decode_exit(bad_kind));
}

TEST(Message, CreditAndEofNeedDataKind) {
  EXPECT_TRUE(decode_credit(encode(Credit{FrameType::kStdout, 10})));
  EXPECT_FALSE(decode_credit(encode(Credit{FrameType::kExec, 10})));
  EXPECT_TRUE(decode_eof(encode(Eof{FrameType::kStdin})));
  EXPECT_FALSE(decode_eof(encode(Eof{FrameType::kHello})));
}

TEST(Message, TcpFramesRoundTrip) {
  auto connect = decode_tcp_connect(encode(TcpConnect{8080}));
  ASSERT_TRUE(connect);
  EXPECT_EQ(connect->port, 8080);
  EXPECT_FALSE(decode_tcp_connect(encode(TcpConnect{0})));
  auto close = decode_tcp_close(encode(TcpClose{"connection refused"}));
  ASSERT_TRUE(close);
  EXPECT_EQ(close->reason, "connection refused");
  EXPECT_TRUE(decode_eof(encode(Eof{FrameType::kTcpData})));
}

TEST(Message, OverlongCloseReasonIsMalformed) {
  Bytes payload = {0x01, 0x04, 0x00, 0x00};  // a 1025-byte string
  payload.resize(payload.size() + 1025, 'x');
  EXPECT_FALSE(decode_tcp_close(payload));
}

TEST(Message, PongRoundTrip) {
  auto decoded = decode_pong(encode(Pong{123456}));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->cpu_busy_ms, 123456u);
  EXPECT_FALSE(decode_pong(Bytes{1, 2, 3}));
}

TEST(Message, SignalNumberRange) {
  EXPECT_TRUE(decode_signal(encode(Signal{15})));
  EXPECT_FALSE(decode_signal(encode(Signal{0})));
  EXPECT_FALSE(decode_signal(encode(Signal{65})));
}

TEST(Message, SetupAndHelloRoundTrip) {
  protocol::Setup setup{123456789, Bytes(32, 7), "p1"};
  auto decoded_setup = decode_setup(encode(setup));
  ASSERT_TRUE(decoded_setup);
  EXPECT_EQ(decoded_setup->realtime_ns, 123456789u);
  EXPECT_EQ(decoded_setup->entropy.size(), 32u);
  EXPECT_EQ(decoded_setup->hostname, "p1");
  auto decoded_hello = decode_hello(encode(Hello{kProtocolVersion, "0.1.0"}));
  ASSERT_TRUE(decoded_hello);
  EXPECT_EQ(decoded_hello->init_version, "0.1.0");
}

GuestEvent exec_event() {
  GuestEvent event;
  event.kind = GuestEvent::Kind::kExec;
  event.time_ms = 1700000000123;
  event.pid = 42;
  event.ppid = 7;
  event.uid = 1000;
  event.comm = "python3";
  event.argv = {"python3", "-c", "pass"};
  return event;
}

GuestEvent file_event(GuestEvent::Kind kind, std::string path) {
  GuestEvent event;
  event.kind = kind;
  event.pid = 42;
  event.path = std::move(path);
  return event;
}

// Encodes one event alone in a batch and decodes it again.
Result<GuestEvents> round_trip(const GuestEvent& event) { return decode_guest_events(encode(GuestEvents{0, {event}})); }

TEST(Message, GuestEventsRoundTrip) {
  GuestEvent exit;
  exit.kind = GuestEvent::Kind::kExit;
  exit.flags = GuestEvent::kSignaled;
  exit.pid = 42;
  exit.ppid = 7;
  exit.comm = "python3";
  exit.status = 9;
  GuestEvent rename = file_event(GuestEvent::Kind::kFileRename, "/workspace/a");
  rename.new_path = "/workspace/b";
  rename.flags = GuestEvent::kDirectory;
  const GuestEvents batch{5, {exec_event(), exit, file_event(GuestEvent::Kind::kFileModify, "/workspace/x"), rename}};

  const Bytes bytes = encode(batch);
  std::size_t expected_size = kGuestEventsHeaderSize;
  for (const GuestEvent& event : batch.events) expected_size += encoded_size(event);
  EXPECT_EQ(bytes.size(), expected_size);

  auto decoded = decode_guest_events(bytes);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->dropped, 5u);
  ASSERT_EQ(decoded->events.size(), 4u);
  const GuestEvent& exec = decoded->events[0];
  EXPECT_EQ(exec.kind, GuestEvent::Kind::kExec);
  EXPECT_EQ(exec.time_ms, 1700000000123u);
  EXPECT_EQ(exec.pid, 42u);
  EXPECT_EQ(exec.ppid, 7u);
  EXPECT_EQ(exec.uid, 1000u);
  EXPECT_EQ(exec.comm, "python3");
  EXPECT_EQ(exec.argv, (std::vector<std::string>{"python3", "-c", "pass"}));
  EXPECT_EQ(decoded->events[1].kind, GuestEvent::Kind::kExit);
  EXPECT_EQ(decoded->events[1].status, 9u);
  EXPECT_EQ(decoded->events[1].flags, GuestEvent::kSignaled);
  EXPECT_EQ(decoded->events[2].path, "/workspace/x");
  EXPECT_EQ(decoded->events[3].path, "/workspace/a");
  EXPECT_EQ(decoded->events[3].new_path, "/workspace/b");
  EXPECT_EQ(decoded->events[3].flags, GuestEvent::kDirectory);
}

TEST(Message, GuestEventsWithOnlyDropCount) {
  auto decoded = decode_guest_events(encode(GuestEvents{3, {}}));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->dropped, 3u);
  EXPECT_TRUE(decoded->events.empty());
  EXPECT_FALSE(decode_guest_events(encode(GuestEvents{0, {}}))) << "an empty batch reports nothing";
}

TEST(Message, GuestEventsTruncatedOrPaddedAreMalformed) {
  GuestEvent rename = file_event(GuestEvent::Kind::kFileRename, "/workspace/a");
  rename.new_path = "/workspace/b";
  const Bytes bytes = encode(GuestEvents{1, {exec_event(), rename}});
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    EXPECT_FALSE(decode_guest_events({bytes.data(), size})) << "prefix of " << size << " bytes";
  }
  Bytes padded = bytes;
  padded.push_back(0);
  EXPECT_FALSE(decode_guest_events(padded));
}

TEST(Message, GuestEventsCountOverLimitIsMalformed) {
  GuestEvents batch;
  batch.events.assign(kMaxGuestEventsPerBatch, file_event(GuestEvent::Kind::kFileCreate, "/workspace/f"));
  EXPECT_TRUE(decode_guest_events(encode(batch)));
  batch.events.push_back(batch.events.front());
  EXPECT_FALSE(decode_guest_events(encode(batch)));

  Bytes huge_count = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
  EXPECT_FALSE(decode_guest_events(huge_count));
}

TEST(Message, GuestEventUnknownKindIsMalformed) {
  Bytes bytes = encode(GuestEvents{0, {file_event(GuestEvent::Kind::kFileCreate, "/workspace/f")}});
  bytes[kGuestEventsHeaderSize] = 0;
  EXPECT_FALSE(decode_guest_events(bytes));
  bytes[kGuestEventsHeaderSize] = 7;
  EXPECT_FALSE(decode_guest_events(bytes));
}

TEST(Message, GuestEventFlagsOfAnotherKindAreMalformed) {
  GuestEvent exec = exec_event();
  exec.flags = GuestEvent::kDirectory;
  EXPECT_FALSE(round_trip(exec));
  GuestEvent file = file_event(GuestEvent::Kind::kFileDelete, "/workspace/f");
  file.flags = GuestEvent::kArgvTruncated;
  EXPECT_FALSE(round_trip(file));
  file.flags = 0x80;
  EXPECT_FALSE(round_trip(file));
}

TEST(Message, GuestExecArgvLimits) {
  GuestEvent exec = exec_event();
  exec.argv.assign(kMaxEventArgs, "a");
  EXPECT_TRUE(round_trip(exec));
  exec.argv.push_back("a");
  EXPECT_FALSE(round_trip(exec)) << "one argument too many";

  exec.argv = {std::string(kMaxEventArgBytes, 'a')};
  EXPECT_TRUE(round_trip(exec));
  exec.argv = {std::string(kMaxEventArgBytes + 1, 'a')};
  EXPECT_FALSE(round_trip(exec)) << "one argument too long";

  exec.argv.assign(kMaxEventArgvBytes / kMaxEventArgBytes, std::string(kMaxEventArgBytes, 'a'));
  EXPECT_TRUE(round_trip(exec));
  exec.argv.push_back("a");
  EXPECT_FALSE(round_trip(exec)) << "all arguments together too long";
}

TEST(Message, GuestExecUnreadableArgvIsEmpty) {
  GuestEvent exec = exec_event();
  exec.flags = GuestEvent::kArgvUnreadable;
  EXPECT_FALSE(round_trip(exec)) << "unreadable, yet argv is given";
  exec.argv.clear();
  EXPECT_TRUE(round_trip(exec));
  exec.flags = 0;
  EXPECT_FALSE(round_trip(exec)) << "argv is empty without the unreadable flag";
  exec.flags = GuestEvent::kArgvUnreadable | GuestEvent::kArgvTruncated;
  EXPECT_FALSE(round_trip(exec)) << "an unreadable argv cannot be truncated";
}

TEST(Message, GuestProcessEventNeedsPidAndShortComm) {
  GuestEvent exec = exec_event();
  exec.pid = 0;
  EXPECT_FALSE(round_trip(exec));
  exec = exec_event();
  exec.comm = std::string(kMaxEventCommBytes + 1, 'c');
  EXPECT_FALSE(round_trip(exec));
}

TEST(Message, GuestExitStatusRange) {
  GuestEvent exit;
  exit.kind = GuestEvent::Kind::kExit;
  exit.pid = 42;
  exit.status = 255;
  EXPECT_TRUE(round_trip(exit));
  exit.status = 256;
  EXPECT_FALSE(round_trip(exit));
  exit.flags = GuestEvent::kSignaled;
  exit.status = 64;
  EXPECT_TRUE(round_trip(exit));
  exit.status = 65;
  EXPECT_FALSE(round_trip(exit));
  exit.status = 0;
  EXPECT_FALSE(round_trip(exit));
}

TEST(Message, GuestFilePathLimits) {
  EXPECT_TRUE(round_trip(file_event(GuestEvent::Kind::kFileCreate, std::string(kMaxEventPathBytes, 'p'))));
  EXPECT_FALSE(round_trip(file_event(GuestEvent::Kind::kFileCreate, std::string(kMaxEventPathBytes + 1, 'p'))));
  EXPECT_FALSE(round_trip(file_event(GuestEvent::Kind::kFileModify, "")));
  EXPECT_FALSE(round_trip(file_event(GuestEvent::Kind::kFileRename, "/workspace/a"))) << "a rename without new_path";
}

}  // namespace
}  // namespace zwrm::protocol
