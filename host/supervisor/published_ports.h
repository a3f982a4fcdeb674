// Published ports: host TCP listeners whose connections are forwarded to a
// port on the guest's loopback, each as a stream on the control channel
// (`--publish [ADDR:]HOSTPORT:GUESTPORT`). The host side binds 127.0.0.1
// unless the user names another address.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/unique_fd.h"
#include "host/supervisor/port_mapping.h"
#include "protocol/channel.h"
#include "protocol/socket_relay.h"

namespace zwrm::supervisor {

class PublishedPorts {
 public:
  using Recorder = std::function<void(const std::string& type, nlohmann::json data)>;

  // Binds every mapping. Fails, naming the mapping, when one cannot be bound
  // (the port is in use, or the address is not local).
  static Result<std::unique_ptr<PublishedPorts>> bind(protocol::Channel& guest, const std::vector<PortMapping>& mappings,
                                                      Recorder record);

  // Starts accepting: before the guest is ready, connections wait in the
  // listen backlog.
  void start() { accepting_ = true; }

  // Whether a guest frame on a host stream belongs here (a stream this
  // object opened, or a late frame for one it closed).
  bool owns(std::uint32_t stream) const;
  Status on_guest_frame(const protocol::Frame& frame);

  void add_poll_fds(std::vector<pollfd>& fds);
  void handle_poll(const std::vector<pollfd>& fds, std::size_t first);
  void close_all(const std::string& reason);

  // Host stream ids from here up are this object's; the main process uses
  // the ones below.
  static constexpr std::uint32_t kFirstStream = 16;

 private:
  struct Listener {
    PortMapping mapping;
    UniqueFd fd;
  };
  struct Forward {
    explicit Forward(std::uint32_t stream) : relay(stream) {}
    protocol::SocketRelay relay;
    PortMapping mapping;
    std::string peer;
    std::chrono::steady_clock::time_point opened_at = std::chrono::steady_clock::now();
  };

  PublishedPorts(protocol::Channel& guest, Recorder record) : guest_(guest), record_(std::move(record)) {}
  void accept_on(Listener& listener);
  void finish(Forward& forward, const std::string& reason);

  protocol::Channel& guest_;
  Recorder record_;
  bool accepting_ = false;
  std::vector<Listener> listeners_;
  std::map<std::uint32_t, std::unique_ptr<Forward>> forwards_;
  std::uint32_t next_stream_ = kFirstStream;
  std::vector<std::pair<int, std::uint32_t>> polled_;  // (listener index or -1, stream)
};

}  // namespace zwrm::supervisor
