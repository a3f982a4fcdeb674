// The guest init's TCP connections: the egress proxy port that agent
// processes reach through HTTP_PROXY, and connections the host opens into
// the guest for published ports. Each connection is one stream on the
// control channel. The guest does no HTTP and no policy: it relays bytes,
// and the supervisor on the host decides what a connection may reach.
#pragma once

#include <poll.h>
#include <sys/resource.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "protocol/channel.h"
#include "protocol/socket_relay.h"

namespace zwrm::guest {

// The egress proxy's address inside the guest, and the value of the proxy
// variables set for every process.
inline constexpr std::uint16_t kProxyPort = 3128;
inline constexpr const char* kProxyUrl = "http://127.0.0.1:3128";
// Connections beyond this many wait in the listen backlog. The host's cap
// (--max-connections, at most 4096) is lower or equal.
inline constexpr std::size_t kMaxConnections = 4096;
// Open files of the init, which keeps one descriptor per connection, and
// the soft limit its processes start with (the usual default).
inline constexpr rlim_t kInitOpenFiles = 8192;
inline constexpr rlim_t kProcessOpenFiles = 1024;

class TcpStreams {
 public:
  explicit TcpStreams(protocol::Channel& channel) : channel_(channel) {}

  // Listens on 127.0.0.1:kProxyPort.
  Status listen_proxy();

  // Whether a frame from the host belongs here: kTcpConnect, or any frame
  // on a stream this object owns or once owned.
  bool owns(const protocol::Frame& frame) const;
  Status on_frame(const protocol::Frame& frame);

  // Appends this object's poll interest to fds; handle_poll takes the same
  // vector and the index the first entry went to.
  void add_poll_fds(std::vector<pollfd>& fds);
  void handle_poll(const std::vector<pollfd>& fds, std::size_t first);

  // Closes every connection and sends tcp-close for each (at shutdown).
  void close_all();

 private:
  void accept_connections();
  Status connect_to_guest_port(std::uint32_t stream, std::uint16_t port);
  void finish_connections();

  protocol::Channel& channel_;
  UniqueFd listener_;
  std::map<std::uint32_t, std::unique_ptr<protocol::SocketRelay>> relays_;
  // Connections to a guest port whose non-blocking connect is in progress.
  std::map<std::uint32_t, UniqueFd> connecting_;
  std::uint32_t next_stream_ = protocol::kFirstGuestStream;
  std::uint32_t highest_host_stream_ = 0;
  bool accept_failure_logged_ = false;
  std::vector<std::uint32_t> polled_;  // stream of each fd added by add_poll_fds; 0 for the listener
};

}  // namespace zwrm::guest
