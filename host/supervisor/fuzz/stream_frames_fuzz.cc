// libFuzzer target for the frames on the streams the supervisor relays. One
// is the run's main process stream (ExecRelay), with frames from the guest
// and from the client. The other is a TCP connection stream (SocketRelay)
// with frames from the guest, as the egress proxy and published ports get
// them. A model of the flow control checks that the supervisor never
// forwards more output to the client, or more stdin to the guest, than the
// receiver granted. It also checks that a connection never buffers more
// than one window. A failed check aborts, which fails the fuzz run like a
// crash.
//
// Input: a mode byte (even: process stream, odd: connection stream), then
// records of an action byte and a 16-bit little-endian number N. For a data
// frame, N is the payload size (zero bytes, at most kMaxPayload), so that
// windows fill without huge inputs. For any other frame, the next N % 16
// input bytes are its payload. For the owner's own actions, N is a byte
// count.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "host/supervisor/exec_relay.h"
#include "protocol/channel.h"
#include "protocol/flow.h"
#include "protocol/frame.h"
#include "protocol/message.h"
#include "protocol/socket_relay.h"

namespace {

using namespace zwrm;
using protocol::FrameType;

// Channels write to /dev/null: frames are only queued in memory, and the
// queue is emptied when it grows large.
int null_fd = -1;

protocol::Channel make_channel() {
  UniqueFd fd(::dup(null_fd));
  ZWRM_CHECK(static_cast<bool>(fd));
  return protocol::Channel(std::move(fd));
}

void bound_queue(protocol::Channel& channel) {
  if (channel.pending_bytes() > protocol::Channel::kMaxPendingBytes) (void)channel.flush();
}

class Input {
 public:
  explicit Input(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

  bool empty() const { return bytes_.empty(); }

  std::uint8_t u8() {
    if (bytes_.empty()) return 0;
    const std::uint8_t value = bytes_.front();
    bytes_ = bytes_.subspan(1);
    return value;
  }

  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() | u8() << 8); }

  std::vector<std::uint8_t> take(std::size_t count) {
    count = std::min(count, bytes_.size());
    std::vector<std::uint8_t> taken(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(count));
    bytes_ = bytes_.subspan(count);
    return taken;
  }

 private:
  std::span<const std::uint8_t> bytes_;
};

bool is_data(FrameType type) {
  return type == FrameType::kStdin || type == FrameType::kStdout || type == FrameType::kStderr ||
         type == FrameType::kTcpData;
}

protocol::Frame read_frame(Input& input, FrameType type, std::uint32_t stream) {
  const std::uint16_t number = input.u16();
  protocol::Frame frame{type, stream, {}};
  if (is_data(type)) {
    frame.payload.assign(std::min<std::size_t>(number, protocol::kMaxPayload), 0);
  } else {
    frame.payload = input.take(number % 16);
  }
  return frame;
}

// Bytes one side may still send of one data kind, as granted by the other.
struct Credits {
  std::uint64_t stdout_bytes = protocol::kInitialWindow;
  std::uint64_t stderr_bytes = protocol::kInitialWindow;
  std::uint64_t stdin_bytes = protocol::kInitialWindow;

  std::uint64_t& of(protocol::DataKind kind) {
    if (kind == FrameType::kStdout) return stdout_bytes;
    if (kind == FrameType::kStderr) return stderr_bytes;
    return stdin_bytes;
  }
};

// Drives the main process stream as the supervisor does. A guest frame that
// breaks the protocol ends the run, but frames already read still reach the
// relay. A client frame that breaks it detaches the client, and so does a
// client that goes away. Client frames stop once either side failed.
void fuzz_process_stream(Input& input) {
  constexpr std::array kGuestTypes = {FrameType::kStarted, FrameType::kStdout, FrameType::kStderr,
                                      FrameType::kEof,     FrameType::kCredit, FrameType::kExit,
                                      FrameType::kStdin,   FrameType::kTcpData};
  constexpr std::array kClientTypes = {FrameType::kStdin,  FrameType::kCredit, FrameType::kEof,
                                       FrameType::kWindow, FrameType::kSignal, FrameType::kStdout};
  protocol::Channel guest = make_channel();
  protocol::Channel client = make_channel();
  supervisor::ExecRelay relay(guest, &client);
  bool client_attached = true;
  bool run_ending = false;
  Credits client_granted;  // output the client may still receive
  Credits guest_granted;   // stdin the guest may still receive

  while (!input.empty()) {
    const std::uint8_t action = input.u8();
    if (action == 0xff) {
      if (client_attached) relay.detach_client();
      client_attached = false;
      continue;
    }
    const bool from_guest = (action & 0x80) == 0;
    const std::uint8_t index = action & 0x7f;
    if (from_guest) {
      protocol::Frame frame = read_frame(input, kGuestTypes[index % kGuestTypes.size()], supervisor::kMainStream);
      const bool accepted = static_cast<bool>(relay.on_guest_frame(frame));
      run_ending = run_ending || !accepted;
      if (!accepted) continue;
      if ((frame.type == FrameType::kStdout || frame.type == FrameType::kStderr) && client_attached) {
        std::uint64_t& credit = client_granted.of(frame.type);
        ZWRM_CHECK(frame.payload.size() <= credit);
        credit -= frame.payload.size();
      }
      if (frame.type == FrameType::kCredit) {
        guest_granted.stdin_bytes += protocol::decode_credit(frame.payload)->bytes;
        ZWRM_CHECK(guest_granted.stdin_bytes <= protocol::kInitialWindow);
      }
    } else {
      protocol::Frame frame = read_frame(input, kClientTypes[index % kClientTypes.size()], supervisor::kMainStream);
      if (!client_attached || run_ending) continue;
      if (!relay.on_client_frame(frame)) {
        relay.detach_client();
        client_attached = false;
        continue;
      }
      if (frame.type == FrameType::kStdin) {
        ZWRM_CHECK(frame.payload.size() <= guest_granted.stdin_bytes);
        guest_granted.stdin_bytes -= frame.payload.size();
      }
      if (frame.type == FrameType::kCredit) {
        const auto credit = protocol::decode_credit(frame.payload);
        std::uint64_t& granted = client_granted.of(credit->kind);
        granted += credit->bytes;
        ZWRM_CHECK(granted <= protocol::kInitialWindow);
      }
    }
    bound_queue(guest);
    bound_queue(client);
  }
}

// Drives a connection stream as the egress proxy and published ports do.
// Besides guest frames, the owner consumes the start of the inbound bytes
// (the proxy's request head, or a write to the socket) and sends bytes of
// its own (a proxy response). Frames keep arriving after an error, as they
// do while the run ends.
void fuzz_connection_stream(Input& input) {
  constexpr std::array kGuestTypes = {FrameType::kTcpData, FrameType::kEof, FrameType::kCredit, FrameType::kStdout,
                                      FrameType::kTcpClose};
  constexpr std::uint32_t kStream = protocol::kFirstGuestStream;
  protocol::Channel guest = make_channel();
  protocol::SocketRelay relay(kStream);
  std::uint64_t send_credit = protocol::kInitialWindow;
  bool closed = false;

  while (!input.empty()) {
    const std::uint8_t action = input.u8();
    if (action >= 0xf0) {
      const std::uint16_t count = input.u16();
      if ((action & 1) == 0) {
        relay.consumed(guest, count);
      } else {
        const std::vector<std::uint8_t> bytes(count, 0);
        const bool sent = relay.send(guest, bytes);
        ZWRM_CHECK(sent == (!closed && count <= send_credit));
        if (sent) send_credit -= count;
      }
    } else if (action == 0xef) {
      relay.close(guest, "closed by the fuzzer");
      closed = true;
    } else {
      const protocol::Frame frame = read_frame(input, kGuestTypes[action % kGuestTypes.size()], kStream);
      if (frame.type == FrameType::kTcpClose) {
        relay.peer_closed();
        closed = true;
      } else if (relay.on_frame(frame) && frame.type == FrameType::kCredit) {
        send_credit += protocol::decode_credit(frame.payload)->bytes;
        ZWRM_CHECK(send_credit <= protocol::kInitialWindow);
      }
    }
    ZWRM_CHECK(relay.inbound().size() <= protocol::kInitialWindow);
    bound_queue(guest);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ZWRM_CHECK(null_fd >= 0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input input({data, size});
  if (input.u8() % 2 == 0) {
    fuzz_process_stream(input);
  } else {
    fuzz_connection_stream(input);
  }
  return 0;
}
