#include "protocol/channel.h"

#include <sys/socket.h>

#include <gtest/gtest.h>

#include "protocol/message.h"

namespace zwrm::protocol {
namespace {

struct Pair {
  Pair() {
    int fds[2];
    ZWRM_CHECK(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    a = std::make_unique<Channel>(UniqueFd(fds[0]));
    b = std::make_unique<Channel>(UniqueFd(fds[1]));
  }
  std::unique_ptr<Channel> a;
  std::unique_ptr<Channel> b;
};

TEST(Channel, DeliversFramesInOrderAcrossPartialWrites) {
  Pair pair;
  const Bytes big(kMaxPayload, 0xab);
  for (int i = 0; i < 40; ++i) pair.a->send(FrameType::kStdout, 1, big);
  pair.a->send(FrameType::kExit, 1, encode(ExitStatus{}));

  std::vector<Frame> received;
  auto collect = [&](Frame&& frame) -> Status {
    received.push_back(std::move(frame));
    return {};
  };
  // 40 * 64 KiB exceeds the socket buffer, so flush must stop and resume.
  while (pair.a->has_pending() || received.size() < 41) {
    ASSERT_TRUE(pair.a->flush());
    auto open = pair.b->receive(collect);
    ASSERT_TRUE(open);
    ASSERT_TRUE(*open);
  }
  ASSERT_EQ(received.size(), 41u);
  EXPECT_EQ(received[39].payload, big);
  EXPECT_EQ(received[40].type, FrameType::kExit);
}

TEST(Channel, ReportsPeerClose) {
  Pair pair;
  pair.a.reset();
  auto open = pair.b->receive([](Frame&&) -> Status { return {}; });
  ASSERT_TRUE(open);
  EXPECT_FALSE(*open);
}

TEST(Channel, ReportsMalformedInput) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  Channel channel{UniqueFd(fds[0])};
  const std::uint8_t garbage[12] = {0xff, 0xff, 0xff, 0xff};
  ASSERT_EQ(::write(fds[1], garbage, sizeof garbage), 12);
  auto open = channel.receive([](Frame&&) -> Status { return {}; });
  EXPECT_FALSE(open);
  ::close(fds[1]);
}

TEST(Channel, BackloggedWhilePeerDoesNotRead) {
  Pair pair;
  const Bytes big(kMaxPayload, 0xcd);
  std::size_t frames = 0;
  while (!pair.a->backlogged()) {
    pair.a->send(FrameType::kTcpData, kFirstGuestStream, big);
    ASSERT_TRUE(pair.a->flush());
    ++frames;
    ASSERT_LT(frames, 1000u) << "the queue never reached the backlog limit";
  }
  EXPECT_GE(pair.a->pending_bytes(), Channel::kMaxBacklogBytes);

  // Once the peer reads, the queue drains and the channel stops being
  // backlogged.
  std::size_t received = 0;
  while (received < frames) {
    ASSERT_TRUE(pair.a->flush());
    auto open = pair.b->receive([&](Frame&&) -> Status {
      ++received;
      return {};
    });
    ASSERT_TRUE(open);
  }
  EXPECT_FALSE(pair.a->backlogged());
  EXPECT_FALSE(pair.a->has_pending());
}

TEST(Channel, ReportsPartialFrame) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  Channel channel{UniqueFd(fds[0])};
  Bytes frame;
  append_frame(frame, FrameType::kPong, kSessionStream, encode(Pong{7}));
  ASSERT_EQ(::write(fds[1], frame.data(), 14), 14);
  int frames = 0;
  auto count = [&](Frame&&) -> Status {
    ++frames;
    return {};
  };
  ASSERT_TRUE(channel.receive(count));
  EXPECT_EQ(frames, 0);
  EXPECT_FALSE(channel.at_frame_boundary());

  ASSERT_EQ(::write(fds[1], frame.data() + 14, frame.size() - 14), static_cast<ssize_t>(frame.size() - 14));
  ASSERT_TRUE(channel.receive(count));
  EXPECT_EQ(frames, 1);
  EXPECT_TRUE(channel.at_frame_boundary());
  ::close(fds[1]);
}

}  // namespace
}  // namespace zwrm::protocol
