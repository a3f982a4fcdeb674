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

}  // namespace
}  // namespace zwrm::protocol
