#include "host/supervisor/egress_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "host/proxy/client_hello.h"
#include "host/proxy/http_request.h"
#include "host/sys/units.h"
#include "protocol/message.h"
#include "protocol/socket_relay.h"

namespace zwrm::supervisor {

using Clock = EgressProxy::Clock;
using protocol::FrameType;
using nlohmann::json;

struct EgressProxy::Connection {
  explicit Connection(std::uint32_t stream) : relay(stream) {}

  enum class Phase { kRequest, kResolving, kConnecting, kRelaying };

  protocol::SocketRelay relay;
  Phase phase = Phase::kRequest;
  Clock::time_point opened_at = Clock::now();
  Clock::time_point phase_deadline = Clock::now() + kRequestTimeout;
  std::optional<proxy::ProxyRequest> request;
  std::vector<proxy::Rule> rules;  // as loaded when the request arrived
  std::string rule;                // the rule that allowed the host
  std::string address_rule;        // the address range rule a special address needed
  std::optional<proxy::IpAddress> address;
  std::uint64_t lookup_id = 0;
  UniqueFd connecting;
  std::string upstream_head;       // a plain-HTTP request head rewritten for the origin, sent first
  std::uint64_t head_bytes_sent = 0;
  std::string server_name;         // from the ClientHello, when there was one
  // CONNECT: whether the guest's first bytes were checked (a ClientHello's
  // server name must match). Until then nothing goes upstream, while the
  // origin may already speak first.
  bool first_bytes_checked = false;
  std::optional<Clock::time_point> first_bytes_at;  // when the guest's first tunnel bytes arrived
  // Plain HTTP: request body bytes still to forward. Anything the guest
  // sends after them would be a second request, which is not relayed.
  std::uint64_t body_remaining = 0;
  std::optional<Clock::time_point> last_sent;      // when the guest last sent bytes upstream
  std::optional<Clock::time_point> last_received;  // when upstream last sent bytes to the guest
  bool done = false;
};

namespace {

// Returns the sockaddr for address and port, and its length.
socklen_t make_sockaddr(const proxy::IpAddress& address, std::uint16_t port, sockaddr_storage& storage) {
  std::memset(&storage, 0, sizeof storage);
  if (address.family == proxy::IpAddress::Family::kV4) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    std::memcpy(&v4->sin_addr, address.bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  v6->sin6_family = AF_INET6;
  v6->sin6_port = htons(port);
  std::memcpy(&v6->sin6_addr, address.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

// A rate-capped direction waits until a chunk of tokens has accrued before
// it moves data, so a capped transfer goes in chunks instead of a frame and
// a wakeup per millisecond of tokens. A chunk is 50 ms of the rate, at most
// 16 KiB (every bucket's burst is at least that).
std::uint64_t min_chunk(std::uint64_t rate) { return std::clamp<std::uint64_t>(rate / 20, 1, 16 * 1024); }

bool bucket_ready(proxy::TokenBucket& bucket, std::uint64_t rate, Clock::time_point now) {
  return bucket.unlimited() || bucket.available(now) >= min_chunk(rate);
}

// Returns the time until bucket contains a chunk of tokens at rate.
std::chrono::milliseconds chunk_wait(proxy::TokenBucket& bucket, std::uint64_t rate, Clock::time_point now) {
  const std::uint64_t available = bucket.available(now);
  const std::uint64_t chunk = min_chunk(rate);
  if (rate == 0 || available >= chunk) return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(((chunk - available) * 1000 + rate - 1) / rate) + bucket.wait_time(now);
}

std::string end_reason(const protocol::SocketRelay& relay) {
  return relay.error().empty() ? "completed" : relay.error();
}

std::span<const std::uint8_t> as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

}  // namespace

EgressProxy::EgressProxy(protocol::Channel& guest, EgressLimits limits, RulesLoader rules, Recorder record,
                         std::unique_ptr<Resolver> resolver)
    : guest_(guest),
      limits_(limits),
      rules_(std::move(rules)),
      record_(std::move(record)),
      resolver_(std::move(resolver)),
      egress_bucket_(limits.egress_rate),
      ingress_bucket_(limits.ingress_rate),
      event_budget_(kEventsPerSecond, kEventBurst) {}

EgressProxy::~EgressProxy() = default;

Status EgressProxy::on_guest_frame(const protocol::Frame& frame) {
  if (frame.type == FrameType::kTcpAccepted) {
    if (frame.stream <= highest_stream_ && highest_stream_ != 0) {
      return fail("protocol violation: the guest reused connection stream " + std::to_string(frame.stream));
    }
    highest_stream_ = frame.stream;
    open_connection(frame.stream);
    return {};
  }
  auto found = connections_.find(frame.stream);
  if (found == connections_.end()) {
    // Frames for a connection that already ended are late, not wrong.
    if (frame.stream <= highest_stream_) return {};
    return fail("protocol violation: the guest sent a " + std::string(protocol::frame_type_name(frame.type)) +
                " frame on unopened connection stream " + std::to_string(frame.stream));
  }
  Connection& connection = *found->second;
  if (frame.type == FrameType::kTcpClose) {
    connection.relay.peer_closed();
    finish(connection, "closed by the guest");
    erase_finished();
    return {};
  }
  if (auto handled = connection.relay.on_frame(frame); !handled) return handled;
  if (connection.phase == Connection::Phase::kRequest) read_request(connection);
  if (connection.phase == Connection::Phase::kRelaying && !connection.first_bytes_checked) {
    check_client_hello(connection, false);
  }
  erase_finished();
  return {};
}

void EgressProxy::open_connection(std::uint32_t stream) {
  auto connection = std::make_unique<Connection>(stream);
  Connection& added = *connection;
  connections_[stream] = std::move(connection);
  if (limits_.max_connections != 0 && connections_.size() > limits_.max_connections) {
    deny(added, 503,
         "the run has " + std::to_string(limits_.max_connections) +
             " connections open, its cap; close one or raise it with --max-connections");
  }
}

void EgressProxy::read_request(Connection& connection) {
  const std::string_view inbound = connection.relay.inbound();
  auto parsed = proxy::parse_proxy_request(inbound);
  if (!parsed) {
    deny(connection, parsed.error().status, parsed.error().message);
    return;
  }
  if (!*parsed) {
    if (connection.relay.peer_sent_eof()) finish(connection, "the guest closed the connection before a full request");
    return;
  }

  connection.request = std::move(**parsed);
  proxy::ProxyRequest& request = *connection.request;
  if (request.kind == proxy::ProxyRequest::Kind::kForward) {
    if (auto mismatch = proxy::host_header_mismatch(request)) {
      deny(connection, 403, *mismatch);
      return;
    }
    // One request per connection: the body is forwarded by its length, and
    // a chunked body, whose end the proxy would have to parse, is refused.
    if (proxy::find_header(request, "Transfer-Encoding")) {
      deny(connection, 411,
           "a plain-HTTP request body needs Content-Length here, not Transfer-Encoding; or use https");
      return;
    }
    if (auto length = proxy::find_header(request, "Content-Length")) {
      connection.body_remaining = std::strtoull(std::string(*length).c_str(), nullptr, 10);
    }
  }
  if (limits_.quota_bytes != 0 && total_bytes_ >= limits_.quota_bytes) {
    deny(connection, 403,
         "the run used its egress quota of " + sys::format_size(limits_.quota_bytes) + "; start a new run or raise --egress-quota");
    return;
  }

  auto rules = load_rules(connection);
  if (!rules) return;
  connection.rules = std::move(*rules);
  const proxy::NameDecision decision = proxy::check_target(connection.rules, request.target);
  if (!decision.allowed) {
    deny(connection, 403, decision.reason);
    return;
  }
  connection.rule = decision.rule;

  if (request.target.ip) {
    const proxy::AddressDecision address = proxy::choose_address(connection.rules, request.target, {*request.target.ip});
    if (!address.allowed) {
      deny(connection, 403, address.reason);
      return;
    }
    connection.address_rule = address.rule;
    connect_upstream(connection, address.address);
    return;
  }
  start_lookup(connection);
}

std::optional<std::vector<proxy::Rule>> EgressProxy::load_rules(Connection& connection) {
  auto rules = rules_();
  if (!rules) {
    spdlog::error("cannot read the agent's egress policy: {}", rules.error().message);
    deny(connection, 503, "the proxy cannot read the agent's policy: " + rules.error().message);
    return std::nullopt;
  }
  return std::move(*rules);
}

void EgressProxy::start_lookup(Connection& connection) {
  connection.phase = Connection::Phase::kResolving;
  connection.phase_deadline = Clock::now() + kResolveTimeout;
  connection.lookup_id = next_lookup_id_++;
  resolver_->start(connection.lookup_id, connection.request->target.host);
}

void EgressProxy::on_resolved(const Resolution& resolution) {
  for (auto& [stream, connection] : connections_) {
    if (connection->phase != Connection::Phase::kResolving || connection->lookup_id != resolution.id) continue;
    if (resolution.addresses.empty()) {
      deny(*connection, 502, "cannot resolve " + connection->request->target.host + ": " + resolution.error);
      return;
    }
    const proxy::AddressDecision decision =
        proxy::choose_address(connection->rules, connection->request->target, resolution.addresses);
    if (!decision.allowed) {
      deny(*connection, 403, decision.reason);
      return;
    }
    connection->address_rule = decision.rule;
    connect_upstream(*connection, decision.address);
    return;
  }
}

void EgressProxy::connect_upstream(Connection& connection, const proxy::IpAddress& address) {
  connection.address = address;
  const int family = address.family == proxy::IpAddress::Family::kV4 ? AF_INET : AF_INET6;
  UniqueFd socket(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_storage storage;
  const socklen_t length = make_sockaddr(address, connection.request->target.port, storage);
  if (!socket || (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&storage), length) != 0 &&
                  errno != EINPROGRESS)) {
    deny(connection, 502, "cannot connect to " + proxy::format_ip(address) + ": " + std::strerror(errno));
    return;
  }
  connection.connecting = std::move(socket);
  connection.phase = Connection::Phase::kConnecting;
  connection.phase_deadline = Clock::now() + kConnectTimeout;
}

void EgressProxy::on_connected(Connection& connection) {
  int error = 0;
  socklen_t size = sizeof error;
  ::getsockopt(connection.connecting.get(), SOL_SOCKET, SO_ERROR, &error, &size);
  if (error != 0) {
    deny(connection, 502, "cannot connect to " + proxy::format_ip(*connection.address) + ": " + std::strerror(error));
    return;
  }
  connection.relay.attach(std::move(connection.connecting));
  const proxy::ProxyRequest& request = *connection.request;
  if (request.kind == proxy::ProxyRequest::Kind::kForward) {
    connection.upstream_head = proxy::forward_request_head(request);
    connection.relay.consumed(guest_, request.head_size);
    start_relay(connection);
    return;
  }
  connection.relay.consumed(guest_, request.head_size);
  connection.relay.send(guest_, as_bytes(request.version + " 200 Connection established\r\n\r\n"));
  start_relay(connection);
  check_client_hello(connection, false);
}

void EgressProxy::check_client_hello(Connection& connection, bool timed_out) {
  const std::string_view inbound = connection.relay.inbound();
  if (inbound.empty() && !connection.relay.peer_sent_eof()) return;
  if (!connection.first_bytes_at) connection.first_bytes_at = Clock::now();
  const proxy::ClientHelloInfo hello = proxy::parse_client_hello(as_bytes(inbound));
  using Status = proxy::ClientHelloInfo::Status;
  if (hello.status == Status::kNeedMore && !timed_out && !connection.relay.peer_sent_eof()) return;
  if (hello.status == Status::kMalformed || (hello.status == Status::kNeedMore && !inbound.empty())) {
    finish(connection, "denied: the tunnel began with an invalid or incomplete TLS ClientHello");
    return;
  }
  if (hello.status == Status::kServerName) {
    connection.server_name = hello.server_name;
    auto named = proxy::normalise_host(hello.server_name, connection.request->target.port);
    if (!named || named->host != connection.request->target.host) {
      finish(connection, "denied: the TLS server name " + hello.server_name + " does not match the CONNECT host " +
                             connection.request->target.host);
      return;
    }
  }
  connection.first_bytes_checked = true;
}

void EgressProxy::start_relay(Connection& connection) {
  connection.phase = Connection::Phase::kRelaying;
  // Only a CONNECT tunnel has first bytes to check.
  connection.first_bytes_checked = connection.request->kind == proxy::ProxyRequest::Kind::kForward;
}

void EgressProxy::relay(Connection& connection, short revents) {
  const auto now = Clock::now();
  std::uint64_t moved_up = 0;
  std::uint64_t moved_down = 0;
  if (revents & (POLLOUT | POLLERR | POLLHUP)) {
    if (!connection.upstream_head.empty()) {
      const ssize_t count = ::send(connection.relay.fd(), connection.upstream_head.data(),
                                   connection.upstream_head.size(), MSG_NOSIGNAL);
      if (count > 0) {
        connection.upstream_head.erase(0, static_cast<std::size_t>(count));
        connection.head_bytes_sent += static_cast<std::uint64_t>(count);
        moved_up = static_cast<std::uint64_t>(count);
        egress_bucket_.spend(moved_up);
      }
      if (count < 0 && errno != EAGAIN && errno != EINTR) {
        finish(connection, std::string("writing to the origin failed: ") + std::strerror(errno));
        return;
      }
    } else if (connection.first_bytes_checked) {
      std::uint64_t budget = std::min(egress_bucket_.available(now), quota_left());
      const bool forward = connection.request->kind == proxy::ProxyRequest::Kind::kForward;
      if (forward) {
        if (connection.body_remaining == 0 && !connection.relay.inbound().empty()) {
          finish(connection, "denied: the guest sent more after its request; the proxy relays one plain-HTTP "
                             "request per connection");
          return;
        }
        budget = std::min(budget, connection.body_remaining);
      }
      moved_up = connection.relay.write_socket(guest_, static_cast<std::size_t>(std::min<std::uint64_t>(budget, SIZE_MAX)));
      egress_bucket_.spend(moved_up);
      if (forward) connection.body_remaining -= moved_up;
    }
  }
  if (revents & (POLLIN | POLLERR | POLLHUP)) {
    const std::uint64_t budget = std::min(ingress_bucket_.available(now), quota_left());
    moved_down = connection.relay.read_socket(guest_, static_cast<std::size_t>(std::min<std::uint64_t>(budget, SIZE_MAX)));
    ingress_bucket_.spend(moved_down);
  }
  total_bytes_ += moved_up + moved_down;
  if (moved_up > 0) connection.last_sent = now;
  if (moved_down > 0) connection.last_received = now;
  if (moved_up + moved_down > 0) last_transfer_ = now;
  if (quota_left() == 0) {
    finish(connection, "denied: the run used its egress quota of " + sys::format_size(limits_.quota_bytes));
    return;
  }
  if (connection.relay.finished()) finish(connection, end_reason(connection.relay));
}

void EgressProxy::add_poll_fds(std::vector<pollfd>& fds) {
  const auto now = Clock::now();
  polled_.clear();
  fds.push_back({resolver_->fd(), POLLIN, 0});
  polled_.push_back(0);
  const bool may_send = bucket_ready(egress_bucket_, limits_.egress_rate, now);
  const bool may_receive = bucket_ready(ingress_bucket_, limits_.ingress_rate, now);
  send_throttled_ = false;
  receive_throttled_ = false;
  for (auto& [stream, connection] : connections_) {
    short events = 0;
    int fd = -1;
    if (connection->phase == Connection::Phase::kConnecting) {
      fd = connection->connecting.get();
      events = POLLOUT;
    } else if (connection->phase == Connection::Phase::kRelaying) {
      fd = connection->relay.fd();
      const bool wants_send = !connection->upstream_head.empty() ||
                              (connection->first_bytes_checked && connection->relay.wants_write());
      const bool wants_receive = connection->relay.wants_read(guest_);
      if (wants_send && may_send) events |= POLLOUT;
      if (wants_receive && may_receive) events |= POLLIN;
      send_throttled_ = send_throttled_ || (wants_send && !may_send);
      receive_throttled_ = receive_throttled_ || (wants_receive && !may_receive);
    }
    if (events == 0) continue;
    fds.push_back({fd, events, 0});
    polled_.push_back(stream);
  }
}

void EgressProxy::handle_poll(const std::vector<pollfd>& fds, std::size_t first) {
  for (std::size_t i = 0; i < polled_.size(); ++i) {
    const pollfd& entry = fds[first + i];
    if (entry.revents == 0) continue;
    if (polled_[i] == 0) {
      for (const Resolution& resolution : resolver_->take_results()) on_resolved(resolution);
      continue;
    }
    auto found = connections_.find(polled_[i]);
    if (found == connections_.end() || found->second->done) continue;
    Connection& connection = *found->second;
    if (connection.phase == Connection::Phase::kConnecting) {
      on_connected(connection);
    } else if (connection.phase == Connection::Phase::kRelaying) {
      relay(connection, entry.revents);
    }
  }
  // Data the guest sent while a connection was being set up waits in its
  // relay. So a relay that just started may be able to finish at once.
  for (auto& [stream, connection] : connections_) {
    if (!connection->done && connection->phase == Connection::Phase::kRelaying && connection->relay.finished()) {
      finish(*connection, end_reason(connection->relay));
    }
  }
  erase_finished();
}

void EgressProxy::handle_timers(Clock::time_point now) {
  for (auto& [stream, connection] : connections_) {
    // A ClientHello that started must complete in time.
    if (!connection->done && connection->phase == Connection::Phase::kRelaying && !connection->first_bytes_checked &&
        connection->first_bytes_at && now - *connection->first_bytes_at >= kClientHelloTimeout) {
      check_client_hello(*connection, true);
    }
    if (connection->done || connection->phase == Connection::Phase::kRelaying || now < connection->phase_deadline) {
      continue;
    }
    switch (connection->phase) {
      case Connection::Phase::kRequest:
        deny(*connection, 408, "the request head did not arrive within " + std::to_string(kRequestTimeout.count()) + " s");
        break;
      case Connection::Phase::kResolving:
        deny(*connection, 504, "resolving " + connection->request->target.host + " timed out");
        break;
      case Connection::Phase::kConnecting:
        deny(*connection, 504, "connecting to " + proxy::format_ip(*connection->address) + " timed out");
        break;
      case Connection::Phase::kRelaying:
        break;
    }
  }
  erase_finished();
}

std::optional<Clock::time_point> EgressProxy::next_wakeup(Clock::time_point now) {
  std::optional<Clock::time_point> next;
  auto consider = [&](Clock::time_point when) {
    if (!next || when < *next) next = when;
  };
  for (const auto& [stream, connection] : connections_) {
    if (connection->phase != Connection::Phase::kRelaying) consider(connection->phase_deadline);
    if (connection->phase == Connection::Phase::kRelaying && !connection->first_bytes_checked &&
        connection->first_bytes_at) {
      consider(*connection->first_bytes_at + kClientHelloTimeout);
    }
  }
  if (send_throttled_) consider(now + chunk_wait(egress_bucket_, limits_.egress_rate, now));
  if (receive_throttled_) consider(now + chunk_wait(ingress_bucket_, limits_.ingress_rate, now));
  return next;
}

std::uint64_t EgressProxy::quota_left() const {
  if (limits_.quota_bytes == 0) return UINT64_MAX;
  return total_bytes_ >= limits_.quota_bytes ? 0 : limits_.quota_bytes - total_bytes_;
}

bool EgressProxy::busy(Clock::time_point now) const {
  for (const auto& [stream, connection] : connections_) {
    if (connection->phase == Connection::Phase::kResolving || connection->phase == Connection::Phase::kConnecting) {
      return true;
    }
    const bool awaiting = connection->last_sent &&
                          (!connection->last_received || *connection->last_received < *connection->last_sent);
    if (awaiting && now - *connection->last_sent < kAwaitingResponse) return true;
  }
  return false;
}

void EgressProxy::deny(Connection& connection, int status, const std::string& reason) {
  if (connection.done) return;
  const std::string response = proxy::error_response(status, "zwrm egress proxy: " + reason);
  connection.relay.send(guest_, as_bytes(response));
  connection.relay.send_eof(guest_);
  finish(connection, "denied: " + reason);
}

void EgressProxy::finish(Connection& connection, const std::string& reason) {
  if (connection.done) return;
  connection.done = true;
  const bool denied = reason.rfind("denied: ", 0) == 0;
  const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - connection.opened_at);
  json data = {{"stream", connection.relay.stream()},
               {"decision", denied ? "deny" : "allow"},
               {"reason", denied ? reason.substr(8) : reason},
               {"bytes_sent", connection.relay.bytes_to_socket() + connection.head_bytes_sent},
               {"bytes_received", connection.relay.bytes_from_socket()},
               {"duration_ms", duration.count()}};
  if (connection.request) {
    const proxy::ProxyRequest& request = *connection.request;
    data["kind"] = request.kind == proxy::ProxyRequest::Kind::kConnect ? "connect" : "http";
    data["method"] = request.method;
    data["host"] = request.target.host;
    data["port"] = request.target.port;
    // The path without its query, which may carry tokens.
    if (request.kind == proxy::ProxyRequest::Kind::kForward) data["path"] = request.path.substr(0, request.path.find('?'));
  }
  if (!connection.rule.empty()) data["rule"] = connection.rule;
  if (!connection.address_rule.empty()) data["address_rule"] = connection.address_rule;
  if (connection.address) data["address"] = proxy::format_ip(*connection.address);
  if (!connection.server_name.empty()) data["server_name"] = connection.server_name;
  // A guest can open connections far faster than anyone reads their
  // events: past the budget they are counted, and the count is recorded.
  if (event_budget_.available(Clock::now()) == 0) {
    ++suppressed_events_;
  } else {
    event_budget_.spend(1);
    record_suppressed();
    record_("egress", std::move(data));
    spdlog::info("egress stream {}: {}", connection.relay.stream(), reason.empty() ? "closed" : reason);
  }
  connection.relay.close(guest_, reason);
}

void EgressProxy::record_suppressed() {
  if (suppressed_events_ == 0) return;
  record_("egress.suppressed", {{"events", suppressed_events_},
                                {"reason", "more than " + std::to_string(kEventsPerSecond) +
                                               " egress events per second; these connections were not recorded one by one"}});
  spdlog::warn("{} egress events over the rate limit were not recorded one by one", suppressed_events_);
  suppressed_events_ = 0;
}

void EgressProxy::erase_finished() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    it = it->second->done ? connections_.erase(it) : std::next(it);
  }
}

void EgressProxy::close_all(const std::string& reason) {
  for (auto& [stream, connection] : connections_) finish(*connection, reason);
  connections_.clear();
  record_suppressed();
}

}  // namespace zwrm::supervisor
