#include "protocol/frame.h"

#include <algorithm>
#include <string_view>

#include "common/error.h"

namespace zwrm::protocol {

const char* frame_type_name(FrameType type) {
  switch (type) {
    case FrameType::kHello: return "hello";
    case FrameType::kSetup: return "setup";
    case FrameType::kReady: return "ready";
    case FrameType::kShutdown: return "shutdown";
    case FrameType::kFatal: return "fatal";
    case FrameType::kPing: return "ping";
    case FrameType::kPong: return "pong";
    case FrameType::kGuestEvents: return "guest-events";
    case FrameType::kExec: return "exec";
    case FrameType::kStarted: return "started";
    case FrameType::kStdin: return "stdin";
    case FrameType::kStdout: return "stdout";
    case FrameType::kStderr: return "stderr";
    case FrameType::kEof: return "eof";
    case FrameType::kCredit: return "credit";
    case FrameType::kWindow: return "window";
    case FrameType::kSignal: return "signal";
    case FrameType::kExit: return "exit";
    case FrameType::kTcpAccepted: return "tcp-accepted";
    case FrameType::kTcpConnect: return "tcp-connect";
    case FrameType::kTcpData: return "tcp-data";
    case FrameType::kTcpClose: return "tcp-close";
    case FrameType::kRunRequest: return "run-request";
    case FrameType::kRunStarted: return "run-started";
    case FrameType::kRunEnded: return "run-ended";
    case FrameType::kStopRequest: return "stop-request";
    case FrameType::kNotice: return "notice";
    case FrameType::kExtendRequest: return "extend-request";
  }
  return "unknown";
}

bool is_known_frame_type(std::uint8_t type) {
  return std::string_view(frame_type_name(static_cast<FrameType>(type))) != "unknown";
}

static void put_u32(std::vector<std::uint8_t>& out, std::uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<std::uint8_t>(value >> shift));
}

void append_frame(std::vector<std::uint8_t>& out, FrameType type, std::uint32_t stream,
                  std::span<const std::uint8_t> payload) {
  ZWRM_CHECK(payload.size() <= kMaxPayload);
  // Grows the buffer geometrically. Reserving only the exact size would copy
  // the whole queue for every frame, which makes a long queue quadratic.
  const std::size_t needed = out.size() + kHeaderSize + payload.size();
  if (needed > out.capacity()) out.reserve(std::max(needed, 2 * out.capacity()));
  put_u32(out, static_cast<std::uint32_t>(payload.size()));
  put_u32(out, stream);
  out.push_back(static_cast<std::uint8_t>(type));
  out.push_back(0);
  out.push_back(0);
  out.push_back(0);
  out.insert(out.end(), payload.begin(), payload.end());
}

}  // namespace zwrm::protocol
