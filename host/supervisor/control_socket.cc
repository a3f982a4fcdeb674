#include "host/supervisor/control_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <cstring>

namespace zwrm::supervisor {

namespace {

// A handful of concurrent `zwrm stop` calls is plenty; more are dropped so a
// local flood cannot exhaust the supervisor's descriptors.
constexpr std::size_t kMaxConnections = 8;

Result<sockaddr_un> socket_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) {
    return fail("socket path " + path + " is longer than " + std::to_string(sizeof address.sun_path - 1) +
                " bytes; set ZWRM_HOME to a shorter directory");
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

}  // namespace

Result<ControlSocket> ControlSocket::listen(const std::string& path) {
  auto address = socket_address(path);
  if (!address) return tl::unexpected(address.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return fail_errno("cannot create control socket");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address) != 0) {
    return fail_errno("cannot bind control socket " + path);
  }
  if (::listen(fd.get(), 8) != 0) return fail_errno("cannot listen on control socket " + path);
  return ControlSocket(std::move(fd));
}

std::vector<int> ControlSocket::connection_fds() const {
  std::vector<int> fds;
  for (const Connection& connection : connections_) fds.push_back(connection.channel->fd());
  return fds;
}

void ControlSocket::accept_connection() {
  UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!fd) return;
  ucred credentials{};
  socklen_t size = sizeof credentials;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) return;
  if (credentials.uid != 0 && credentials.uid != ::geteuid()) return;
  if (connections_.size() >= kMaxConnections) return;
  connections_.push_back({std::make_unique<protocol::Channel>(std::move(fd)), {credentials.pid, credentials.uid}});
}

void ControlSocket::service(int fd, const Handler& handler) {
  auto found = std::find_if(connections_.begin(), connections_.end(),
                            [fd](const Connection& connection) { return connection.channel->fd() == fd; });
  if (found == connections_.end()) return;
  const PeerCredentials peer = found->peer;
  bool answered = false;
  auto open = found->channel->receive([&](protocol::Frame&& frame) -> Status {
    if (answered) return {};
    found->channel->send(protocol::FrameType::kNotice, 0, handler(frame, peer));
    answered = true;
    return {};
  });
  if (answered) {
    // A reply is a few hundred bytes: it fits the socket buffer, so one
    // flush sends it, and a peer that does not read loses only its reply.
    (void)found->channel->flush();
  }
  if (answered || !open || !*open) connections_.erase(found);
}

Result<std::vector<std::uint8_t>> send_control_request(const std::string& path, protocol::FrameType type,
                                                       const std::vector<std::uint8_t>& payload) {
  auto address = socket_address(path);
  if (!address) return tl::unexpected(address.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("cannot create a socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address) != 0) {
    return fail_errno("cannot connect to " + path);
  }
  std::vector<std::uint8_t> bytes;
  protocol::append_frame(bytes, type, 0, payload);
  if (::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size())) {
    return fail_errno("cannot send to " + path);
  }

  protocol::Channel channel(std::move(fd));
  std::optional<std::vector<std::uint8_t>> reply;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!reply && std::chrono::steady_clock::now() < deadline) {
    pollfd ready{channel.fd(), POLLIN, 0};
    ::poll(&ready, 1, 100);
    auto open = channel.receive([&](protocol::Frame&& frame) -> Status {
      reply = std::move(frame.payload);
      return {};
    });
    if (!open) return tl::unexpected(open.error());
    if (!*open && !reply) return fail("the supervisor closed " + path + " without replying");
  }
  if (!reply) return fail("the supervisor did not reply on " + path + " within 10 s");
  return std::move(*reply);
}

}  // namespace zwrm::supervisor
