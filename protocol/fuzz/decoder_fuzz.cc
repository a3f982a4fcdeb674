// libFuzzer target for everything a guest can put on the control channel:
// the frame decoder and the decoders of each guest-to-host payload.
#include <cstddef>
#include <cstdint>

#include "protocol/decoder.h"
#include "protocol/message.h"

using namespace zwrm::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Decoder decoder;
  // Feed in two pieces to exercise frames split across reads.
  const std::size_t split = size > 0 ? data[0] % (size + 1) : 0;
  auto handler = [](Frame&& frame) -> zwrm::Status {
    switch (frame.type) {
      case FrameType::kHello: (void)decode_hello(frame.payload); break;
      case FrameType::kReady: (void)decode_ready(frame.payload); break;
      case FrameType::kFatal: (void)decode_fatal(frame.payload); break;
      case FrameType::kPong: (void)decode_pong(frame.payload); break;
      case FrameType::kGuestEvents: (void)decode_guest_events(frame.payload); break;
      case FrameType::kStarted: (void)decode_started(frame.payload); break;
      case FrameType::kEof: (void)decode_eof(frame.payload); break;
      case FrameType::kCredit: (void)decode_credit(frame.payload); break;
      case FrameType::kExit: (void)decode_exit(frame.payload); break;
      case FrameType::kExec: (void)decode_exec(frame.payload); break;
      case FrameType::kSetup: (void)decode_setup(frame.payload); break;
      case FrameType::kWindow: (void)decode_window(frame.payload); break;
      case FrameType::kSignal: (void)decode_signal(frame.payload); break;
      case FrameType::kTcpConnect: (void)decode_tcp_connect(frame.payload); break;
      case FrameType::kTcpClose: (void)decode_tcp_close(frame.payload); break;
      default: break;
    }
    return {};
  };
  if (decoder.feed({data, split}, handler)) (void)decoder.feed({data + split, size - split}, handler);
  return 0;
}
