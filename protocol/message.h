// Payloads of the frame types in frame.h, and their binary encoding.
//
// Integers are little-endian; a string is a u32 length and that many bytes; a
// string list is a u32 count and that many strings. A decoder returns an
// Error when the payload is short, has bytes left over, or holds a value out
// of range, so a malformed frame never yields a half-filled message.
// Client <-> supervisor payloads are JSON and live in host/supervisor.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "protocol/frame.h"

namespace zwrm::protocol {

// Raised whenever a payload layout below changes incompatibly. The host and
// the guest init are built together, so a mismatch means a stale init image.
inline constexpr std::uint32_t kProtocolVersion = 3;

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

}  // namespace zwrm::protocol
