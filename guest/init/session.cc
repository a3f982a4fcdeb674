#include "guest/init/session.h"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "guest/init/audit_events.h"
#include "guest/init/log.h"
#include "guest/init/spawn.h"
#include "guest/init/tcp_streams.h"
#include "protocol/flow.h"
#include "protocol/message.h"

namespace zwrm::guest {

namespace {

using protocol::Bytes;
using protocol::FrameType;

// After a process exits, output still in its pipes is forwarded; once
// nothing has arrived for this long the stream is closed, even if a
// background child still holds the pipe open.
constexpr std::int64_t kDrainIdleMs = 200;
constexpr std::size_t kReadChunk = 32 * 1024;
// How long the final frames (the last audit events) may take to leave once
// the host asked for shutdown.
constexpr std::int64_t kShutdownFlushMs = 1000;

// Returns the guest's busy CPU time since boot from the first line of
// /proc/stat ("cpu user nice system idle iowait irq softirq ..."), in ms.
std::uint64_t cpu_busy_ms() {
  FILE* file = std::fopen("/proc/stat", "re");
  if (file == nullptr) return 0;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  const int fields = std::fscanf(file, "cpu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system, &idle,
                                 &iowait, &irq, &softirq);
  std::fclose(file);
  if (fields != 7) return 0;
  const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  return (user + nice + system + irq + softirq) * 1000 / static_cast<unsigned long long>(ticks_per_second);
}

std::int64_t now_ms() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
}

struct Output {
  UniqueFd fd;
  FrameType kind;
  protocol::SendCredit credit;
};

struct Process {
  std::uint32_t stream = 0;
  pid_t pid = -1;
  bool tty = false;
  UniqueFd stdin_fd;
  std::string stdin_buffer;
  bool stdin_eof = false;
  protocol::ReceiveWindow stdin_window;
  Output out{UniqueFd(), FrameType::kStdout, {}};
  Output err{UniqueFd(), FrameType::kStderr, {}};
  bool exited = false;
  protocol::ExitStatus status;
  std::int64_t last_activity_ms = 0;
};

class Session {
 public:
  explicit Session(protocol::Channel& channel) : channel_(channel), tcp_(channel) {}

  Status run();

 private:
  Status handle_frame(protocol::Frame&& frame);
  Status handle_exec(std::uint32_t stream, const protocol::Frame& frame);
  Status handle_stream_frame(Process& process, const protocol::Frame& frame);
  void reap_children();
  void read_output(Process& process, Output& output);
  void write_stdin(Process& process);
  void close_output(Process& process, Output& output);
  void finish_exited_processes();
  void send_audit_events();
  void flush_before_shutdown();
  void send(FrameType type, std::uint32_t stream, const Bytes& payload) { channel_.send(type, stream, payload); }

  protocol::Channel& channel_;
  TcpStreams tcp_;
  UniqueFd signal_fd_;
  std::unique_ptr<AuditEvents> audit_events_;
  std::map<std::uint32_t, std::unique_ptr<Process>> processes_;
  bool shutdown_ = false;
};

Status Session::run() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  signal_fd_.reset(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd_) return fail_errno("cannot create a signalfd");
  // Without the proxy port, processes get "connection refused" from the
  // proxy address, which is the right failure: nothing else is reachable.
  if (auto listening = tcp_.listen_proxy(); !listening) log_line("%s", listening.error().message.c_str());
  // Started before the first exec request is read, so its process is seen.
  audit_events_ = AuditEvents::start("/workspace");

  while (!shutdown_) {
    // Rebuilt every round: a handful of descriptors, and interest depends on
    // credit and queue state that changes with every frame.
    std::vector<pollfd> fds;
    std::vector<std::pair<Process*, Output*>> owners;
    std::vector<Process*> stdin_owners;
    const bool channel_has_room = channel_.pending_bytes() < protocol::Channel::kMaxPendingBytes;
    fds.push_back({channel_.fd(), static_cast<short>(POLLIN | (channel_.has_pending() ? POLLOUT : 0)), 0});
    fds.push_back({signal_fd_.get(), POLLIN, 0});
    // While the channel is full, audit events wait in the collector, which
    // counts what it cannot queue as dropped.
    fds.push_back({audit_events_ && channel_has_room ? audit_events_->ready_fd() : -1, POLLIN, 0});
    const std::size_t first_output = fds.size();
    for (auto& [stream, process] : processes_) {
      for (Output* output : {&process->out, &process->err}) {
        if (output->fd && output->credit.available() > 0 && channel_has_room) {
          fds.push_back({output->fd.get(), POLLIN, 0});
          owners.emplace_back(process.get(), output);
        }
      }
    }
    const std::size_t first_stdin = fds.size();
    for (auto& [stream, process] : processes_) {
      if (process->stdin_fd && (!process->stdin_buffer.empty() || process->stdin_eof)) {
        fds.push_back({process->stdin_fd.get(), POLLOUT, 0});
        stdin_owners.push_back(process.get());
      }
    }

    const std::size_t first_tcp = fds.size();
    tcp_.add_poll_fds(fds);

    const bool draining = std::any_of(processes_.begin(), processes_.end(),
                                      [](const auto& entry) { return entry.second->exited; });
    if (::poll(fds.data(), fds.size(), draining ? 50 : -1) < 0 && errno != EINTR) {
      return fail_errno("poll failed");
    }

    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      auto open = channel_.receive([this](protocol::Frame&& frame) { return handle_frame(std::move(frame)); });
      if (!open) return tl::unexpected(open.error());
      if (!*open || (fds[0].revents & POLLHUP)) {
        log_line("the host closed the control channel");
        return {};
      }
    }
    if (fds[1].revents & POLLIN) reap_children();
    if (fds[2].revents & POLLIN) send_audit_events();
    for (std::size_t i = first_output; i < first_stdin; ++i) {
      if (fds[i].revents) read_output(*owners[i - first_output].first, *owners[i - first_output].second);
    }
    for (std::size_t i = first_stdin; i < first_tcp; ++i) {
      if (fds[i].revents) write_stdin(*stdin_owners[i - first_stdin]);
    }
    tcp_.handle_poll(fds, first_tcp);
    finish_exited_processes();
    if (auto flushed = channel_.flush(); !flushed) return flushed;
  }
  flush_before_shutdown();
  return {};
}

void Session::send_audit_events() {
  if (!audit_events_) return;
  for (const Bytes& payload : audit_events_->take_batches()) {
    channel_.send(FrameType::kGuestEvents, protocol::kSessionStream, payload);
  }
}

void Session::flush_before_shutdown() {
  const std::int64_t deadline = now_ms() + kShutdownFlushMs;
  while (channel_.has_pending() && now_ms() < deadline) {
    pollfd fd{channel_.fd(), POLLOUT, 0};
    ::poll(&fd, 1, static_cast<int>(deadline - now_ms()));
    if (!channel_.flush()) return;
  }
}

Status Session::handle_frame(protocol::Frame&& frame) {
  if (frame.stream == protocol::kSessionStream) {
    if (frame.type == FrameType::kShutdown) {
      shutdown_ = true;
      tcp_.close_all();
      // What the processes did up to now is reported; what happens while
      // the init ends them is not.
      send_audit_events();
      return {};
    }
    if (frame.type == FrameType::kPing) {
      channel_.send(FrameType::kPong, protocol::kSessionStream, protocol::encode(protocol::Pong{cpu_busy_ms()}));
      return {};
    }
    return fail(std::string("protocol violation: unexpected ") + protocol::frame_type_name(frame.type) +
                " frame on the session stream");
  }
  if (tcp_.owns(frame)) return tcp_.on_frame(frame);
  if (frame.type == FrameType::kExec) return handle_exec(frame.stream, frame);
  auto found = processes_.find(frame.stream);
  // Frames for a process that already ended are late, not wrong: the host
  // may have sent stdin or a signal before it saw the exit.
  if (found == processes_.end()) return {};
  return handle_stream_frame(*found->second, frame);
}

Status Session::handle_exec(std::uint32_t stream, const protocol::Frame& frame) {
  if (processes_.count(stream) != 0) return fail("protocol violation: stream " + std::to_string(stream) + " reused");
  auto request = protocol::decode_exec(frame.payload);
  if (!request) return tl::unexpected(request.error());
  log_line("exec on stream %u: %s (uid %u)", stream, request->argv[0].c_str(), request->uid);

  auto spawned = spawn_process(*request);
  if (!spawned) {
    log_line("exec on stream %u failed: %s", stream, spawned.error().message.c_str());
    send(FrameType::kExit, stream, protocol::encode(spawned.error()));
    return {};
  }
  auto process = std::make_unique<Process>();
  process->stream = stream;
  process->pid = spawned->pid;
  process->tty = request->tty;
  process->stdin_fd = std::move(spawned->stdin_fd);
  process->out.fd = std::move(spawned->stdout_fd);
  process->err.fd = std::move(spawned->stderr_fd);
  process->last_activity_ms = now_ms();
  send(FrameType::kStarted, stream, protocol::encode(protocol::Started{static_cast<std::uint32_t>(spawned->pid)}));
  if (!process->err.fd) send(FrameType::kEof, stream, protocol::encode(protocol::Eof{FrameType::kStderr}));
  processes_[stream] = std::move(process);
  return {};
}

Status Session::handle_stream_frame(Process& process, const protocol::Frame& frame) {
  switch (frame.type) {
    case FrameType::kStdin: {
      if (auto received = process.stdin_window.receive(frame.payload.size()); !received) return received;
      if (process.stdin_eof) return fail("protocol violation: stdin data after end of stdin");
      process.stdin_buffer.append(frame.payload.begin(), frame.payload.end());
      return {};
    }
    case FrameType::kEof: {
      auto eof = protocol::decode_eof(frame.payload);
      if (!eof) return tl::unexpected(eof.error());
      if (eof->kind == FrameType::kStdin) {
        process.stdin_eof = true;
      } else if (!process.tty) {
        // The host's reader of this output is gone: close the pipe so the
        // process gets SIGPIPE or EPIPE, as with a local `| head`.
        close_output(process, eof->kind == FrameType::kStdout ? process.out : process.err);
      }
      return {};
    }
    case FrameType::kCredit: {
      auto credit = protocol::decode_credit(frame.payload);
      if (!credit) return tl::unexpected(credit.error());
      process.last_activity_ms = now_ms();
      if (credit->kind == FrameType::kStdout) return process.out.credit.grant(credit->bytes);
      if (credit->kind == FrameType::kStderr) return process.err.credit.grant(credit->bytes);
      return fail("protocol violation: credit for stdin sent to the guest");
    }
    case FrameType::kWindow: {
      auto window = protocol::decode_window(frame.payload);
      if (!window) return tl::unexpected(window.error());
      if (process.tty && process.out.fd) {
        winsize size{window->rows, window->cols, 0, 0};
        ::ioctl(process.out.fd.get(), TIOCSWINSZ, &size);
      }
      return {};
    }
    case FrameType::kSignal: {
      auto signal = protocol::decode_signal(frame.payload);
      if (!signal) return tl::unexpected(signal.error());
      // The process leads its own session and process group; signal the
      // group as a terminal would.
      if (!process.exited) ::kill(-process.pid, static_cast<int>(signal->number));
      return {};
    }
    default:
      return fail(std::string("protocol violation: unexpected ") + protocol::frame_type_name(frame.type) +
                  " frame on a process stream");
  }
}

void Session::reap_children() {
  signalfd_siginfo info;
  while (::read(signal_fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
  }
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    for (auto& [stream, process] : processes_) {
      if (process->pid != pid || process->exited) continue;
      process->exited = true;
      process->last_activity_ms = now_ms();
      if (WIFSIGNALED(status)) {
        process->status = {protocol::ExitStatus::Kind::kSignaled, WTERMSIG(status), ""};
      } else {
        process->status = {protocol::ExitStatus::Kind::kExited, WEXITSTATUS(status), ""};
      }
    }
  }
}

void Session::read_output(Process& process, Output& output) {
  std::uint8_t buffer[kReadChunk];
  const std::size_t limit = std::min<std::size_t>(sizeof buffer, output.credit.available());
  const ssize_t count = ::read(output.fd.get(), buffer, limit);
  if (count > 0) {
    output.credit.spend(static_cast<std::size_t>(count));
    channel_.send(output.kind, process.stream, {buffer, static_cast<std::size_t>(count)});
    process.last_activity_ms = now_ms();
    return;
  }
  if (count < 0 && (errno == EAGAIN || errno == EINTR)) return;
  // 0 is end of file for a pipe; a terminal master reports EIO once every
  // holder of the slave side has closed it.
  close_output(process, output);
}

void Session::close_output(Process& process, Output& output) {
  if (!output.fd) return;
  output.fd.reset();
  send(FrameType::kEof, process.stream, protocol::encode(protocol::Eof{output.kind}));
  // The terminal's input side is the same device: once output ended, so did input.
  if (process.tty) process.stdin_fd.reset();
}

void Session::write_stdin(Process& process) {
  if (!process.stdin_buffer.empty()) {
    const ssize_t count = ::write(process.stdin_fd.get(), process.stdin_buffer.data(), process.stdin_buffer.size());
    if (count < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (count < 0) {
      // The process closed its stdin; what it did not read is dropped.
      process.stdin_buffer.clear();
      process.stdin_fd.reset();
      return;
    }
    process.stdin_buffer.erase(0, static_cast<std::size_t>(count));
    std::uint32_t grant = process.stdin_window.consume(static_cast<std::size_t>(count));
    if (process.stdin_buffer.empty()) grant += process.stdin_window.flush_credit();
    if (grant > 0) send(FrameType::kCredit, process.stream, protocol::encode(protocol::Credit{FrameType::kStdin, grant}));
  }
  if (process.stdin_buffer.empty() && process.stdin_eof && !process.tty) process.stdin_fd.reset();
}

void Session::finish_exited_processes() {
  const std::int64_t now = now_ms();
  for (auto it = processes_.begin(); it != processes_.end();) {
    Process& process = *it->second;
    const bool outputs_closed = !process.out.fd && !process.err.fd;
    // Output held back by the host's flow control is not idle: wait for credit.
    const bool blocked = (process.out.fd && process.out.credit.available() == 0) ||
                         (process.err.fd && process.err.credit.available() == 0) ||
                         channel_.pending_bytes() >= protocol::Channel::kMaxPendingBytes;
    if (!process.exited || (!outputs_closed && (blocked || now - process.last_activity_ms < kDrainIdleMs))) {
      ++it;
      continue;
    }
    close_output(process, process.out);
    close_output(process, process.err);
    send(FrameType::kExit, process.stream, protocol::encode(process.status));
    log_line("stream %u ended with status %d", process.stream, process.status.shell_status());
    it = processes_.erase(it);
  }
}

}  // namespace

Status run_session(protocol::Channel& channel) {
  Session session(channel);
  return session.run();
}

}  // namespace zwrm::guest
