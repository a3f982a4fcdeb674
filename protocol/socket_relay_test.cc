#include "protocol/socket_relay.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/message.h"

namespace zwrm::protocol {
namespace {

constexpr std::uint32_t kStream = 7;

Frame make_frame(FrameType type, std::span<const std::uint8_t> payload = {}) {
  return Frame{type, kStream, Bytes(payload.begin(), payload.end())};
}

Frame data_frame(const std::string& text) {
  return make_frame(FrameType::kTcpData, {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
}

// A relay whose socket is one end of a socket pair (the other end is
// `remote`), on a channel whose peer is `peer`.
struct Fixture {
  Fixture() {
    int channel_fds[2];
    ZWRM_CHECK(::socketpair(AF_UNIX, SOCK_STREAM, 0, channel_fds) == 0);
    channel = std::make_unique<Channel>(UniqueFd(channel_fds[0]));
    peer = std::make_unique<Channel>(UniqueFd(channel_fds[1]));
    int socket_fds[2];
    ZWRM_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, socket_fds) == 0);
    relay.attach(UniqueFd(socket_fds[0]));
    remote.reset(socket_fds[1]);
  }

  // Flushes the channel and returns every frame the peer received.
  std::vector<Frame> peer_frames() {
    std::vector<Frame> frames;
    ZWRM_CHECK(channel->flush().has_value());
    auto open = peer->receive([&](Frame&& frame) -> Status {
      frames.push_back(std::move(frame));
      return {};
    });
    ZWRM_CHECK(open.has_value());
    return frames;
  }

  std::string read_remote() {
    char buffer[4096];
    const ssize_t count = ::read(remote.get(), buffer, sizeof buffer);
    return count > 0 ? std::string(buffer, static_cast<std::size_t>(count)) : std::string();
  }

  std::unique_ptr<Channel> channel;
  std::unique_ptr<Channel> peer;
  SocketRelay relay{kStream};
  UniqueFd remote;
};

TEST(SocketRelay, SocketBytesBecomeDataFrames) {
  Fixture fixture;
  ASSERT_EQ(::write(fixture.remote.get(), "hello", 5), 5);
  ASSERT_TRUE(fixture.relay.wants_read(*fixture.channel));
  EXPECT_EQ(fixture.relay.read_socket(*fixture.channel, SIZE_MAX), 5u);
  const auto frames = fixture.peer_frames();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, FrameType::kTcpData);
  EXPECT_EQ(frames[0].stream, kStream);
  EXPECT_EQ(std::string(frames[0].payload.begin(), frames[0].payload.end()), "hello");
  EXPECT_EQ(fixture.relay.bytes_from_socket(), 5u);
}

TEST(SocketRelay, ReadLimitIsRespected) {
  Fixture fixture;
  ASSERT_EQ(::write(fixture.remote.get(), "0123456789", 10), 10);
  EXPECT_EQ(fixture.relay.read_socket(*fixture.channel, 4), 4u);
  EXPECT_EQ(fixture.relay.read_socket(*fixture.channel, 100), 6u);
}

TEST(SocketRelay, DataFramesReachSocketAndAreCredited) {
  Fixture fixture;
  ASSERT_TRUE(fixture.relay.on_frame(data_frame("request")));
  ASSERT_TRUE(fixture.relay.wants_write());
  EXPECT_EQ(fixture.relay.write_socket(*fixture.channel, SIZE_MAX), 7u);
  EXPECT_EQ(fixture.read_remote(), "request");
  const auto frames = fixture.peer_frames();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, FrameType::kCredit);
  auto credit = decode_credit(frames[0].payload);
  ASSERT_TRUE(credit);
  EXPECT_EQ(credit->kind, FrameType::kTcpData);
  EXPECT_EQ(credit->bytes, 7u);
}

TEST(SocketRelay, DataBeyondWindowIsViolation) {
  Fixture fixture;
  const std::string chunk(kMaxPayload, 'x');
  for (std::uint32_t sent = 0; sent < kInitialWindow; sent += kMaxPayload) {
    ASSERT_TRUE(fixture.relay.on_frame(data_frame(chunk)));
  }
  EXPECT_FALSE(fixture.relay.on_frame(data_frame("x")));
}

TEST(SocketRelay, DataAfterEofIsViolation) {
  Fixture fixture;
  ASSERT_TRUE(fixture.relay.on_frame(make_frame(FrameType::kEof, encode(Eof{FrameType::kTcpData}))));
  EXPECT_FALSE(fixture.relay.on_frame(data_frame("late")));
}

TEST(SocketRelay, ProcessStreamKindsAreViolations) {
  Fixture fixture;
  EXPECT_FALSE(fixture.relay.on_frame(make_frame(FrameType::kEof, encode(Eof{FrameType::kStdin}))));
  EXPECT_FALSE(fixture.relay.on_frame(make_frame(FrameType::kCredit, encode(Credit{FrameType::kStdout, 1}))));
  EXPECT_FALSE(fixture.relay.on_frame(make_frame(FrameType::kExit, encode(ExitStatus{}))));
}

TEST(SocketRelay, HalfClosesInBothDirections) {
  Fixture fixture;
  // The peer ends its data: once written out, the socket's write side shuts.
  ASSERT_TRUE(fixture.relay.on_frame(data_frame("last")));
  ASSERT_TRUE(fixture.relay.on_frame(make_frame(FrameType::kEof, encode(Eof{FrameType::kTcpData}))));
  fixture.relay.write_socket(*fixture.channel, SIZE_MAX);
  EXPECT_EQ(fixture.read_remote(), "last");
  char byte = 0;
  EXPECT_EQ(::read(fixture.remote.get(), &byte, 1), 0);  // end of file
  EXPECT_FALSE(fixture.relay.finished());

  // The remote end still sends, then closes: kEof goes to the peer.
  ASSERT_EQ(::write(fixture.remote.get(), "reply", 5), 5);
  ::shutdown(fixture.remote.get(), SHUT_WR);
  EXPECT_EQ(fixture.relay.read_socket(*fixture.channel, SIZE_MAX), 5u);
  EXPECT_EQ(fixture.relay.read_socket(*fixture.channel, SIZE_MAX), 0u);
  EXPECT_TRUE(fixture.relay.finished());
  EXPECT_TRUE(fixture.relay.error().empty());
  const auto frames = fixture.peer_frames();
  ASSERT_GE(frames.size(), 2u);
  EXPECT_EQ(frames[frames.size() - 2].type, FrameType::kTcpData);
  EXPECT_EQ(frames.back().type, FrameType::kEof);
}

TEST(SocketRelay, OwnerBytesSpendCredit) {
  Fixture fixture;
  const std::string response = "HTTP/1.1 403 Forbidden\r\n\r\n";
  EXPECT_TRUE(fixture.relay.send(*fixture.channel, {reinterpret_cast<const std::uint8_t*>(response.data()),
                                                     response.size()}));
  const Bytes too_much(kInitialWindow, 0);
  EXPECT_FALSE(fixture.relay.send(*fixture.channel, too_much));
  const auto frames = fixture.peer_frames();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(std::string(frames[0].payload.begin(), frames[0].payload.end()), response);
}

TEST(SocketRelay, ConsumedPrefixIsCreditedNotWritten) {
  Fixture fixture;
  ASSERT_TRUE(fixture.relay.on_frame(data_frame("CONNECT a:443 HTTP/1.1\r\n\r\nhello")));
  const std::size_t head = std::string("CONNECT a:443 HTTP/1.1\r\n\r\n").size();
  fixture.relay.consumed(*fixture.channel, head);
  EXPECT_EQ(fixture.relay.inbound(), "hello");
  fixture.relay.write_socket(*fixture.channel, SIZE_MAX);
  EXPECT_EQ(fixture.read_remote(), "hello");
}

TEST(SocketRelay, CloseSendsTcpCloseOnce) {
  Fixture fixture;
  fixture.relay.close(*fixture.channel, "denied");
  fixture.relay.close(*fixture.channel, "again");
  const auto frames = fixture.peer_frames();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, FrameType::kTcpClose);
  auto close = decode_tcp_close(frames[0].payload);
  ASSERT_TRUE(close);
  EXPECT_EQ(close->reason, "denied");
  EXPECT_FALSE(fixture.relay.attached());
}

TEST(SocketRelay, ClosedByPeerSendsNothing) {
  Fixture fixture;
  fixture.relay.peer_closed();
  fixture.relay.close(*fixture.channel, "");
  EXPECT_TRUE(fixture.peer_frames().empty());
}

}  // namespace
}  // namespace zwrm::protocol
