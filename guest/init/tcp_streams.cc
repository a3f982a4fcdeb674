#include "guest/init/tcp_streams.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "guest/init/log.h"
#include "protocol/message.h"

namespace zwrm::guest {

namespace {

using protocol::FrameType;

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

}  // namespace

Status TcpStreams::listen_proxy() {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener) return fail_errno("cannot create the egress proxy socket");
  const int on = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  const sockaddr_in address = loopback(kProxyPort);
  if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    return fail_errno("cannot bind the egress proxy to 127.0.0.1:3128");
  }
  if (::listen(listener.get(), 128) != 0) return fail_errno("cannot listen on 127.0.0.1:3128");
  listener_ = std::move(listener);
  return {};
}

bool TcpStreams::owns(const protocol::Frame& frame) const {
  if (frame.type == FrameType::kTcpConnect) return true;
  if (frame.stream >= protocol::kFirstGuestStream) return true;
  return relays_.count(frame.stream) != 0 || connecting_.count(frame.stream) != 0 ||
         (frame.stream <= highest_host_stream_ &&
          (frame.type == FrameType::kTcpData || frame.type == FrameType::kTcpClose));
}

Status TcpStreams::on_frame(const protocol::Frame& frame) {
  if (frame.type == FrameType::kTcpConnect) {
    if (frame.stream >= protocol::kFirstGuestStream || frame.stream <= highest_host_stream_) {
      return fail("protocol violation: tcp-connect on stream " + std::to_string(frame.stream) +
                  ", which is not a new host stream");
    }
    highest_host_stream_ = frame.stream;
    auto request = protocol::decode_tcp_connect(frame.payload);
    if (!request) return tl::unexpected(request.error());
    return connect_to_guest_port(frame.stream, request->port);
  }

  if (frame.type == FrameType::kTcpClose) {
    connecting_.erase(frame.stream);
    auto found = relays_.find(frame.stream);
    if (found == relays_.end()) return {};
    protocol::SocketRelay& relay = *found->second;
    // Pass on what the host sent before closing (a proxy's error response):
    // one attempt, since a local reader has room for a short response.
    if (relay.attached()) relay.write_socket(channel_, relay.inbound().size());
    relay.peer_closed();
    relay.close(channel_, "");
    relays_.erase(found);
    return {};
  }

  auto found = relays_.find(frame.stream);
  // Frames for a connection that just ended are late, not wrong.
  if (found == relays_.end()) return {};
  return found->second->on_frame(frame);
}

Status TcpStreams::connect_to_guest_port(std::uint32_t stream, std::uint16_t port) {
  auto relay = std::make_unique<protocol::SocketRelay>(stream);
  UniqueFd socket(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const sockaddr_in address = loopback(port);
  if (!socket || (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 &&
                  errno != EINPROGRESS)) {
    relay->close(channel_, std::string("cannot connect to port ") + std::to_string(port) + " in the guest: " +
                               std::strerror(errno));
    return {};
  }
  connecting_[stream] = std::move(socket);
  relays_[stream] = std::move(relay);
  return {};
}

void TcpStreams::add_poll_fds(std::vector<pollfd>& fds) {
  polled_.clear();
  if (listener_ && relays_.size() < kMaxConnections) {
    fds.push_back({listener_.get(), POLLIN, 0});
    polled_.push_back(0);
  }
  for (auto& [stream, socket] : connecting_) {
    fds.push_back({socket.get(), POLLOUT, 0});
    polled_.push_back(stream);
  }
  for (auto& [stream, relay] : relays_) {
    if (!relay->attached()) continue;
    const short events = static_cast<short>((relay->wants_read(channel_) ? POLLIN : 0) |
                                            (relay->wants_write() ? POLLOUT : 0));
    if (events == 0) continue;
    fds.push_back({relay->fd(), events, 0});
    polled_.push_back(stream);
  }
}

void TcpStreams::handle_poll(const std::vector<pollfd>& fds, std::size_t first) {
  for (std::size_t i = 0; i < polled_.size(); ++i) {
    const pollfd& entry = fds[first + i];
    if (entry.revents == 0) continue;
    const std::uint32_t stream = polled_[i];
    if (stream == 0) {
      accept_connections();
      continue;
    }
    auto relay = relays_.find(stream);
    if (relay == relays_.end()) continue;
    if (auto pending = connecting_.find(stream); pending != connecting_.end()) {
      int error = 0;
      socklen_t size = sizeof error;
      ::getsockopt(pending->second.get(), SOL_SOCKET, SO_ERROR, &error, &size);
      if (error != 0) {
        relay->second->close(channel_, std::string("cannot connect to the port in the guest: ") + std::strerror(error));
        relays_.erase(relay);
      } else {
        relay->second->attach(std::move(pending->second));
      }
      connecting_.erase(pending);
      continue;
    }
    if (entry.revents & (POLLOUT | POLLERR | POLLHUP)) relay->second->write_socket(channel_, SIZE_MAX);
    if (entry.revents & (POLLIN | POLLERR | POLLHUP)) relay->second->read_socket(channel_, SIZE_MAX);
  }
  finish_connections();
}

void TcpStreams::accept_connections() {
  while (relays_.size() < kMaxConnections) {
    UniqueFd socket(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!socket) {
      // Logged once: a guest out of descriptors would otherwise fill the
      // console log with the same line.
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED && !accept_failure_logged_) {
        log_line("accept on the proxy port failed: %s", std::strerror(errno));
        accept_failure_logged_ = true;
      }
      return;
    }
    const std::uint32_t stream = next_stream_++;
    auto relay = std::make_unique<protocol::SocketRelay>(stream);
    relay->attach(std::move(socket));
    channel_.send(FrameType::kTcpAccepted, stream);
    relays_[stream] = std::move(relay);
  }
}

void TcpStreams::finish_connections() {
  for (auto it = relays_.begin(); it != relays_.end();) {
    protocol::SocketRelay& relay = *it->second;
    if (!relay.finished()) {
      ++it;
      continue;
    }
    relay.close(channel_, relay.error());
    it = relays_.erase(it);
  }
}

void TcpStreams::close_all() {
  for (auto& [stream, relay] : relays_) relay->close(channel_, "the guest is shutting down");
  relays_.clear();
  connecting_.clear();
  listener_.reset();
}

}  // namespace zwrm::guest
