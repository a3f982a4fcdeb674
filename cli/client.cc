#include "cli/client.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>

#include "cli/terminal.h"
#include "common/printable.h"
#include "host/supervisor/exec_relay.h"
#include "host/supervisor/exit_codes.h"
#include "host/sys/paths.h"
#include "state/database.h"
#include "state/runs.h"
#include "protocol/channel.h"
#include "protocol/flow.h"
#include "protocol/message.h"

namespace zwrm::cli {

namespace {

using Clock = std::chrono::steady_clock;
using protocol::FrameType;
using supervisor::kMainStream;

// After the first Ctrl-C or SIGTERM is passed to the command, the command
// gets this long to exit before the run is stopped.
constexpr std::chrono::seconds kSignalGrace{5};

void print_error(const std::string& message) { std::fprintf(stderr, "zwrm: error: %s\n", message.c_str()); }

// Starts `zwrm __supervise` in its own session with the socket as fd 3, so
// that a Ctrl-C at the terminal reaches only the client, which decides what
// to forward.
Result<pid_t> start_supervisor(int socket_fd) {
  const std::string self = sys::executable_path();
  const pid_t pid = ::fork();
  if (pid < 0) return fail_errno("cannot start the supervisor");
  if (pid > 0) return pid;

  ::setsid();
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  const int null_fd = ::open("/dev/null", O_RDWR);
  ::dup2(null_fd, 0);
  ::dup2(null_fd, 1);
  ::dup2(null_fd, 2);
  ::dup2(socket_fd, 3);
  ::syscall(SYS_close_range, 4, ~0U, 0);
  const char* argv[] = {"zwrm", "__supervise", nullptr};
  ::execv(self.c_str(), const_cast<char* const*>(argv));
  ::_exit(127);
}

bool write_all(int fd, const std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    const ssize_t count = ::write(fd, data, size);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) return false;
    data += count;
    size -= static_cast<std::size_t>(count);
  }
  return true;
}

class ClientSession {
 public:
  ClientSession(protocol::Channel& channel, const supervisor::RunRequest& request)
      : channel_(channel), request_(request) {}

  int run();
  // The run's id, once the supervisor reported the run's end.
  std::string run_id() const { return ended_ ? ended_->run_id : std::string(); }

 private:
  Status handle_frame(protocol::Frame&& frame);
  // Reads what the supervisor sent before its end of the socket closed.
  void drain();
  // Fills ended_ from the run's row when the connection ended without a
  // run-ended frame but the run did end (the client was stopped or too slow
  // while the supervisor gave up delivering it).
  void recover_end_from_database();
  void write_output(const protocol::Frame& frame);
  void read_stdin();
  void handle_signals();
  void request_stop(const char* reason, const std::string& detail, int signal = 0);

  protocol::Channel& channel_;
  const supervisor::RunRequest& request_;
  UniqueFd signal_fd_;
  bool started_ = false;
  std::string run_id_;  // from kRunStarted
  bool detached_ = false;
  bool stdin_open_ = true;
  bool stdout_broken_ = false;
  protocol::SendCredit stdin_credit_;
  protocol::ReceiveWindow stdout_window_;
  protocol::ReceiveWindow stderr_window_;
  std::optional<Clock::time_point> stop_at_;
  int forwarded_signal_ = 0;  // the first SIGINT or SIGTERM passed to the command
  bool stop_requested_ = false;
  std::optional<supervisor::RunEnded> ended_;
};

void ClientSession::request_stop(const char* reason, const std::string& detail, int signal) {
  if (stop_requested_) return;
  stop_requested_ = true;
  channel_.send(FrameType::kStopRequest, 0,
                supervisor::json_payload(supervisor::to_json(supervisor::StopRequest{reason, detail, signal})));
}

void ClientSession::write_output(const protocol::Frame& frame) {
  const bool is_stdout = frame.type == FrameType::kStdout;
  protocol::ReceiveWindow& window = is_stdout ? stdout_window_ : stderr_window_;
  if (!window.receive(frame.payload.size())) {
    print_error("the supervisor sent output beyond its credit");
    request_stop("stopped", "the client detected a protocol violation");
    return;
  }
  // A closed stdout (`zwrm run -- yes | head -1`) is passed on to the guest,
  // which closes the command's stdout pipe, so the command gets SIGPIPE as
  // it would locally. Output already on its way is dropped.
  if (is_stdout && !stdout_broken_) {
    stdout_broken_ = !write_all(STDOUT_FILENO, frame.payload.data(), frame.payload.size());
    if (stdout_broken_) {
      channel_.send(FrameType::kEof, kMainStream, protocol::encode(protocol::Eof{FrameType::kStdout}));
    }
  } else if (!is_stdout) {
    (void)write_all(STDERR_FILENO, frame.payload.data(), frame.payload.size());
  }
  if (const std::uint32_t grant = window.consume(frame.payload.size()); grant > 0) {
    channel_.send(FrameType::kCredit, kMainStream, protocol::encode(protocol::Credit{frame.type, grant}));
  }
}

Status ClientSession::handle_frame(protocol::Frame&& frame) {
  switch (frame.type) {
    case FrameType::kRunStarted: {
      started_ = true;
      auto value = supervisor::parse_json_payload(frame.payload);
      if (!value) return tl::unexpected(value.error());
      auto started = supervisor::run_started_from_json(*value);
      if (!started) return tl::unexpected(started.error());
      run_id_ = started->run_id;
      if (request_.detach) {
        // The command gets no stdin, and the run goes on without this client.
        channel_.send(FrameType::kEof, kMainStream, protocol::encode(protocol::Eof{FrameType::kStdin}));
        std::printf("%s\n", run_id_.c_str());
        std::fflush(stdout);
        detached_ = true;
      }
      for (const std::string& warning : started->warnings) {
        std::fprintf(stderr, "zwrm: warning: %s\n", printable(warning).c_str());
      }
      // The terminal may have been resized while the VM booted.
      if (request_.tty) {
        if (auto size = window_size(STDIN_FILENO)) {
          channel_.send(FrameType::kWindow, kMainStream, protocol::encode(protocol::Window{size->rows, size->cols}));
        }
      }
      return {};
    }
    case FrameType::kStdout:
    case FrameType::kStderr:
      write_output(frame);
      return {};
    case FrameType::kCredit: {
      auto credit = protocol::decode_credit(frame.payload);
      if (!credit || credit->kind != FrameType::kStdin) return fail("the supervisor sent an invalid credit frame");
      return stdin_credit_.grant(credit->bytes);
    }
    case FrameType::kEof:
      // Output streams may end before the process; the run's end comes as
      // kRunEnded. Unacknowledged credit no longer matters.
      return {};
    case FrameType::kNotice:
      std::fprintf(stderr, "zwrm: %.*s\n", static_cast<int>(frame.payload.size()),
                   reinterpret_cast<const char*>(frame.payload.data()));
      return {};
    case FrameType::kRunEnded: {
      auto value = supervisor::parse_json_payload(frame.payload);
      if (!value) return tl::unexpected(value.error());
      auto ended = supervisor::run_ended_from_json(*value);
      if (!ended) return tl::unexpected(ended.error());
      ended_ = std::move(*ended);
      return {};
    }
    default:
      return fail(std::string("the supervisor sent an unexpected ") + protocol::frame_type_name(frame.type) + " frame");
  }
}

void ClientSession::read_stdin() {
  std::uint8_t buffer[32 * 1024];
  const std::size_t limit = std::min<std::size_t>(sizeof buffer, stdin_credit_.available());
  const ssize_t count = ::read(STDIN_FILENO, buffer, limit);
  if (count < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (count <= 0) {
    stdin_open_ = false;
    channel_.send(FrameType::kEof, kMainStream, protocol::encode(protocol::Eof{FrameType::kStdin}));
    return;
  }
  stdin_credit_.spend(static_cast<std::size_t>(count));
  channel_.send(FrameType::kStdin, kMainStream, {buffer, static_cast<std::size_t>(count)});
}

void ClientSession::handle_signals() {
  signalfd_siginfo info{};
  while (::read(signal_fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    const int number = static_cast<int>(info.ssi_signo);
    if (number == SIGWINCH) {
      if (!started_) continue;  // the size is sent once the process starts
      if (auto size = window_size(STDIN_FILENO)) {
        channel_.send(FrameType::kWindow, kMainStream, protocol::encode(protocol::Window{size->rows, size->cols}));
      }
      continue;
    }
    // SIGHUP (the terminal went away), a signal during boot, or a second
    // signal stops the run at once.
    if (number == SIGHUP || !started_ || stop_at_) {
      const std::string name = std::string("SIG") + sigabbrev_np(number);
      const std::string why = number == SIGHUP ? "the terminal closed (SIGHUP)"
                              : stop_at_       ? "a second " + name + " arrived"
                                               : name + " arrived before the command started";
      request_stop(number == SIGINT ? "interrupted" : "stopped", "stopped: " + why, number);
      continue;
    }
    // First SIGINT or SIGTERM: pass it to the command, as a local program
    // would receive it, and stop the run if it has not ended by the grace.
    channel_.send(FrameType::kSignal, kMainStream, protocol::encode(protocol::Signal{static_cast<std::uint32_t>(number)}));
    stop_at_ = Clock::now() + kSignalGrace;
    forwarded_signal_ = number;
  }
}

void ClientSession::drain() {
  for (int reads = 0; reads < 1000 && !ended_; ++reads) {
    pollfd fd{channel_.fd(), POLLIN, 0};
    if (::poll(&fd, 1, 100) <= 0) return;
    auto open = channel_.receive([this](protocol::Frame&& frame) { return handle_frame(std::move(frame)); });
    if (!open || !*open) return;
  }
}

void ClientSession::recover_end_from_database() {
  if (run_id_.empty()) return;
  auto paths = sys::Paths::resolve();
  if (!paths) return;
  auto db = state::Database::open(paths->database);
  if (!db) return;
  auto run = state::find_run(**db, run_id_);
  if (!run || run->state != "ended" || !run->exit_code) return;
  ended_ = supervisor::RunEnded{run_id_, static_cast<int>(*run->exit_code), run->stop_cause, run->stop_detail, {}};
}

int ClientSession::run() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int number : {SIGINT, SIGTERM, SIGHUP, SIGWINCH}) sigaddset(&mask, number);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  signal_fd_.reset(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));

  std::optional<RawMode> raw;
  if (request_.tty) raw.emplace(STDIN_FILENO);

  while (!ended_ && !detached_) {
    pollfd fds[3] = {
        {channel_.fd(), static_cast<short>(POLLIN | (channel_.has_pending() ? POLLOUT : 0)), 0},
        {signal_fd_.get(), POLLIN, 0},
        {stdin_open_ && started_ && stdin_credit_.available() > 0 ? STDIN_FILENO : -1, POLLIN, 0},
    };
    int timeout = -1;
    if (stop_at_ && !stop_requested_) {
      timeout = static_cast<int>(std::max<long long>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(*stop_at_ - Clock::now()).count() + 1));
    }
    if (::poll(fds, 3, timeout) < 0 && errno != EINTR) break;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      auto open = channel_.receive([this](protocol::Frame&& frame) { return handle_frame(std::move(frame)); });
      if (!open && open.error().errno_value != ECONNRESET) {
        print_error(open.error().message);
        return supervisor::kExitZwrmError;
      }
      // A reset is the supervisor dying with data unread, as is an end of
      // file before the run's end.
      if ((!open || !*open) && !ended_) {
        recover_end_from_database();
        if (ended_) break;
        print_error("the supervisor exited unexpectedly; its log is in the run's log directory (`zwrm ps -a`)");
        return supervisor::kExitZwrmError;
      }
    }
    if (fds[1].revents & POLLIN) handle_signals();
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) read_stdin();
    if (stop_at_ && !stop_requested_ && Clock::now() >= *stop_at_) {
      const bool interrupt = forwarded_signal_ == SIGINT;
      request_stop(interrupt ? "interrupted" : "stopped",
                   std::string("stopped: the command did not exit within 5 s of SIG") + sigabbrev_np(forwarded_signal_),
                   forwarded_signal_);
    }
    if (!channel_.flush()) {
      drain();
      break;
    }
  }
  raw.reset();
  if (detached_) {
    // Best effort: the supervisor reads the end of stdin before it notices
    // this client has gone. Without it the command's stdin stays open.
    (void)channel_.flush();
    return 0;
  }
  if (!ended_) recover_end_from_database();
  if (!ended_) {
    print_error("lost the connection to the supervisor");
    return supervisor::kExitZwrmError;
  }
  for (const std::string& note : ended_->notes) {
    std::fprintf(stderr, "zwrm: run %s: %s\n", ended_->run_id.c_str(), note.c_str());
  }
  if (ended_->exit_code == supervisor::kExitZwrmError && !ended_->detail.empty()) {
    // "failed" means the run never started, so its id names nothing.
    print_error(ended_->cause == "failed" ? ended_->detail : "run " + ended_->run_id + ": " + ended_->detail);
  } else if (ended_->cause == "exit" && !ended_->detail.empty()) {
    // The command could not start (status 126 or 127): say why.
    print_error(ended_->detail);
  } else if (!ended_->detail.empty()) {
    std::fprintf(stderr, "zwrm: run %s: %s\n", ended_->run_id.c_str(), ended_->detail.c_str());
  }
  return ended_->exit_code;
}

}  // namespace

int run_client(const supervisor::RunRequest& request, std::string* run_id) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    print_error(std::string("cannot create a socket pair: ") + std::strerror(errno));
    return supervisor::kExitZwrmError;
  }
  UniqueFd supervisor_end(pair[1]);
  auto pid = start_supervisor(supervisor_end.get());
  if (!pid) {
    print_error(pid.error().message);
    return supervisor::kExitZwrmError;
  }
  supervisor_end.reset();

  protocol::Channel channel{UniqueFd(pair[0])};
  channel.send(FrameType::kRunRequest, 0, supervisor::json_payload(supervisor::to_json(request)));
  ClientSession session(channel, request);
  const int exit_code = session.run();
  if (run_id != nullptr) *run_id = session.run_id();
  // The supervisor exits right after reporting; reap it so no zombie lingers.
  ::waitpid(*pid, nullptr, WNOHANG);
  return exit_code;
}

}  // namespace zwrm::cli
