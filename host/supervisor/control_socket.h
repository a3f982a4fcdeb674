// The run's control socket, <runtime>/<run>/control.sock: how `zwrm stop`
// (and later other commands) reach a live run's supervisor. Only the
// supervisor's own user and root may use it; the run directory is 0700 and
// each connection's peer credentials are checked again.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "protocol/channel.h"

namespace zwrm::supervisor {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
};

class ControlSocket {
 public:
  // Called for each complete frame a permitted peer sends; returns the JSON
  // payload of the kNotice reply sent back before the connection closes.
  using Handler = std::function<std::vector<std::uint8_t>(const protocol::Frame&, const PeerCredentials&)>;

  static Result<ControlSocket> listen(const std::string& path);

  int listen_fd() const { return listen_fd_.get(); }
  // Descriptors of accepted connections, to poll for input.
  std::vector<int> connection_fds() const;

  // Accepts one pending connection; drops it when the peer is neither this
  // process's user nor root, or when too many are open.
  void accept_connection();
  // Reads from the connection with this descriptor, passes the first frame
  // to handler, replies and closes the connection. Also closes it on end of
  // file or a malformed frame.
  void service(int fd, const Handler& handler);

 private:
  struct Connection {
    std::unique_ptr<protocol::Channel> channel;
    PeerCredentials peer;
  };
  explicit ControlSocket(UniqueFd fd) : listen_fd_(std::move(fd)) {}

  UniqueFd listen_fd_;
  std::vector<Connection> connections_;
};

// Connects to a run's control socket, sends one frame and returns the
// payload of the supervisor's reply (waiting up to 10 s). Used by `zwrm stop`
// and `zwrm extend`.
Result<std::vector<std::uint8_t>> send_control_request(const std::string& path, protocol::FrameType type,
                                                       const std::vector<std::uint8_t>& payload);

}  // namespace zwrm::supervisor
