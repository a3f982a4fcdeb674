// The supervisor's run state machine, shared by the files that implement
// it: supervisor.cc (start, event loop, teardown), supervisor_guest.cc
// (the guest side: boot handshake, exec, pongs, VMM exit) and
// supervisor_client.cc (the client and the control socket). Not a public
// interface; supervisor.h is.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/unique_fd.h"
#include "host/cgroup/run_cgroup.h"
#include "host/supervisor/console_log.h"
#include "host/supervisor/control_socket.h"
#include "host/supervisor/egress_proxy.h"
#include "host/supervisor/exec_relay.h"
#include "host/supervisor/exit_codes.h"
#include "host/supervisor/guest_events.h"
#include "host/supervisor/jailed_vmm.h"
#include "host/supervisor/guest_monitor.h"
#include "host/supervisor/published_ports.h"
#include "host/supervisor/run_request.h"
#include "host/sys/paths.h"
#include "protocol/channel.h"
#include "state/database.h"

namespace zwrm::supervisor {


// Under TCG the guest is ready about 1.2 s after QEMU starts on an idle
// 2-core host (bench/boot). A minute leaves room for a loaded host with many
// VMs booting at once.
inline constexpr std::chrono::seconds kBootTimeoutTcg{60};
// The bytes of a detached run's stdout and stderr that output.log keeps.
// The rest is dropped, as for the console.
inline constexpr std::uint64_t kDetachedOutputCap = 64ull << 20;
inline constexpr std::chrono::seconds kBootTimeoutKvm{30};
// The guest init gives processes 2 s to exit after SIGTERM, then syncs; the
// rest is margin before the VMM is killed.
inline constexpr std::chrono::seconds kShutdownGrace{5};
inline constexpr std::chrono::seconds kRequestTimeout{10};
// After the guest side of the control channel closes, QEMU is normally
// exiting; give it this long before killing it.
inline constexpr std::chrono::seconds kExitGrace{2};

enum class Phase { kBooting, kSettingUp, kRunning, kStopping, kEnded };

struct Outcome {
  int exit_code = kExitZwrmError;
  std::string cause;
  std::string detail;
};

class Supervisor {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Supervisor(int client_fd) : client_(std::make_unique<protocol::Channel>(UniqueFd(client_fd))) {}

  int run();

 private:
  Status receive_request();
  Status prepare_run();
  Status apply_limits();
  Status start_vm();
  // Creates the egress proxy and binds the published ports; both need the
  // guest channel.
  Status start_network();
  // Returns the agent's egress rules as stored now.
  Result<std::vector<proxy::Rule>> load_policy();
  void event_loop();
  void teardown();

  void handle_guest_frame(protocol::Frame&& frame);
  void handle_client_frame(protocol::Frame&& frame);
  std::vector<std::uint8_t> handle_control_frame(const protocol::Frame& frame, const PeerCredentials& peer);
  ControlReply extend_deadline(const protocol::Frame& frame, const PeerCredentials& peer);
  void handle_pong(const protocol::Frame& frame);
  void handle_guest_events(const protocol::Frame& frame);
  void note_activity() { monitor_.on_activity(Clock::now()); }
  void read_console();
  void handle_signals();
  void handle_timers();
  // Whether the queue to the guest or to the client is so long that the
  // guest must not be read until it shrinks.
  bool guest_backlogged() const;
  void handle_vmm_exit(int status);
  void send_exec();
  // Decrypts the agent's secrets as KEY=VALUE entries for the exec request.
  Result<std::vector<std::string>> reveal_secrets();
  void client_gone();
  // Sends the main process's output to output.log from now on.
  void detach_output();

  // Starts ending the run. The first cause wins; later calls only escalate.
  void stop(Outcome outcome);
  void kill_vmm();
  // Appends a host event of this run; actor empty means the supervisor's
  // own user.
  void record(const std::string& type, nlohmann::json data, const std::string& actor = {});
  void sample_memory();
  int poll_timeout_ms() const;

  std::unique_ptr<protocol::Channel> client_;
  std::unique_ptr<protocol::Channel> guest_;
  std::unique_ptr<ExecRelay> relay_;
  std::unique_ptr<EgressProxy> egress_;
  std::unique_ptr<PublishedPorts> published_;
  std::unique_ptr<GuestEventLog> guest_events_;
  std::optional<Clock::time_point> egress_activity_seen_;
  std::optional<ConsoleLog> console_;
  std::optional<ConsoleLog> output_log_;  // a detached run's stdout and stderr
  std::optional<ControlSocket> control_;
  UniqueFd console_fd_;
  UniqueFd signal_fd_;
  UniqueFd volume_;  // opened read-write and locked for the whole run; the VMM gets it
  BootFiles boot_files_;
  UniqueFd vmm_log_;

  sys::Paths paths_;
  std::unique_ptr<state::Database> db_;
  RunRequest request_;
  std::string run_id_;
  bool run_recorded_ = false;  // the runs row exists, so the end must be recorded too
  std::vector<std::string> warnings_;  // sent to the client with kRunStarted
  std::string run_dir_;
  std::string log_dir_;
  pid_t vmm_pid_ = -1;
  bool guest_open_ = true;
  Phase phase_ = Phase::kBooting;
  std::optional<Outcome> outcome_;
  Clock::time_point started_at_ = Clock::now();
  std::optional<Clock::time_point> boot_deadline_;
  std::optional<Clock::time_point> run_deadline_;
  std::optional<Clock::time_point> kill_deadline_;
  std::optional<Clock::time_point> exec_started_at_;
  GuestMonitor monitor_{std::nullopt, 1};
  std::optional<cgroup::RunCgroup> cgroup_;
  std::uint64_t peak_memory_bytes_ = 0;
};

}  // namespace zwrm::supervisor
