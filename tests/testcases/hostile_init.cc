// A guest init under an attacker's control, for the security suite
// (tests/security/hostile_guest_test.cc). It boots only as far as the
// supervisor needs to send the run's exec request: hello, setup, ready.
// Then it runs the attack that argv[0] of that request names, so a test
// picks the attack with `zwrm run -- ATTACK`. As PID 1 it never exits and
// never powers off, whatever the host requests.
//
//   console-flood       writes to the serial console as fast as it can and
//                       keeps replying to pings
//   truncated-frame     sends a frame header and part of its payload, then
//                       nothing, and reads nothing
//   endless-frames      sends valid pong frames as fast as it can and never
//                       reads
//   open-streams        opens egress connection streams as fast as it can
//                       and never reads
//   credit-overrun      waits for a published-port connection and sends data
//                       on its stream far beyond the host's credit
//   ignore-connections  takes every published-port connection, reads every
//                       frame, and grants no credit and sends nothing back
//
// Progress goes to the console as "hostile_init: KEY=VALUE ..." lines, at
// most one a second, so a test can check how far an attack got.
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "guest/init/boot.h"
#include "protocol/channel.h"
#include "protocol/flow.h"
#include "protocol/frame.h"
#include "protocol/message.h"

namespace {

using namespace zwrm;
using protocol::FrameType;

void report(const char* format, ...) __attribute__((format(printf, 1, 2)));

void report(const char* format, ...) {
  char line[256];
  int length = std::snprintf(line, sizeof line, "hostile_init: ");
  va_list arguments;
  va_start(arguments, format);
  const int body = std::vsnprintf(line + length, sizeof line - static_cast<std::size_t>(length) - 1, format, arguments);
  va_end(arguments);
  if (body > 0) length = std::min<int>(length + body, static_cast<int>(sizeof line) - 2);
  line[length++] = '\n';
  (void)!::write(STDERR_FILENO, line, static_cast<std::size_t>(length));
}

// PID 1 must not exit, or the guest kernel panics and the test gets a guest
// crash instead of the outcome of the attack.
[[noreturn]] void wait_forever() {
  for (;;) ::pause();
}

std::uint64_t now_ms() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000 + static_cast<std::uint64_t>(now.tv_nsec) / 1'000'000;
}

// Calls report_progress at most once a second.
class Progress {
 public:
  template <typename Report>
  void tick(Report report_progress) {
    const std::uint64_t now = now_ms();
    if (now < next_ms_) return;
    next_ms_ = now + 1000;
    report_progress();
  }

 private:
  std::uint64_t next_ms_ = 0;
};

// Writes all of bytes to the non-blocking descriptor fd, waiting for room.
// Calls on_wait about once a second while the host does not read. Returns
// false when the descriptor fails.
template <typename OnWait>
bool write_all(int fd, const std::uint8_t* bytes, std::size_t size, OnWait on_wait) {
  while (size > 0) {
    const ssize_t count = ::write(fd, bytes, size);
    if (count > 0) {
      bytes += count;
      size -= static_cast<std::size_t>(count);
      continue;
    }
    if (count < 0 && errno != EAGAIN && errno != EINTR) return false;
    pollfd entry{fd, POLLOUT, 0};
    ::poll(&entry, 1, 1000);
    on_wait();
  }
  return true;
}

// Blocks until a frame of type arrives, and replies to pings meanwhile.
// Returns nullopt when the channel fails.
std::optional<protocol::Frame> wait_for(protocol::Channel& channel, FrameType type) {
  std::optional<protocol::Frame> found;
  while (!found) {
    pollfd entry{channel.fd(), static_cast<short>(POLLIN | (channel.has_pending() ? POLLOUT : 0)), 0};
    ::poll(&entry, 1, 1000);
    auto open = channel.receive([&](protocol::Frame&& frame) -> Status {
      if (frame.type == FrameType::kPing) {
        channel.send(FrameType::kPong, protocol::kSessionStream, protocol::encode(protocol::Pong{}));
      } else if (frame.type == type && !found) {
        found = std::move(frame);
      }
      return {};
    });
    if (!open || !*open) return std::nullopt;
    if (!channel.flush()) return std::nullopt;
  }
  return found;
}

void flush_blocking(protocol::Channel& channel) {
  while (channel.has_pending()) {
    if (!channel.flush()) return;
    pollfd entry{channel.fd(), POLLOUT, 0};
    ::poll(&entry, 1, 100);
  }
}

// Serves the channel the way a healthy init would between commands: replies
// to pings and ignores every other frame, shutdown included.
[[noreturn]] void answer_pings(protocol::Channel& channel) {
  wait_for(channel, FrameType::kExec);  // no second exec ever comes
  wait_forever();
}

[[noreturn]] void console_flood(protocol::Channel& channel) {
  const pid_t child = ::fork();
  if (child == 0) {
    std::string line;
    for (int i = 0; i < 64; ++i) line += "hostile console flood 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\n";
    for (;;) (void)!::write(STDOUT_FILENO, line.data(), line.size());
  }
  report("console-flood writer pid=%d", static_cast<int>(child));
  answer_pings(channel);
}

[[noreturn]] void truncated_frame(protocol::Channel& channel) {
  flush_blocking(channel);
  // Header, little-endian: a 1000-byte payload on stream 0, type pong, three
  // reserved zero bytes. Then 10 bytes of the payload, and nothing more.
  std::vector<std::uint8_t> bytes = {0xe8, 0x03, 0, 0, 0, 0, 0, 0, static_cast<std::uint8_t>(FrameType::kPong), 0, 0, 0};
  bytes.resize(bytes.size() + 10, 0);
  write_all(channel.fd(), bytes.data(), bytes.size(), [] {});
  report("truncated-frame sent=%zu", bytes.size());
  wait_forever();
}

[[noreturn]] void endless_frames(protocol::Channel& channel) {
  flush_blocking(channel);
  std::vector<std::uint8_t> batch;
  const protocol::Bytes pong = protocol::encode(protocol::Pong{0});
  constexpr std::uint64_t kFramesPerBatch = 4096;
  for (std::uint64_t i = 0; i < kFramesPerBatch; ++i) protocol::append_frame(batch, FrameType::kPong, 0, pong);
  std::uint64_t frames = 0;
  Progress progress;
  const auto report_progress = [&] { progress.tick([&] { report("endless-frames frames=%" PRIu64, frames); }); };
  for (;;) {
    if (!write_all(channel.fd(), batch.data(), batch.size(), report_progress)) break;
    frames += kFramesPerBatch;
    report_progress();
  }
  report("endless-frames stopped: the control port failed after frames=%" PRIu64, frames);
  wait_forever();
}

[[noreturn]] void open_streams(protocol::Channel& channel) {
  flush_blocking(channel);
  constexpr std::uint32_t kStreamsPerBatch = 1024;
  std::uint32_t next_stream = protocol::kFirstGuestStream;
  std::uint64_t streams = 0;
  Progress progress;
  const auto report_progress = [&] { progress.tick([&] { report("open-streams streams=%" PRIu64, streams); }); };
  std::vector<std::uint8_t> batch;
  for (;;) {
    batch.clear();
    for (std::uint32_t i = 0; i < kStreamsPerBatch; ++i) {
      protocol::append_frame(batch, FrameType::kTcpAccepted, next_stream++, {});
    }
    if (!write_all(channel.fd(), batch.data(), batch.size(), report_progress)) break;
    streams += kStreamsPerBatch;
    report_progress();
  }
  report("open-streams stopped: the control port failed after streams=%" PRIu64, streams);
  wait_forever();
}

[[noreturn]] void credit_overrun(protocol::Channel& channel) {
  auto connect = wait_for(channel, FrameType::kTcpConnect);
  if (!connect) {
    report("credit-overrun: the control channel closed before a connection arrived");
    wait_forever();
  }
  report("credit-overrun stream=%" PRIu32, connect->stream);
  flush_blocking(channel);

  // 64 MiB, 256 times the initial window, with no credit asked for or read.
  std::vector<std::uint8_t> frame;
  const std::vector<std::uint8_t> data(protocol::kMaxPayload, 'x');
  protocol::append_frame(frame, FrameType::kTcpData, connect->stream, data);
  std::uint64_t bytes = 0;
  Progress progress;
  const auto report_progress = [&] { progress.tick([&] { report("credit-overrun bytes=%" PRIu64, bytes); }); };
  for (int i = 0; i < 1024; ++i) {
    if (!write_all(channel.fd(), frame.data(), frame.size(), report_progress)) break;
    bytes += data.size();
    report_progress();
  }
  report("credit-overrun done bytes=%" PRIu64, bytes);
  wait_forever();
}

[[noreturn]] void ignore_connections(protocol::Channel& channel) {
  std::uint64_t connections = 0;
  std::uint64_t data_bytes = 0;
  std::uint64_t credit_frames = 0;
  Progress progress;
  for (;;) {
    pollfd entry{channel.fd(), static_cast<short>(POLLIN | (channel.has_pending() ? POLLOUT : 0)), 0};
    ::poll(&entry, 1, 1000);
    auto open = channel.receive([&](protocol::Frame&& frame) -> Status {
      if (frame.type == FrameType::kTcpConnect) ++connections;
      if (frame.type == FrameType::kTcpData) data_bytes += frame.payload.size();
      if (frame.type == FrameType::kCredit) ++credit_frames;
      if (frame.type == FrameType::kPing) {
        channel.send(FrameType::kPong, protocol::kSessionStream, protocol::encode(protocol::Pong{}));
      }
      return {};
    });
    if (!open || !*open || !channel.flush()) break;
    progress.tick([&] {
      report("ignore-connections connections=%" PRIu64 " data_bytes=%" PRIu64 " credit_frames=%" PRIu64, connections,
             data_bytes, credit_frames);
    });
  }
  report("ignore-connections stopped: the control channel closed");
  wait_forever();
}

}  // namespace

int main() {
  if (auto mounted = guest::mount_early_file_systems(); !mounted) {
    report("%s", mounted.error().message.c_str());
    wait_forever();
  }
  auto port = guest::open_control_port();
  if (!port) {
    report("%s", port.error().message.c_str());
    wait_forever();
  }
  protocol::Channel channel(std::move(*port));

  channel.send(FrameType::kHello, protocol::kSessionStream,
               protocol::encode(protocol::Hello{protocol::kProtocolVersion, "hostile"}));
  if (!wait_for(channel, FrameType::kSetup)) wait_forever();
  channel.send(FrameType::kReady, protocol::kSessionStream, protocol::encode(protocol::Ready{0}));
  auto exec_frame = wait_for(channel, FrameType::kExec);
  if (!exec_frame) wait_forever();
  auto exec = protocol::decode_exec(exec_frame->payload);
  const std::string attack = exec && !exec->argv.empty() ? exec->argv[0] : "";
  report("attack=%s", attack.c_str());

  if (attack == "console-flood") console_flood(channel);
  if (attack == "truncated-frame") truncated_frame(channel);
  if (attack == "endless-frames") endless_frames(channel);
  if (attack == "open-streams") open_streams(channel);
  if (attack == "credit-overrun") credit_overrun(channel);
  if (attack == "ignore-connections") ignore_connections(channel);
  report("unknown attack '%s'", attack.c_str());
  answer_pings(channel);
}
