// The supervisor's egress proxy: every TCP connection a guest process makes
// to the guest's proxy port arrives here as a stream, and this class decides
// it from the agent's policy, dials out itself, relays the bytes within the
// run's bandwidth caps and quota, and records one audit event per
// connection.
//
// Per connection: read the request head (CONNECT host:port, or a plain-HTTP
// request with an absolute URL); check the host against the rules; resolve
// the name; check every address against the special ranges; connect to
// exactly the address that passed; for CONNECT, answer 200 and check the TLS
// ClientHello's server name against the CONNECT host before any byte goes
// upstream; then relay, a plain-HTTP request's body by its length only. A denied
// connection gets an HTTP error response whose body says why.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "host/proxy/policy.h"
#include "host/proxy/token_bucket.h"
#include "host/supervisor/resolver.h"
#include "protocol/channel.h"

namespace zwrm::supervisor {

struct EgressLimits {
  std::uint64_t egress_rate = 0;   // bytes per second from the guest out; 0 for no cap
  std::uint64_t ingress_rate = 0;  // bytes per second into the guest; 0 for no cap
  std::uint64_t quota_bytes = 0;   // both directions together per run; 0 for no quota
  unsigned max_connections = 0;    // open at once; 0 for no cap
};

class EgressProxy {
 public:
  using Clock = std::chrono::steady_clock;
  // Returns the agent's rules as they are now, so a policy change applies
  // to the next connection of a live run.
  using RulesLoader = std::function<Result<std::vector<proxy::Rule>>()>;
  using Recorder = std::function<void(const std::string& type, nlohmann::json data)>;

  EgressProxy(protocol::Channel& guest, EgressLimits limits, RulesLoader rules, Recorder record,
              std::unique_ptr<Resolver> resolver);
  ~EgressProxy();

  // Handles a guest frame on a guest stream (id >= kFirstGuestStream).
  // Errors are protocol violations by the guest.
  Status on_guest_frame(const protocol::Frame& frame);

  // Appends poll interest; handle_poll takes the same vector and the index
  // of the first entry this object added.
  void add_poll_fds(std::vector<pollfd>& fds);
  void handle_poll(const std::vector<pollfd>& fds, std::size_t first);
  // Ends connections whose phase timed out. Call once per event loop round.
  void handle_timers(Clock::time_point now);
  // When handle_timers next has work: a phase deadline or a bucket refill.
  std::optional<Clock::time_point> next_wakeup(Clock::time_point now);

  // Whether a connection is at work although no bytes move: a lookup or a
  // connect in progress, or a request sent upstream less than
  // kAwaitingResponse ago with no response yet (a long model call).
  bool busy(Clock::time_point now) const;
  // Bytes moved through the proxy so far, both directions.
  std::uint64_t total_bytes() const { return total_bytes_; }
  // When bytes last moved through any connection.
  std::optional<Clock::time_point> last_transfer() const { return last_transfer_; }

  // Ends every connection and records each (at the end of the run).
  void close_all(const std::string& reason);

  static constexpr std::chrono::seconds kRequestTimeout{30};
  static constexpr std::chrono::seconds kResolveTimeout{30};
  static constexpr std::chrono::seconds kConnectTimeout{30};
  // A ClientHello that has begun must be complete this long after its first
  // bytes. Until a tunnel's first bytes are checked, nothing the guest sends
  // goes upstream, however long it waits, while the origin may speak first.
  static constexpr std::chrono::seconds kClientHelloTimeout{10};
  static constexpr std::chrono::minutes kAwaitingResponse{10};
  // Egress events recorded one by one, per second and in a burst; beyond
  // that an egress.suppressed event counts them.
  static constexpr std::uint64_t kEventsPerSecond = 50;
  static constexpr std::uint64_t kEventBurst = 500;

 private:
  struct Connection;

  void open_connection(std::uint32_t stream);
  void read_request(Connection& connection);
  void start_lookup(Connection& connection);
  void on_resolved(const Resolution& resolution);
  void connect_upstream(Connection& connection, const proxy::IpAddress& address);
  void on_connected(Connection& connection);
  void check_client_hello(Connection& connection, bool timed_out);
  void start_relay(Connection& connection);
  void relay(Connection& connection, short revents);
  void deny(Connection& connection, int status, const std::string& reason);
  void finish(Connection& connection, const std::string& reason);
  void erase_finished();
  void record_suppressed();
  std::optional<std::vector<proxy::Rule>> load_rules(Connection& connection);
  // Bytes the run may still move before its quota is used (UINT64_MAX
  // without a quota).
  std::uint64_t quota_left() const;

  protocol::Channel& guest_;
  EgressLimits limits_;
  RulesLoader rules_;
  Recorder record_;
  std::unique_ptr<Resolver> resolver_;
  proxy::TokenBucket egress_bucket_;
  proxy::TokenBucket ingress_bucket_;
  proxy::TokenBucket event_budget_;
  std::uint64_t suppressed_events_ = 0;
  std::map<std::uint32_t, std::unique_ptr<Connection>> connections_;
  std::uint32_t highest_stream_ = 0;
  std::uint64_t total_bytes_ = 0;
  std::uint64_t next_lookup_id_ = 1;
  std::optional<Clock::time_point> last_transfer_;
  // Whether a connection had data to move that a bucket held back, at the
  // last add_poll_fds: only then does a bucket's refill need a wakeup.
  bool send_throttled_ = false;
  bool receive_throttled_ = false;
  std::vector<std::uint32_t> polled_;  // stream of each fd add_poll_fds added; 0 for the resolver
};

}  // namespace zwrm::supervisor
