// The client side of a run: frames from the attached client, requests on
// the run's control socket (stop, extend), and a client that goes away.
#include <spdlog/spdlog.h>

#include "host/supervisor/supervisor_impl.h"
#include "state/audit.h"
#include "state/runs.h"

namespace zwrm::supervisor {

using Clock = Supervisor::Clock;
using protocol::FrameType;
using nlohmann::json;

void Supervisor::handle_client_frame(protocol::Frame&& frame) {
  if (frame.type == FrameType::kStopRequest) {
    auto value = parse_json_payload(frame.payload);
    auto request = value ? stop_request_from_json(*value) : tl::unexpected(value.error());
    const bool interrupted = request && request->reason == "interrupted";
    int exit_code = interrupted ? kExitInterrupted : kExitStopped;
    if (request && request->signal >= 1 && request->signal <= 64) exit_code = 128 + request->signal;
    stop({exit_code, interrupted ? "interrupted" : "stopped",
          request && !request->detail.empty() ? request->detail : "the client asked to stop the run"});
    return;
  }
  if (frame.stream != kMainStream || phase_ != Phase::kRunning) return;
  if (frame.type != FrameType::kCredit) note_activity();
  if (auto handled = relay_->on_client_frame(frame); !handled) {
    spdlog::error("client protocol violation: {}", handled.error().message);
    client_gone();
  }
}

std::vector<std::uint8_t> Supervisor::handle_control_frame(const protocol::Frame& frame, const PeerCredentials& peer) {
  ControlReply reply;
  if (frame.type == FrameType::kStopRequest) {
    record("run.stop-request", {{"by_uid", peer.uid}, {"by_pid", peer.pid}}, state::actor_for_uid(peer.uid));
    stop({kExitStopped, "stopped",
          "stopped by `zwrm stop` (uid " + std::to_string(peer.uid) + ", pid " + std::to_string(peer.pid) + ")"});
  } else if (frame.type == FrameType::kExtendRequest) {
    reply = extend_deadline(frame, peer);
  } else {
    reply = {false, std::string("unsupported control request ") + protocol::frame_type_name(frame.type), {}};
  }
  return json_payload(to_json(reply));
}

ControlReply Supervisor::extend_deadline(const protocol::Frame& frame, const PeerCredentials& peer) {
  auto value = parse_json_payload(frame.payload);
  auto request = value ? extend_request_from_json(*value) : tl::unexpected(value.error());
  if (!request || request->by_ms <= 0) return {false, "invalid extend request", {}};
  if (!run_deadline_) {
    return {false, "run " + run_id_ + " has no deadline to extend" +
                       (phase_ >= Phase::kStopping ? std::string(" (it is ending)") : std::string()),
            {}};
  }
  const auto now = Clock::now();
  auto time_left = extended_time_left(std::chrono::duration_cast<std::chrono::milliseconds>(*run_deadline_ - now), *request);
  if (!time_left) return {false, time_left.error().message, {}};
  *run_deadline_ = now + *time_left;
  note_activity();
  const auto left = time_left->count();
  (void)state::set_run_deadline(*db_, run_id_, state::now_unix_ms() + left);
  record("run.extend", {{"by_ms", request->by_ms}, {"deadline_in_ms", left}, {"by_uid", peer.uid}, {"by_pid", peer.pid}},
         state::actor_for_uid(peer.uid));
  spdlog::info("deadline extended by {} ms; {} ms left", request->by_ms, left);
  return {true, "", left};
}

void Supervisor::client_gone() {
  if (!client_) return;
  if (request_.detach) {
    detach_output();
    relay_->detach_client();
    client_.reset();
    spdlog::info("the client detached; output goes to {}/output.log", log_dir_);
    record("run.detach", {{"output_log", log_dir_ + "/output.log"}});
    return;
  }
  spdlog::warn("the client disconnected");
  relay_->detach_client();
  client_.reset();
  stop({kExitZwrmError, "client-lost", "the client disconnected"});
}

void Supervisor::detach_output() {
  auto log = ConsoleLog::create(log_dir_ + "/output.log", kDetachedOutputCap);
  if (!log) {
    spdlog::warn("the detached run's output is dropped: {}", log.error().message);
    return;
  }
  output_log_ = std::move(*log);
  relay_->set_output_sink([this](FrameType, const std::vector<std::uint8_t>& bytes) {
    output_log_->append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  });
}

}  // namespace zwrm::supervisor
