// Payloads of the frame types in frame.h, and their binary encoding.
//
// Integers are little-endian; a string is a u32 length and that many bytes; a
// string list is a u32 count and that many strings. A decoder returns an
// Error when the payload is short, has bytes left over, or holds a value out
// of range, so a malformed frame never yields a half-filled message.
// Client <-> supervisor payloads are JSON and live in host/supervisor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "protocol/frame.h"

namespace zwrm::protocol {

// Raised whenever a payload layout below changes incompatibly. The host and
// the guest init are built together, so a mismatch means a stale init image.
inline constexpr std::uint32_t kProtocolVersion = 4;

using Bytes = std::vector<std::uint8_t>;

struct Hello {
  std::uint32_t protocol_version = kProtocolVersion;
  std::string init_version;
};

struct Setup {
  std::uint64_t realtime_ns = 0;  // host wall clock, so guest file times and TLS checks are right
  Bytes entropy;                  // seeds the guest's random pool before any process starts
  std::string hostname;
};

struct Ready {
  std::uint64_t uptime_ms = 0;  // guest uptime when root and volume were mounted
};

struct Pong {
  // CPU time the guest spent busy since boot (user, nice, system, irq and
  // softirq in /proc/stat), in ms. The host compares answers to tell an idle
  // guest from a working one.
  std::uint64_t cpu_busy_ms = 0;
};

struct Fatal {
  std::string message;
};

struct ExecRequest {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH of env
  std::vector<std::string> env;   // KEY=VALUE entries, the whole environment
  // The agent's secrets, KEY=VALUE, added to the process's environment
  // (over env) and nowhere else: the guest init never logs or keeps them.
  std::vector<std::string> secret_env;
  std::string cwd;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  bool tty = false;  // run on a pseudo-terminal; stderr then joins stdout
  std::uint16_t rows = 0;
  std::uint16_t cols = 0;
};

struct Started {
  std::uint32_t pid = 0;
};

// Names one direction of a stream's data: kStdin, kStdout or kStderr on a
// process stream, kTcpData on a connection stream.
using DataKind = FrameType;
bool is_data_kind(FrameType type);

struct Eof {
  DataKind kind = FrameType::kStdin;
};

struct Credit {
  DataKind kind = FrameType::kStdin;
  std::uint32_t bytes = 0;
};

struct Window {
  std::uint16_t rows = 0;
  std::uint16_t cols = 0;
};

struct Signal {
  std::uint32_t number = 0;  // 1..64
};

struct TcpConnect {
  std::uint16_t port = 0;  // 1..65535, on 127.0.0.1 in the guest
};

struct TcpClose {
  std::string reason;  // empty for an orderly close; else why, for logs (at most 1 KiB)
};

struct ExitStatus {
  enum class Kind : std::uint8_t {
    kExited = 0,          // code is the exit status
    kSignaled = 1,        // code is the signal number
    kFailedToStart = 2,   // code is 126 or 127 as a shell would use, message says why
  };
  Kind kind = Kind::kExited;
  std::int32_t code = 0;
  std::string message;

  // The status a shell would report: code, 128 + signal, or 126/127.
  int shell_status() const;
};

// Limits of a guest-events payload. The guest init truncates or splits to
// stay within them, and a decoder rejects a payload that exceeds any of them.
inline constexpr std::size_t kMaxGuestEventsPerBatch = 64;
inline constexpr std::size_t kMaxEventArgs = 32;
inline constexpr std::size_t kMaxEventArgBytes = 1024;   // one argument
inline constexpr std::size_t kMaxEventArgvBytes = 4096;  // all arguments together
inline constexpr std::size_t kMaxEventPathBytes = 1024;
inline constexpr std::size_t kMaxEventCommBytes = 15;    // TASK_COMM_LEN in the kernel, less its NUL

// One process or file event observed in the guest. Which fields a kind
// carries is listed beside each field; the others stay empty or zero.
struct GuestEvent {
  enum class Kind : std::uint8_t {
    kExec = 1,        // a process called execve
    kExit = 2,        // a process that had called execve exited
    kFileCreate = 3,  // under /workspace, like the other file kinds
    kFileModify = 4,
    kFileDelete = 5,
    kFileRename = 6,
  };
  // Bits of flags. Each kind accepts only the bits listed for it.
  // exec: argv was cut to the limits above.
  static constexpr std::uint8_t kArgvTruncated = 1 << 0;
  // exec: the process ended before its argv could be read, so argv is empty.
  static constexpr std::uint8_t kArgvUnreadable = 1 << 1;
  // exec: /proc/PID/status was gone as well, so uid is unknown and ppid
  // comes from the process's fork event (0 when that was not seen either).
  static constexpr std::uint8_t kStatusUnreadable = 1 << 2;
  // exit: status is the number of the signal that ended the process.
  static constexpr std::uint8_t kSignaled = 1 << 3;
  // file: the object is a directory.
  static constexpr std::uint8_t kDirectory = 1 << 4;
  // file: path or new_path was cut to kMaxEventPathBytes.
  static constexpr std::uint8_t kPathTruncated = 1 << 5;
  // file: the directory was gone before its path could be resolved, so the
  // path is only the entry's name.
  static constexpr std::uint8_t kPathUnresolved = 1 << 6;

  Kind kind = Kind::kExec;
  std::uint8_t flags = 0;
  std::uint64_t time_ms = 0;  // all: guest wall clock (ms since the epoch) when the init read the event
  std::uint32_t pid = 0;      // all: the process; for file events the one that made the change (0: unknown)
  std::uint32_t ppid = 0;     // exec, exit: its parent (0: unknown)
  std::uint32_t uid = 0;      // exec: real user id
  std::string comm;           // exec, exit: the kernel's command name (empty: unknown)
  std::vector<std::string> argv;  // exec
  std::uint32_t status = 0;   // exit: exit code 0..255, or the signal 1..64 with kSignaled
  std::string path;           // file: the object's path; for a rename, the old path
  std::string new_path;       // rename: the new path
};

struct GuestEvents {
  std::uint64_t dropped = 0;  // events the guest dropped since its previous batch
  std::vector<GuestEvent> events;  // at most kMaxGuestEventsPerBatch; empty only when dropped > 0
};

// Returns the bytes event adds to an encoded GuestEvents payload, so the
// guest can fill a frame up to kMaxPayload.
std::size_t encoded_size(const GuestEvent& event);
// The bytes of a GuestEvents payload before its events.
inline constexpr std::size_t kGuestEventsHeaderSize = 12;

Bytes encode(const Hello& message);
Bytes encode(const Setup& message);
Bytes encode(const Ready& message);
Bytes encode(const Pong& message);
Bytes encode(const Fatal& message);
Bytes encode(const ExecRequest& message);
Bytes encode(const Started& message);
Bytes encode(const Eof& message);
Bytes encode(const Credit& message);
Bytes encode(const Window& message);
Bytes encode(const Signal& message);
Bytes encode(const ExitStatus& message);
Bytes encode(const TcpConnect& message);
Bytes encode(const TcpClose& message);
Bytes encode(const GuestEvents& message);

Result<Hello> decode_hello(std::span<const std::uint8_t> payload);
Result<Setup> decode_setup(std::span<const std::uint8_t> payload);
Result<Ready> decode_ready(std::span<const std::uint8_t> payload);
Result<Pong> decode_pong(std::span<const std::uint8_t> payload);
Result<Fatal> decode_fatal(std::span<const std::uint8_t> payload);
Result<ExecRequest> decode_exec(std::span<const std::uint8_t> payload);
Result<Started> decode_started(std::span<const std::uint8_t> payload);
Result<Eof> decode_eof(std::span<const std::uint8_t> payload);
Result<Credit> decode_credit(std::span<const std::uint8_t> payload);
Result<Window> decode_window(std::span<const std::uint8_t> payload);
Result<Signal> decode_signal(std::span<const std::uint8_t> payload);
Result<ExitStatus> decode_exit(std::span<const std::uint8_t> payload);
Result<TcpConnect> decode_tcp_connect(std::span<const std::uint8_t> payload);
Result<TcpClose> decode_tcp_close(std::span<const std::uint8_t> payload);
Result<GuestEvents> decode_guest_events(std::span<const std::uint8_t> payload);

}  // namespace zwrm::protocol
