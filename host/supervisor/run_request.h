// What a client asks a supervisor for, and what the supervisor answers:
// the JSON payloads of kRunRequest, kRunStarted, kRunEnded and
// kStopRequest frames on the client channel. The client (CLI or API) has
// resolved every artifact before it starts the supervisor, so a request
// names files, not choices.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "protocol/message.h"

namespace zwrm::supervisor {

// The maximum timeout, idle timeout or deadline extension a message may
// carry: ten years, as `--timeout` and `zwrm extend` accept. The supervisor
// adds these to clock readings in nanoseconds, which overflow only past
// about 292 years.
inline constexpr std::int64_t kMaxDurationMs = 10LL * 365 * 86400 * 1000;

struct Artifact {
  std::string path;
  std::string digest;  // sha256, recorded in the run's start event
};

struct RunRequest {
  std::string project;
  std::string template_name;
  std::vector<std::string> argv;
  std::vector<std::string> env;  // KEY=VALUE, added to the defaults (PATH, HOME, ...)
  bool root = false;             // run as root instead of the agent user
  bool tty = false;
  // Keep running when the client goes away; its output then goes to the
  // run's output.log. The client makes sure such a run has a deadline.
  bool detach = false;
  // Run without the host cgroup when this host cannot provide one; the run
  // records that its limits were not applied.
  bool allow_no_limits = false;
  // How much of the VMM jail the run insists on: full, partial or off
  // (jail::Mode), checked by the client.
  std::string jail = "full";
  std::uint16_t rows = 0;
  std::uint16_t cols = 0;
  unsigned cpus = 1;
  std::uint64_t memory_mib = 512;
  std::optional<std::int64_t> timeout_ms;
  std::optional<std::int64_t> idle_timeout_ms;
  std::string accel;         // kvm or tcg, already resolved
  std::string accel_reason;
  Artifact kernel;
  Artifact initramfs;
  Artifact image;
  std::string volume;
  // Egress caps of the run (0: none) and host ports forwarded into the guest.
  std::uint64_t egress_rate = 0;
  std::uint64_t ingress_rate = 0;
  std::uint64_t egress_quota = 0;
  unsigned max_connections = 0;
  std::vector<std::string> publish;  // "[ADDR:]HOSTPORT:GUESTPORT", checked by the client
};

// Sent once the main process's exec request is on its way to the guest;
// from then on the client may send stdin, window sizes and signals.
struct RunStarted {
  std::string run_id;
  std::vector<std::string> warnings;  // degraded modes the user should know of, one sentence each
};

struct RunEnded {
  std::string run_id;
  int exit_code = 125;
  std::string cause;   // see state::Run::stop_cause
  std::string detail;  // one sentence for the user; empty for a plain exit
  std::vector<std::string> notes;  // things the user should know, such as a guest OOM kill
};

struct StopRequest {
  std::string reason;  // stopped or interrupted
  std::string detail;
  int signal = 0;      // the signal the client got, which sets the exit code (128 + signal); 0 for none
};

// Builds the guest exec request for the run's main process: the request's
// argv as the agent user (or root) in /workspace, with the default
// environment (PATH, HOME, USER, LOGNAME, LANG) overridden by the request's
// entries, later entries winning over earlier ones for the same name.
protocol::ExecRequest make_exec_request(const RunRequest& request);

// Checks that the request fits the protocol: the exec request and the run
// request must each fit in one frame (64 KiB).
Status check_request_size(const RunRequest& request);

nlohmann::json to_json(const RunRequest& request);
Result<RunRequest> run_request_from_json(const nlohmann::json& json);
nlohmann::json to_json(const RunStarted& started);
Result<RunStarted> run_started_from_json(const nlohmann::json& json);
nlohmann::json to_json(const RunEnded& ended);
Result<RunEnded> run_ended_from_json(const nlohmann::json& json);
struct ExtendRequest {
  std::int64_t by_ms = 0;  // how far to push the hard deadline out
};

// The supervisor's answer to a control request (stop, extend).
struct ControlReply {
  bool ok = true;
  std::string message;                          // an error for the user when !ok
  std::optional<std::int64_t> deadline_in_ms;   // time left to the hard deadline, after an extend
};

nlohmann::json to_json(const ExtendRequest& extend);
Result<ExtendRequest> extend_request_from_json(const nlohmann::json& json);

// Returns the time left to a deadline that is time_left away once extend
// pushes it out. Fails when that is more than kMaxDurationMs, so repeated
// extensions cannot carry the deadline past the clock's range.
Result<std::chrono::milliseconds> extended_time_left(std::chrono::milliseconds time_left, const ExtendRequest& extend);
nlohmann::json to_json(const ControlReply& reply);
Result<ControlReply> control_reply_from_json(const nlohmann::json& json);
nlohmann::json to_json(const StopRequest& stop);
Result<StopRequest> stop_request_from_json(const nlohmann::json& json);

// Parses a frame payload as a JSON object.
Result<nlohmann::json> parse_json_payload(const std::vector<std::uint8_t>& payload);
std::vector<std::uint8_t> json_payload(const nlohmann::json& json);

}  // namespace zwrm::supervisor
