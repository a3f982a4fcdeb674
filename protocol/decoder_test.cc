#include "protocol/decoder.h"

#include <gtest/gtest.h>

#include <vector>

#include "protocol/message.h"

namespace zwrm::protocol {
namespace {

std::vector<std::uint8_t> frame_bytes(FrameType type, std::uint32_t stream, std::size_t payload_size) {
  std::vector<std::uint8_t> payload(payload_size);
  for (std::size_t i = 0; i < payload_size; ++i) payload[i] = static_cast<std::uint8_t>(i);
  std::vector<std::uint8_t> out;
  append_frame(out, type, stream, payload);
  return out;
}

struct Collected {
  std::vector<Frame> frames;
  Decoder::FrameHandler handler() {
    return [this](Frame&& frame) -> Status {
      frames.push_back(std::move(frame));
      return {};
    };
  }
};

TEST(AppendFrame, GrowsBufferGeometrically) {
  // A peer that does not read leaves every frame in a channel's queue. Were
  // each append to copy the whole queue, a long queue would stall the event
  // loop that fills it.
  std::vector<std::uint8_t> queue;
  int reallocations = 0;
  for (int i = 0; i < 100'000; ++i) {
    const std::size_t capacity = queue.capacity();
    append_frame(queue, FrameType::kPong, kSessionStream, encode(Pong{1}));
    if (queue.capacity() != capacity) ++reallocations;
  }
  EXPECT_EQ(queue.size(), 100'000u * (kHeaderSize + 8));
  EXPECT_LT(reallocations, 40);
}

TEST(Decoder, DecodesFrameFedOneByteAtATime) {
  const auto bytes = frame_bytes(FrameType::kStdout, 7, 300);
  Decoder decoder;
  Collected collected;
  for (std::uint8_t byte : bytes) ASSERT_TRUE(decoder.feed({&byte, 1}, collected.handler()));
  ASSERT_EQ(collected.frames.size(), 1u);
  EXPECT_EQ(collected.frames[0].type, FrameType::kStdout);
  EXPECT_EQ(collected.frames[0].stream, 7u);
  ASSERT_EQ(collected.frames[0].payload.size(), 300u);
  EXPECT_EQ(collected.frames[0].payload[299], static_cast<std::uint8_t>(299));
  EXPECT_TRUE(decoder.at_frame_boundary());
}

TEST(Decoder, DecodesSeveralFramesInOneFeed) {
  auto bytes = frame_bytes(FrameType::kStdout, 1, 10);
  const auto second = frame_bytes(FrameType::kExit, 1, 0);
  const auto third = frame_bytes(FrameType::kStderr, 2, kMaxPayload);
  bytes.insert(bytes.end(), second.begin(), second.end());
  bytes.insert(bytes.end(), third.begin(), third.end());
  Decoder decoder;
  Collected collected;
  ASSERT_TRUE(decoder.feed(bytes, collected.handler()));
  ASSERT_EQ(collected.frames.size(), 3u);
  EXPECT_EQ(collected.frames[1].type, FrameType::kExit);
  EXPECT_TRUE(collected.frames[1].payload.empty());
  EXPECT_EQ(collected.frames[2].payload.size(), kMaxPayload);
}

TEST(Decoder, KeepsPartialFrameAcrossFeeds) {
  const auto bytes = frame_bytes(FrameType::kStdin, 3, 100);
  Decoder decoder;
  Collected collected;
  ASSERT_TRUE(decoder.feed({bytes.data(), 50}, collected.handler()));
  EXPECT_TRUE(collected.frames.empty());
  EXPECT_FALSE(decoder.at_frame_boundary());
  ASSERT_TRUE(decoder.feed({bytes.data() + 50, bytes.size() - 50}, collected.handler()));
  EXPECT_EQ(collected.frames.size(), 1u);
}

TEST(Decoder, RejectsOversizedFrameFromHeaderAlone) {
  std::vector<std::uint8_t> header = {0x01, 0x00, 0x01, 0x00,  // 65537 bytes
                                      1, 0, 0, 0, static_cast<std::uint8_t>(FrameType::kStdout), 0, 0, 0};
  Decoder decoder;
  Collected collected;
  auto status = decoder.feed(header, collected.handler());
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("exceeds the limit"), std::string::npos);
}

TEST(Decoder, RejectsUnknownType) {
  auto bytes = frame_bytes(FrameType::kStdout, 1, 0);
  bytes[8] = 200;
  Decoder decoder;
  Collected collected;
  auto status = decoder.feed(bytes, collected.handler());
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("unknown frame type 200"), std::string::npos);
}

TEST(Decoder, RejectsNonZeroReservedBytes) {
  auto bytes = frame_bytes(FrameType::kStdout, 1, 0);
  bytes[11] = 1;
  Decoder decoder;
  Collected collected;
  EXPECT_FALSE(decoder.feed(bytes, collected.handler()));
}

TEST(Decoder, StaysFailedAfterError) {
  auto bad = frame_bytes(FrameType::kStdout, 1, 0);
  bad[8] = 0;
  const auto good = frame_bytes(FrameType::kStdout, 1, 4);
  Decoder decoder;
  Collected collected;
  EXPECT_FALSE(decoder.feed(bad, collected.handler()));
  EXPECT_FALSE(decoder.feed(good, collected.handler()));
  EXPECT_TRUE(collected.frames.empty());
}

TEST(Decoder, HandlerErrorStopsDecoding) {
  auto bytes = frame_bytes(FrameType::kStdout, 1, 1);
  const auto second = frame_bytes(FrameType::kStdout, 1, 1);
  bytes.insert(bytes.end(), second.begin(), second.end());
  Decoder decoder;
  int calls = 0;
  auto status = decoder.feed(bytes, [&](Frame&&) -> Status {
    ++calls;
    return fail("stop here");
  });
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message, "stop here");
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace zwrm::protocol
