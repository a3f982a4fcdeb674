// zwrm-init: PID 1 of every zwrm guest, started by the kernel from the
// initramfs.
//
// Boot: mount /dev, /proc, /sys; open the control port and greet the host;
// apply its setup (clock, entropy, hostname); mount the template root and
// the volume and switch into them; report ready; then serve exec requests
// until the host asks to shut down.
#include <signal.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>

#include "guest/init/boot.h"
#include "guest/init/log.h"
#include "guest/init/session.h"
#include "guest/init/shutdown.h"
#include "guest/init/tcp_streams.h"
#include "protocol/channel.h"
#include "protocol/message.h"

#ifndef ZWRM_VERSION
#define ZWRM_VERSION "dev"
#endif

namespace {

using namespace zwrm;
using protocol::FrameType;

constexpr int kShutdownGraceMs = 2000;

void prepare_process_state() {
  // The kernel hands init a few variables (HOME, TERM); nothing of the
  // init's own environment may reach /proc/1/environ or agent processes.
  ::clearenv();
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  // Every egress connection takes one descriptor in the init. Processes it
  // starts get the usual soft limit back (spawn.cc).
  const rlimit files{guest::kInitOpenFiles, guest::kInitOpenFiles};
  ::setrlimit(RLIMIT_NOFILE, &files);
}

std::uint64_t uptime_ms() {
  timespec now{};
  ::clock_gettime(CLOCK_BOOTTIME, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000 + static_cast<std::uint64_t>(now.tv_nsec) / 1'000'000;
}

// Sends a fatal error to the host (when a channel exists), logs it and
// powers off.
[[noreturn]] void fail_boot(protocol::Channel* channel, const Error& error) {
  guest::log_line("boot failed: %s", error.message.c_str());
  if (channel != nullptr) {
    channel->send(FrameType::kFatal, protocol::kSessionStream, protocol::encode(protocol::Fatal{error.message}));
    for (int attempt = 0; attempt < 100 && channel->has_pending(); ++attempt) {
      if (!channel->flush()) break;
      ::usleep(10'000);
    }
  }
  guest::power_off(0);
}

// Blocks until one frame of the expected type arrives on the session stream.
Result<protocol::Frame> wait_for_frame(protocol::Channel& channel, FrameType expected) {
  std::optional<protocol::Frame> received;
  while (!received) {
    auto open = channel.receive([&](protocol::Frame&& frame) -> Status {
      if (frame.stream != protocol::kSessionStream || frame.type != expected) {
        return fail(std::string("protocol violation: expected ") + protocol::frame_type_name(expected) +
                    ", got " + protocol::frame_type_name(frame.type));
      }
      received = std::move(frame);
      return {};
    });
    if (!open) return tl::unexpected(open.error());
    if (!*open) return fail("the host closed the control channel during boot");
    if (!received) ::usleep(1000);
  }
  return std::move(*received);
}

Status flush_blocking(protocol::Channel& channel) {
  while (channel.has_pending()) {
    if (auto flushed = channel.flush(); !flushed) return flushed;
    if (channel.has_pending()) ::usleep(1000);
  }
  return {};
}

}  // namespace

int main() {
  prepare_process_state();
  if (auto mounted = guest::mount_early_file_systems(); !mounted) fail_boot(nullptr, mounted.error());

  // A probe boot only proves the VMM and kernel work with this accelerator.
  if (guest::kernel_cmdline_has("zwrm.probe")) {
    guest::log_line("probe ok");
    guest::power_off(0);
  }

  auto port = guest::open_control_port();
  if (!port) fail_boot(nullptr, port.error());
  protocol::Channel channel(std::move(*port));

  channel.send(FrameType::kHello, protocol::kSessionStream, protocol::encode(protocol::Hello{protocol::kProtocolVersion, ZWRM_VERSION}));
  if (auto flushed = flush_blocking(channel); !flushed) fail_boot(nullptr, flushed.error());

  auto setup_frame = wait_for_frame(channel, FrameType::kSetup);
  if (!setup_frame) fail_boot(&channel, setup_frame.error());
  auto setup = protocol::decode_setup(setup_frame->payload);
  if (!setup) fail_boot(&channel, setup.error());
  if (auto applied = guest::apply_setup(*setup); !applied) fail_boot(&channel, applied.error());
  if (auto mounted = guest::mount_root_and_switch(); !mounted) fail_boot(&channel, mounted.error());

  channel.send(FrameType::kReady, protocol::kSessionStream, protocol::encode(protocol::Ready{uptime_ms()}));
  if (auto session = guest::run_session(channel); !session) {
    guest::log_line("control channel failed: %s", session.error().message.c_str());
  }
  guest::power_off(kShutdownGraceMs);
}
