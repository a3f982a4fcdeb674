// Frames of the zwrm control protocol.
//
// One byte stream (the virtio-serial port between guest and supervisor, or a
// Unix socket between client and supervisor) carries a sequence of frames:
//
//   offset  size  field
//   0       4     payload length, little-endian, at most kMaxPayload
//   4       4     stream id, little-endian (0: the session itself)
//   8       1     frame type (FrameType)
//   9       3     reserved, must be zero
//   12      n     payload
//
// Streams multiplex independent exchanges: stream 0 carries session frames
// (hello, setup, shutdown, guest events), each process started in the guest
// and each TCP connection has its own stream. The host chooses ids below
// kFirstGuestStream (processes, connections into the guest), the guest
// chooses ids from kFirstGuestStream up (connections to the egress proxy),
// each side in increasing order. The payload layout of each type is in
// message.h. A receiver treats any frame that breaks these rules as a
// protocol violation and closes the channel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace zwrm::protocol {

inline constexpr std::size_t kHeaderSize = 12;
// Hard upper bound on one frame's payload. Bulk data is split into frames of
// at most this size, so no receiver ever buffers more for one frame.
inline constexpr std::uint32_t kMaxPayload = 64 * 1024;
inline constexpr std::uint32_t kSessionStream = 0;
inline constexpr std::uint32_t kFirstGuestStream = 0x8000'0000;

enum class FrameType : std::uint8_t {
  // Session, stream 0.
  kHello = 1,      // guest -> host: protocol version, init version
  kSetup = 2,      // host -> guest: clock, entropy seed, hostname
  kReady = 3,      // guest -> host: root and volume mounted
  kShutdown = 4,   // host -> guest: end all processes, sync, power off
  kFatal = 5,      // either way: an unrecoverable error text, then close
  kPing = 6,       // host -> guest: are you alive? (no payload)
  kPong = 7,       // guest -> host: answer to kPing, with guest CPU use (Pong)
  kGuestEvents = 8,  // guest -> host: process and file events for the audit log (GuestEvents)

  // Process streams, stream id >= 1.
  kExec = 16,      // host -> guest: start a process (ExecRequest)
  kStarted = 17,   // guest -> host: the process runs (its guest pid)
  kStdin = 18,     // host -> guest: bytes for the process's stdin
  kStdout = 19,    // guest -> host: bytes the process wrote to stdout
  kStderr = 20,    // guest -> host: bytes the process wrote to stderr
  kEof = 21,       // either way: no more data of one kind (payload: kind)
  kCredit = 22,    // either way: receiver grants more bytes of one kind
  kWindow = 23,    // host -> guest: terminal size in rows and columns
  kSignal = 24,    // host -> guest: send a signal to the process
  kExit = 25,      // guest -> host: how the process ended (ExitStatus)

  // TCP connection streams. Data, kEof and kCredit work as on process
  // streams, with kTcpData as their kind; kEof is a half-close.
  kTcpAccepted = 32,  // guest -> host: a guest process connected to the egress proxy port (no payload)
  kTcpConnect = 33,   // host -> guest: connect to a port on the guest's loopback (TcpConnect)
  kTcpData = 34,      // either way: bytes of the connection
  kTcpClose = 35,     // either way: the connection is gone; the stream id is not used again (TcpClose)

  // Client <-> supervisor only. Payloads are JSON objects.
  kRunRequest = 48,  // client -> supervisor: configuration of a new run
  kRunStarted = 49,  // supervisor -> client: the run's id and settings
  kRunEnded = 50,    // supervisor -> client: exit code and stop cause
  kStopRequest = 51, // client -> supervisor: end this run now
  kNotice = 52,      // supervisor -> client: a message for the user, or a control reply
  kExtendRequest = 53,  // client -> supervisor: push the run's deadline out
};

// Returns the protocol name of a frame type ("stdout"), or "unknown".
const char* frame_type_name(FrameType type);
// Returns whether the byte is one of the FrameType values above.
bool is_known_frame_type(std::uint8_t type);

struct Frame {
  FrameType type{};
  std::uint32_t stream = 0;
  std::vector<std::uint8_t> payload;
};

// Appends the encoded frame to out. The caller keeps payload.size() at or
// below kMaxPayload; larger payloads are a programming error and abort.
void append_frame(std::vector<std::uint8_t>& out, FrameType type, std::uint32_t stream,
                  std::span<const std::uint8_t> payload);

}  // namespace zwrm::protocol
