// The guest side of a run: the boot handshake, the exec request with the
// agent's secrets, the guest's replies and the VMM's exit.
#include <sys/wait.h>

#include <cstring>

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include "host/cgroup/limits.h"
#include "host/supervisor/supervisor_impl.h"
#include "host/sys/files.h"
#include "host/sys/units.h"
#include "protocol/message.h"
#include "state/secrets.h"

namespace zwrm::supervisor {

using Clock = Supervisor::Clock;
using protocol::FrameType;
using nlohmann::json;

Result<std::vector<std::string>> Supervisor::reveal_secrets() {
  auto names = state::list_secrets(*db_, request_.project);
  if (!names) return tl::unexpected(names.error());
  std::vector<std::string> entries;
  if (names->empty()) return entries;  // no key file needed
  auto store = state::SecretStore::open(*db_);
  if (!store) return tl::unexpected(store.error());
  auto secrets = store->reveal_all(request_.project);
  if (!secrets) return tl::unexpected(secrets.error());
  for (auto& [name, value] : *secrets) {
    entries.push_back(name + "=" + value);
    OPENSSL_cleanse(value.data(), value.size());
  }
  return entries;
}

void Supervisor::send_exec() {
  protocol::ExecRequest exec = make_exec_request(request_);
  auto secrets = reveal_secrets();
  if (!secrets) {
    stop({kExitZwrmError, "failed", "cannot deliver the agent's secrets: " + secrets.error().message});
    return;
  }
  json secret_names = json::array();
  for (const std::string& entry : *secrets) secret_names.push_back(entry.substr(0, entry.find('=')));
  exec.secret_env = std::move(*secrets);

  auto payload = protocol::encode(exec);
  // The plaintext leaves this process only inside the frame; wipe the
  // copies that stay behind.
  for (std::string& entry : exec.secret_env) OPENSSL_cleanse(entry.data(), entry.size());
  if (payload.size() > protocol::kMaxPayload) {
    OPENSSL_cleanse(payload.data(), payload.size());
    stop({kExitZwrmError, "failed",
          "the command, its environment and the agent's secrets exceed the 64 KiB an exec request can carry"});
    return;
  }
  guest_->send(FrameType::kExec, kMainStream, payload);
  OPENSSL_cleanse(payload.data(), payload.size());
  exec_started_at_ = Clock::now();
  // Only now may the client send stdin, window sizes and signals: the guest
  // has the process stream they belong to.
  if (client_) client_->send(FrameType::kRunStarted, 0, json_payload(to_json(RunStarted{run_id_, warnings_})));
  record("run.exec", {{"stream", kMainStream}, {"argv", exec.argv}, {"user", request_.root ? "root" : "agent"},
                      {"cwd", exec.cwd}, {"tty", exec.tty}, {"secret_names", secret_names}});
}

void Supervisor::handle_guest_frame(protocol::Frame&& frame) {
  monitor_.on_guest_frame(Clock::now());
  if (frame.stream != protocol::kSessionStream && phase_ >= Phase::kRunning && frame.stream != kMainStream) {
    Status handled = frame.stream >= protocol::kFirstGuestStream ? egress_->on_guest_frame(frame)
                     : published_->owns(frame.stream)          ? published_->on_guest_frame(frame)
                                                                : fail("the guest sent a frame on unknown stream " +
                                                                       std::to_string(frame.stream));
    if (!handled) stop({kExitZwrmError, "protocol-error", handled.error().message});
    return;
  }
  if (frame.stream != protocol::kSessionStream) {
    if (frame.stream != kMainStream || phase_ < Phase::kRunning) {
      stop({kExitZwrmError, "protocol-error", "the guest sent a frame on unknown stream " + std::to_string(frame.stream)});
      return;
    }
    if (auto handled = relay_->on_guest_frame(frame); !handled) {
      stop({kExitZwrmError, "protocol-error", handled.error().message});
      return;
    }
    if (frame.type == FrameType::kStdout || frame.type == FrameType::kStderr) note_activity();
    if (frame.type == FrameType::kExit && relay_->exit_status()) {
      const protocol::ExitStatus& status = *relay_->exit_status();
      const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - *exec_started_at_);
      record("run.exit", {{"stream", kMainStream}, {"status", status.shell_status()}, {"duration_ms", duration.count()},
                          {"message", status.message}});
      stop({status.shell_status(), "exit", status.message});
    }
    return;
  }

  switch (frame.type) {
    case FrameType::kPong:
      handle_pong(frame);
      return;
    case FrameType::kGuestEvents:
      handle_guest_events(frame);
      return;
    case FrameType::kHello: {
      auto hello = protocol::decode_hello(frame.payload);
      if (!hello || hello->protocol_version != protocol::kProtocolVersion || phase_ != Phase::kBooting) {
        stop({kExitZwrmError, "protocol-error", "the guest init speaks another protocol version; rebuild zwrm"});
        return;
      }
      const std::string seed = sys::random_bytes(32);
      protocol::Setup setup;
      setup.realtime_ns = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
      setup.entropy.assign(seed.begin(), seed.end());
      setup.hostname = request_.project;
      guest_->send(FrameType::kSetup, protocol::kSessionStream, protocol::encode(setup));
      phase_ = Phase::kSettingUp;
      return;
    }
    case FrameType::kReady: {
      auto ready = protocol::decode_ready(frame.payload);
      if (!ready || phase_ != Phase::kSettingUp) {
        stop({kExitZwrmError, "protocol-error", "the guest sent an unexpected ready frame"});
        return;
      }
      spdlog::info("guest ready after {} ms of guest uptime", ready->uptime_ms);
      phase_ = Phase::kRunning;
      boot_deadline_.reset();
      monitor_.start(Clock::now());
      sample_memory();
      published_->start();
      send_exec();
      return;
    }
    case FrameType::kFatal: {
      auto fatal = protocol::decode_fatal(frame.payload);
      const std::string message = fatal ? fatal->message : "an unreadable error";
      stop({kExitZwrmError, "boot-failed", "the guest failed to boot: " + message});
      return;
    }
    default:
      stop({kExitZwrmError, "protocol-error",
            std::string("the guest sent an unexpected ") + protocol::frame_type_name(frame.type) + " frame"});
  }
}

void Supervisor::handle_pong(const protocol::Frame& frame) {
  auto pong = protocol::decode_pong(frame.payload);
  if (!pong) {
    stop({kExitZwrmError, "protocol-error", pong.error().message});
    return;
  }
  monitor_.on_pong(pong->cpu_busy_ms, Clock::now());
}

void Supervisor::handle_guest_events(const protocol::Frame& frame) {
  // The init sends events only after ready, and may until it powers off.
  if (phase_ < Phase::kRunning) {
    stop({kExitZwrmError, "protocol-error", "the guest sent guest events before it was ready"});
    return;
  }
  if (auto recorded = guest_events_->on_batch(frame.payload, Clock::now()); !recorded) {
    stop({kExitZwrmError, "protocol-error", recorded.error().message});
  }
}

void Supervisor::handle_vmm_exit(int status) {
  vmm_pid_ = -1;
  const bool expected = phase_ == Phase::kStopping;
  phase_ = Phase::kEnded;
  if (expected) return;
  if (console_ && console_->saw_kernel_panic()) {
    stop({kExitZwrmError, "guest-crash", "the guest kernel panicked; see `zwrm logs " + run_id_ + "`"});
  } else if (WIFSIGNALED(status)) {
    const bool out_of_memory = cgroup_ && cgroup_->usage() && cgroup_->usage()->oom_kills > 0;
    stop({kExitZwrmError, "vmm-crash",
          out_of_memory ? "the host's OOM killer ended the VMM at the run's memory ceiling of " +
                              sys::format_size(cgroup::vmm_memory_ceiling(request_.memory_mib << 20))
                        : std::string("the VMM was killed by signal ") + strsignal(WTERMSIG(status))});
  } else if (WEXITSTATUS(status) != 0) {
    stop({kExitZwrmError, "vmm-crash",
          "the VMM exited with status " + std::to_string(WEXITSTATUS(status)) + "; see " + log_dir_ + "/vmm.log"});
  } else {
    stop({kExitZwrmError, "guest-poweroff", "the guest rebooted or powered off before the command ended"});
  }
}

}  // namespace zwrm::supervisor
