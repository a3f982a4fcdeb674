#include "host/supervisor/published_ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "protocol/message.h"

namespace zwrm::supervisor {

namespace {

using protocol::FrameType;
using nlohmann::json;

// Connections into the guest open at once, over all published ports.
constexpr std::size_t kMaxForwards = 256;

std::string peer_name(const sockaddr_storage& storage) {
  char text[INET6_ADDRSTRLEN] = "?";
  std::uint16_t port = 0;
  if (storage.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    port = ntohs(v4->sin_port);
    return std::string(text) + ":" + std::to_string(port);
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage);
  ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
  port = ntohs(v6->sin6_port);
  return "[" + std::string(text) + "]:" + std::to_string(port);
}

}  // namespace

Result<std::unique_ptr<PublishedPorts>> PublishedPorts::bind(protocol::Channel& guest,
                                                             const std::vector<PortMapping>& mappings, Recorder record) {
  std::unique_ptr<PublishedPorts> ports(new PublishedPorts(guest, std::move(record)));
  for (const PortMapping& mapping : mappings) {
    sockaddr_storage storage{};
    socklen_t length = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (::inet_pton(AF_INET, mapping.host_address.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(mapping.host_port);
      length = sizeof *v4;
    } else if (::inet_pton(AF_INET6, mapping.host_address.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(mapping.host_port);
      length = sizeof *v6;
    } else {
      return fail("invalid --publish address " + mapping.host_address);
    }
    UniqueFd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    const int on = 1;
    if (fd) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (!fd || ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) != 0 ||
        ::listen(fd.get(), 64) != 0) {
      return fail_errno("cannot publish " + format_port_mapping(mapping) + ": binding " + mapping.host_address + ":" +
                        std::to_string(mapping.host_port) + " failed");
    }
    spdlog::info("publishing {} to guest port {}", format_port_mapping(mapping), mapping.guest_port);
    ports->listeners_.push_back({mapping, std::move(fd)});
  }
  return ports;
}

bool PublishedPorts::owns(std::uint32_t stream) const { return stream >= kFirstStream && stream < next_stream_; }

Status PublishedPorts::on_guest_frame(const protocol::Frame& frame) {
  auto found = forwards_.find(frame.stream);
  if (found == forwards_.end()) return {};  // late: the connection already ended
  Forward& forward = *found->second;
  if (frame.type == FrameType::kTcpClose) {
    auto close = protocol::decode_tcp_close(frame.payload);
    forward.relay.peer_closed();
    finish(forward, close ? close->reason : "");
    forwards_.erase(found);
    return {};
  }
  return forward.relay.on_frame(frame);
}

void PublishedPorts::add_poll_fds(std::vector<pollfd>& fds) {
  polled_.clear();
  if (accepting_ && forwards_.size() < kMaxForwards) {
    for (std::size_t i = 0; i < listeners_.size(); ++i) {
      fds.push_back({listeners_[i].fd.get(), POLLIN, 0});
      polled_.emplace_back(static_cast<int>(i), 0);
    }
  }
  for (auto& [stream, forward] : forwards_) {
    const short events = static_cast<short>((forward->relay.wants_read(guest_) ? POLLIN : 0) |
                                            (forward->relay.wants_write() ? POLLOUT : 0));
    if (events == 0) continue;
    fds.push_back({forward->relay.fd(), events, 0});
    polled_.emplace_back(-1, stream);
  }
}

void PublishedPorts::handle_poll(const std::vector<pollfd>& fds, std::size_t first) {
  for (std::size_t i = 0; i < polled_.size(); ++i) {
    const short revents = fds[first + i].revents;
    if (revents == 0) continue;
    const auto [listener, stream] = polled_[i];
    if (listener >= 0) {
      accept_on(listeners_[static_cast<std::size_t>(listener)]);
      continue;
    }
    auto found = forwards_.find(stream);
    if (found == forwards_.end()) continue;
    protocol::SocketRelay& relay = found->second->relay;
    if (revents & (POLLOUT | POLLERR | POLLHUP)) relay.write_socket(guest_, SIZE_MAX);
    if (revents & (POLLIN | POLLERR | POLLHUP)) relay.read_socket(guest_, SIZE_MAX);
  }
  for (auto it = forwards_.begin(); it != forwards_.end();) {
    if (!it->second->relay.finished()) {
      ++it;
      continue;
    }
    finish(*it->second, it->second->relay.error());
    it = forwards_.erase(it);
  }
}

void PublishedPorts::accept_on(Listener& listener) {
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  UniqueFd socket(::accept4(listener.fd.get(), reinterpret_cast<sockaddr*>(&peer), &length, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!socket) return;
  const std::uint32_t stream = next_stream_++;
  auto forward = std::make_unique<Forward>(stream);
  forward->mapping = listener.mapping;
  forward->peer = peer_name(peer);
  forward->relay.attach(std::move(socket));
  guest_.send(FrameType::kTcpConnect, stream, protocol::encode(protocol::TcpConnect{listener.mapping.guest_port}));
  forwards_[stream] = std::move(forward);
}

void PublishedPorts::finish(Forward& forward, const std::string& reason) {
  const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                              forward.opened_at);
  record_("publish.connection", {{"stream", forward.relay.stream()},
                                 {"mapping", format_port_mapping(forward.mapping)},
                                 {"peer", forward.peer},
                                 {"bytes_to_guest", forward.relay.bytes_from_socket()},
                                 {"bytes_from_guest", forward.relay.bytes_to_socket()},
                                 {"duration_ms", duration.count()},
                                 {"reason", reason}});
  forward.relay.close(guest_, reason);
}

void PublishedPorts::close_all(const std::string& reason) {
  for (auto& [stream, forward] : forwards_) finish(*forward, reason);
  forwards_.clear();
  listeners_.clear();
}

}  // namespace zwrm::supervisor
