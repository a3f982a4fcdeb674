#include "host/supervisor/exec_relay.h"

namespace zwrm::supervisor {

using protocol::FrameType;

Status ExecRelay::relay_output(const protocol::Frame& frame, protocol::ReceiveWindow& window) {
  if (auto received = window.receive(frame.payload.size()); !received) return received;
  if (client_ != nullptr) {
    client_->send(frame.type, frame.stream, frame.payload);
    return {};
  }
  if (sink_) sink_(frame.type, frame.payload);
  const auto bytes = static_cast<std::uint32_t>(frame.payload.size());
  if (auto released = window.release(bytes); !released) return released;
  guest_.send(FrameType::kCredit, frame.stream, protocol::encode(protocol::Credit{frame.type, bytes}));
  return {};
}

Status ExecRelay::on_guest_frame(const protocol::Frame& frame) {
  switch (frame.type) {
    case FrameType::kStarted: {
      auto started = protocol::decode_started(frame.payload);
      if (!started) return tl::unexpected(started.error());
      guest_pid_ = started->pid;
      return {};
    }
    case FrameType::kStdout:
      return relay_output(frame, stdout_window_);
    case FrameType::kStderr:
      return relay_output(frame, stderr_window_);
    case FrameType::kEof: {
      auto eof = protocol::decode_eof(frame.payload);
      if (!eof) return tl::unexpected(eof.error());
      if (eof->kind == FrameType::kStdin) return fail("protocol violation: the guest sent end of stdin");
      if (client_ != nullptr) client_->send(frame.type, frame.stream, frame.payload);
      return {};
    }
    case FrameType::kCredit: {
      auto credit = protocol::decode_credit(frame.payload);
      if (!credit) return tl::unexpected(credit.error());
      if (credit->kind != FrameType::kStdin) return fail("protocol violation: the guest granted output credit");
      if (auto granted = guest_stdin_credit_.grant(credit->bytes); !granted) return granted;
      if (client_ != nullptr) {
        if (auto released = client_stdin_window_.release(credit->bytes); !released) return released;
        client_->send(frame.type, frame.stream, frame.payload);
      }
      return {};
    }
    case FrameType::kExit: {
      if (exit_status_) return fail("protocol violation: the guest reported the exit twice");
      auto status = protocol::decode_exit(frame.payload);
      if (!status) return tl::unexpected(status.error());
      exit_status_ = std::move(*status);
      return {};
    }
    default:
      return fail(std::string("protocol violation: the guest sent a ") + protocol::frame_type_name(frame.type) +
                  " frame on a process stream");
  }
}

Status ExecRelay::on_client_frame(const protocol::Frame& frame) {
  switch (frame.type) {
    case FrameType::kStdin: {
      if (auto received = client_stdin_window_.receive(frame.payload.size()); !received) return received;
      guest_stdin_credit_.spend(frame.payload.size());
      guest_.send(frame.type, frame.stream, frame.payload);
      return {};
    }
    case FrameType::kCredit: {
      auto credit = protocol::decode_credit(frame.payload);
      if (!credit) return tl::unexpected(credit.error());
      protocol::ReceiveWindow* window = credit->kind == FrameType::kStdout   ? &stdout_window_
                                        : credit->kind == FrameType::kStderr ? &stderr_window_
                                                                             : nullptr;
      if (window == nullptr) return fail("protocol violation: the client granted stdin credit");
      if (auto released = window->release(credit->bytes); !released) return released;
      guest_.send(frame.type, frame.stream, frame.payload);
      return {};
    }
    case FrameType::kEof:
    case FrameType::kWindow:
    case FrameType::kSignal:
      guest_.send(frame.type, frame.stream, frame.payload);
      return {};
    default:
      return fail(std::string("protocol violation: the client sent a ") + protocol::frame_type_name(frame.type) +
                  " frame on a process stream");
  }
}

void ExecRelay::detach_client() {
  client_ = nullptr;
  // Output the client was granted but never acknowledged would stall the
  // guest; give all of it back.
  for (auto [window, kind] : {std::pair{&stdout_window_, FrameType::kStdout}, std::pair{&stderr_window_, FrameType::kStderr}}) {
    const std::uint32_t outstanding = protocol::kInitialWindow - window->available();
    if (outstanding > 0 && window->release(outstanding)) {
      guest_.send(FrameType::kCredit, kMainStream, protocol::encode(protocol::Credit{kind, outstanding}));
    }
  }
}

}  // namespace zwrm::supervisor
