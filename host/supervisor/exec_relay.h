// Relays the run's main process stream (stream 1) between the guest and the
// client, enforcing flow control on both sides.
//
// The supervisor is not the final reader of the process's output: the
// client is. So credit the client grants for stdout and stderr is forwarded
// to the guest unchanged, and credit the guest grants for stdin is forwarded
// to the client; the supervisor's own windows only check that neither peer
// sends more than it was granted. Buffered data is therefore bounded by the
// window size per direction. Without a client (it went away), the
// supervisor acts as the reader: it drops output and grants credit at once.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "common/error.h"
#include "protocol/channel.h"
#include "protocol/flow.h"
#include "protocol/message.h"

namespace zwrm::supervisor {

inline constexpr std::uint32_t kMainStream = 1;

class ExecRelay {
 public:
  ExecRelay(protocol::Channel& guest, protocol::Channel* client) : guest_(guest), client_(client) {}

  // Where output goes once the client has gone (a detached run); without a
  // sink it is dropped. The guest gets its credit back either way.
  using OutputSink = std::function<void(protocol::FrameType kind, const std::vector<std::uint8_t>& bytes)>;
  void set_output_sink(OutputSink sink) { sink_ = std::move(sink); }

  // Handles a guest frame on kMainStream. Errors are protocol violations by
  // the guest.
  Status on_guest_frame(const protocol::Frame& frame);
  // Handles a client frame on kMainStream. Errors are protocol violations by
  // the client.
  Status on_client_frame(const protocol::Frame& frame);
  // Switches to dropping output: called once the client is gone.
  void detach_client();

  const std::optional<protocol::ExitStatus>& exit_status() const { return exit_status_; }
  std::optional<std::uint32_t> guest_pid() const { return guest_pid_; }

 private:
  Status relay_output(const protocol::Frame& frame, protocol::ReceiveWindow& window);

  protocol::Channel& guest_;
  protocol::Channel* client_;
  OutputSink sink_;
  protocol::ReceiveWindow stdout_window_;
  protocol::ReceiveWindow stderr_window_;
  protocol::SendCredit guest_stdin_credit_;
  protocol::ReceiveWindow client_stdin_window_;
  std::optional<protocol::ExitStatus> exit_status_;
  std::optional<std::uint32_t> guest_pid_;
};

}  // namespace zwrm::supervisor
