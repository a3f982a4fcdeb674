#include "guest/init/audit_events.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "guest/init/file_events.h"
#include "guest/init/log.h"

namespace zwrm::guest {

namespace {

using protocol::GuestEvent;
using Kind = GuestEvent::Kind;

// Bounds the maps of processes and recent modifications if exit events are
// lost (ENOBUFS) or many files change: past these sizes they start afresh.
constexpr std::size_t kMaxTrackedProcesses = 65536;
constexpr std::size_t kMaxRecentModifications = 1024;
// Datagrams and fanotify reads handled before the loop looks at its other
// descriptors and the batch timer again.
constexpr int kMaxReadsPerRound = 64;
constexpr std::size_t kReadBufferBytes = 64 * 1024;

std::int64_t clock_ms(clockid_t clock) {
  timespec now{};
  ::clock_gettime(clock, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
}

void raise_priority() {
  sched_param param{};
  param.sched_priority = 1;
  const int error = ::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &param);
  if (error == 0) return;
  // Next best: nice -20, the highest priority of the normal scheduler, for
  // this thread only.
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), -20);
  log_line("audit events: cannot use real-time priority (errno %d); short-lived processes may lose their argv", error);
}

}  // namespace

EventRateLimit::EventRateLimit(std::uint32_t rate, std::uint32_t burst)
    : rate_(rate), capacity_(std::uint64_t{burst} * 1000), balance_(capacity_) {}

bool EventRateLimit::admit(std::int64_t now_ms) {
  if (last_ms_ >= 0 && now_ms > last_ms_) {
    // rate_ tokens per second are rate_ thousandths per ms. Capping the gap
    // at 1000 s keeps the product far within 64 bits, and still refills any
    // bucket whose burst is at most 1000 s of its rate.
    const std::uint64_t elapsed = std::min<std::uint64_t>(static_cast<std::uint64_t>(now_ms - last_ms_), 1'000'000);
    balance_ = std::min(capacity_, balance_ + elapsed * rate_);
  }
  if (last_ms_ < 0 || now_ms > last_ms_) last_ms_ = now_ms;
  if (balance_ < 1000) return false;
  balance_ -= 1000;
  return true;
}

std::vector<protocol::Bytes> encode_batches(std::vector<GuestEvent> events, std::uint64_t dropped) {
  std::vector<protocol::Bytes> payloads;
  protocol::GuestEvents batch{dropped, {}};
  std::size_t size = protocol::kGuestEventsHeaderSize;
  for (GuestEvent& event : events) {
    const std::size_t event_size = protocol::encoded_size(event);
    // The limits on argv and paths keep every event far below a frame.
    ZWRM_CHECK(protocol::kGuestEventsHeaderSize + event_size <= protocol::kMaxPayload);
    if (!batch.events.empty() &&
        (batch.events.size() == protocol::kMaxGuestEventsPerBatch || size + event_size > protocol::kMaxPayload)) {
      payloads.push_back(protocol::encode(batch));
      batch = {0, {}};
      size = protocol::kGuestEventsHeaderSize;
    }
    batch.events.push_back(std::move(event));
    size += event_size;
  }
  if (!batch.events.empty() || batch.dropped > 0) payloads.push_back(protocol::encode(batch));
  return payloads;
}

GuestEvent make_exec_event(pid_t pid, pid_t fork_ppid, const ProcessDetails& details) {
  GuestEvent exec;
  exec.kind = Kind::kExec;
  exec.pid = static_cast<std::uint32_t>(pid);
  exec.ppid = static_cast<std::uint32_t>(fork_ppid);
  if (details.argv) {
    exec.argv = details.argv->args;
    if (details.argv->truncated) exec.flags |= GuestEvent::kArgvTruncated;
  } else {
    exec.flags |= GuestEvent::kArgvUnreadable;
  }
  if (details.status) {
    exec.ppid = static_cast<std::uint32_t>(details.status->ppid);
    exec.uid = details.status->uid;
    exec.comm = details.status->name;
  } else {
    exec.flags |= GuestEvent::kStatusUnreadable;
  }
  return exec;
}

void set_exit_status(GuestEvent& event, std::uint32_t exit_code) {
  const std::uint32_t signal_number = exit_code & 0x7f;
  if (signal_number >= 1 && signal_number <= 64) {
    event.flags |= GuestEvent::kSignaled;
    event.status = signal_number;
  } else {
    event.status = (exit_code >> 8) & 0xff;
  }
}

struct AuditEvents::Collector {
  struct Process {
    pid_t ppid = 0;  // from the fork event; 0 when it was not seen
    std::string comm;
    bool called_exec = false;
    bool exec_reported = false;  // false when the exec event was dropped
  };

  void run();
  void read_process_events(std::int64_t now_ms);
  void handle_process_event(const ProcEvent& event, std::int64_t now_ms);
  void report_exec(pid_t pid, Process& process);
  void read_file_events(std::int64_t now_ms);
  void handle_file_event(const FanotifyEvent& event, std::int64_t now_ms);
  bool merge_modification(const FanotifyRecord& record, std::int64_t now_ms);
  void queue(GuestEvent event);
  void count_dropped(std::uint64_t count = 1);
  // Returns the poll timeout until the pending batch is due, and signals
  // ready_fd once it is.
  int signal_when_due(std::int64_t now_ms);

  std::string workspace;
  UniqueFd proc_fd;
  UniqueFd fanotify_fd;
  UniqueFd mount_fd;
  UniqueFd stop_fd;
  UniqueFd ready_fd;
  pid_t self = ::getpid();
  pthread_t thread{};

  // Used by the collector thread only.
  EventRateLimit limit{kEventRate, kEventBurst};
  std::unordered_map<pid_t, Process> processes;
  std::unordered_map<std::string, std::int64_t> recent_modifications;
  std::uint8_t buffer[kReadBufferBytes];  // for reads from either source

  // Shared with the session loop, guarded by mutex.
  std::mutex mutex;
  std::vector<GuestEvent> pending;
  std::uint64_t dropped = 0;
  std::int64_t first_pending_ms = -1;  // when pending or dropped became non-empty
};

void AuditEvents::Collector::run() {
  raise_priority();
  for (;;) {
    pollfd fds[3] = {{stop_fd.get(), POLLIN, 0}, {proc_fd.get(), POLLIN, 0}, {fanotify_fd.get(), POLLIN, 0}};
    const int timeout = signal_when_due(clock_ms(CLOCK_MONOTONIC));
    if (::poll(fds, 3, timeout) < 0 && errno != EINTR) {
      log_line("audit events: poll failed (errno %d); no more events are reported", errno);
      return;
    }
    if (fds[0].revents != 0) return;
    const std::int64_t now = clock_ms(CLOCK_MONOTONIC);
    if (fds[1].revents != 0) read_process_events(now);
    if (fds[2].revents != 0) read_file_events(now);
  }
}

void AuditEvents::Collector::read_process_events(std::int64_t now_ms) {
  for (int round = 0; round < kMaxReadsPerRound; ++round) {
    sockaddr_nl sender{};
    socklen_t sender_size = sizeof sender;
    const ssize_t size =
        ::recvfrom(proc_fd.get(), buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&sender), &sender_size);
    if (size < 0 && errno == ENOBUFS) {
      // The socket overflowed: an unknown number of events is lost, at least one.
      count_dropped();
      continue;
    }
    if (size < 0 && errno == EINTR) continue;
    if (size < 0 && errno == EAGAIN) return;
    if (size < 0) {
      log_line("audit events: reading process events failed (errno %d); no more are reported", errno);
      proc_fd.reset();
      return;
    }
    // Only the kernel (port 0) sends process events; a guest process with
    // CAP_NET_ADMIN could otherwise forge some.
    if (sender.nl_pid != 0) continue;
    for (const ProcEvent& event : parse_proc_datagram({buffer, static_cast<std::size_t>(size)})) {
      handle_process_event(event, now_ms);
    }
  }
}

void AuditEvents::Collector::handle_process_event(const ProcEvent& event, std::int64_t now_ms) {
  if (event.tgid == self) return;
  if (processes.size() >= kMaxTrackedProcesses) processes.clear();
  switch (event.what) {
    case ProcEvent::What::kFork:
      // A new thread is not a new process.
      if (event.pid == event.tgid) processes[event.tgid] = Process{event.parent_tgid, {}, false, false};
      return;
    case ProcEvent::What::kExec: {
      Process& process = processes[event.tgid];
      process.called_exec = true;
      process.exec_reported = limit.admit(now_ms);
      if (!process.exec_reported) {
        process.comm.clear();
        count_dropped();
        return;
      }
      report_exec(event.tgid, process);
      return;
    }
    case ProcEvent::What::kExit: {
      if (event.pid != event.tgid) return;  // a thread, not the process
      auto found = processes.find(event.tgid);
      if (found == processes.end()) return;
      const Process process = std::move(found->second);
      processes.erase(found);
      if (!process.called_exec) return;
      // An exit whose exec was dropped would name nothing, so it goes too.
      if (!process.exec_reported || !limit.admit(now_ms)) {
        count_dropped();
        return;
      }
      GuestEvent exit;
      exit.kind = Kind::kExit;
      exit.time_ms = static_cast<std::uint64_t>(clock_ms(CLOCK_REALTIME));
      exit.pid = static_cast<std::uint32_t>(event.tgid);
      exit.ppid = static_cast<std::uint32_t>(event.parent_tgid);
      exit.comm = process.comm;
      set_exit_status(exit, event.exit_code);
      queue(std::move(exit));
      return;
    }
    case ProcEvent::What::kOther:
      return;
  }
}

void AuditEvents::Collector::report_exec(pid_t pid, Process& process) {
  GuestEvent exec = make_exec_event(pid, process.ppid, read_process(pid));
  exec.time_ms = static_cast<std::uint64_t>(clock_ms(CLOCK_REALTIME));
  process.comm = exec.comm;
  queue(std::move(exec));
}

void AuditEvents::Collector::read_file_events(std::int64_t now_ms) {
  for (int round = 0; round < kMaxReadsPerRound; ++round) {
    const ssize_t size = ::read(fanotify_fd.get(), buffer, sizeof buffer);
    if (size < 0 && errno == EINTR) continue;
    if (size < 0 && errno == EAGAIN) return;
    if (size <= 0) {
      log_line("audit events: reading file events failed (errno %d); no more are reported", errno);
      fanotify_fd.reset();
      return;
    }
    for (const FanotifyEvent& event : parse_fanotify_events({buffer, static_cast<std::size_t>(size)})) {
      if (event.fd >= 0) ::close(event.fd);
      handle_file_event(event, now_ms);
    }
  }
}

void AuditEvents::Collector::handle_file_event(const FanotifyEvent& event, std::int64_t now_ms) {
  if ((event.mask & FAN_Q_OVERFLOW) != 0) {
    // The kernel's queue (16384 events) overflowed: an unknown number is lost.
    count_dropped();
    return;
  }
  if (event.pid == self) return;

  const bool rename = (event.mask & FAN_RENAME) != 0;
  const FanotifyRecord* record = rename ? find_record(event, FAN_EVENT_INFO_TYPE_OLD_DFID_NAME) : find_record(event);
  const FanotifyRecord* new_record = rename ? find_record(event, FAN_EVENT_INFO_TYPE_NEW_DFID_NAME) : nullptr;
  if (record == nullptr || (rename && new_record == nullptr)) return;

  // The kernel merges queued events on the same entry into one mask, so one
  // event may stand for several changes, reported in this order.
  std::vector<Kind> kinds;
  if (event.mask & FAN_CREATE) kinds.push_back(Kind::kFileCreate);
  if ((event.mask & FAN_MODIFY) && !merge_modification(*record, now_ms)) kinds.push_back(Kind::kFileModify);
  if (rename) kinds.push_back(Kind::kFileRename);
  if (event.mask & FAN_DELETE) kinds.push_back(Kind::kFileDelete);

  for (Kind kind : kinds) {
    if (!limit.admit(now_ms)) {
      count_dropped();
      continue;
    }
    const EventPath path = make_event_path(resolve_directory(mount_fd.get(), record->handle), record->name, workspace);
    GuestEvent file;
    file.kind = kind;
    file.time_ms = static_cast<std::uint64_t>(clock_ms(CLOCK_REALTIME));
    file.pid = event.pid > 0 ? static_cast<std::uint32_t>(event.pid) : 0;
    file.path = path.path;
    if ((event.mask & FAN_ONDIR) != 0) file.flags |= GuestEvent::kDirectory;
    if (path.truncated) file.flags |= GuestEvent::kPathTruncated;
    if (path.unresolved) file.flags |= GuestEvent::kPathUnresolved;
    if (kind == Kind::kFileRename) {
      const EventPath target =
          make_event_path(resolve_directory(mount_fd.get(), new_record->handle), new_record->name, workspace);
      file.new_path = target.path;
      if (target.truncated) file.flags |= GuestEvent::kPathTruncated;
      if (target.unresolved) file.flags |= GuestEvent::kPathUnresolved;
    }
    queue(std::move(file));
  }
}

bool AuditEvents::Collector::merge_modification(const FanotifyRecord& record, std::int64_t now_ms) {
  std::string key(record.handle.begin(), record.handle.end());
  key += '/';
  key += record.name;
  auto found = recent_modifications.find(key);
  if (found != recent_modifications.end() && now_ms - found->second < kModifyMergeMs) return true;
  if (recent_modifications.size() >= kMaxRecentModifications) recent_modifications.clear();
  recent_modifications[std::move(key)] = now_ms;
  return false;
}

void AuditEvents::Collector::queue(GuestEvent event) {
  std::lock_guard lock(mutex);
  if (pending.size() >= kMaxQueuedEvents) {
    ++dropped;
  } else {
    pending.push_back(std::move(event));
  }
  if (first_pending_ms < 0) first_pending_ms = clock_ms(CLOCK_MONOTONIC);
}

void AuditEvents::Collector::count_dropped(std::uint64_t count) {
  std::lock_guard lock(mutex);
  dropped += count;
  if (first_pending_ms < 0) first_pending_ms = clock_ms(CLOCK_MONOTONIC);
}

int AuditEvents::Collector::signal_when_due(std::int64_t now_ms) {
  std::lock_guard lock(mutex);
  if (first_pending_ms < 0) return -1;
  const std::int64_t due = first_pending_ms + kBatchDelayMs;
  if (pending.size() < protocol::kMaxGuestEventsPerBatch && now_ms < due) return static_cast<int>(due - now_ms);
  const std::uint64_t increment = 1;
  (void)!::write(ready_fd.get(), &increment, sizeof increment);
  // Signalled; wait for the session loop to take the batch, or for the next
  // event, without waking again for this one.
  return static_cast<int>(kBatchDelayMs);
}

std::unique_ptr<AuditEvents> AuditEvents::start(const char* workspace) {
  auto collector = std::make_unique<Collector>();
  collector->workspace = workspace;

  if (auto proc = open_proc_connector(); proc) {
    collector->proc_fd = std::move(*proc);
  } else {
    log_line("audit events: no process events: %s", proc.error().message.c_str());
  }
  if (auto fanotify = open_fanotify(workspace); fanotify) {
    collector->mount_fd.reset(::open(workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (collector->mount_fd) collector->fanotify_fd = std::move(*fanotify);
  } else {
    log_line("audit events: no file events: %s", fanotify.error().message.c_str());
  }
  if (!collector->proc_fd && !collector->fanotify_fd) return nullptr;

  collector->stop_fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  collector->ready_fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!collector->stop_fd || !collector->ready_fd) {
    log_line("audit events: cannot create an eventfd (errno %d); no events are reported", errno);
    return nullptr;
  }
  auto body = [](void* argument) -> void* {
    static_cast<Collector*>(argument)->run();
    return nullptr;
  };
  if (const int error = ::pthread_create(&collector->thread, nullptr, body, collector.get()); error != 0) {
    log_line("audit events: cannot start the collector thread (errno %d); no events are reported", error);
    return nullptr;
  }
  return std::unique_ptr<AuditEvents>(new AuditEvents(std::move(collector)));
}

AuditEvents::AuditEvents(std::unique_ptr<Collector> collector) : collector_(std::move(collector)) {}

AuditEvents::~AuditEvents() {
  const std::uint64_t increment = 1;
  (void)!::write(collector_->stop_fd.get(), &increment, sizeof increment);
  ::pthread_join(collector_->thread, nullptr);
}

int AuditEvents::ready_fd() const { return collector_->ready_fd.get(); }

std::vector<protocol::Bytes> AuditEvents::take_batches() {
  std::uint64_t count = 0;
  (void)!::read(collector_->ready_fd.get(), &count, sizeof count);
  std::vector<GuestEvent> events;
  std::uint64_t dropped = 0;
  {
    std::lock_guard lock(collector_->mutex);
    events.swap(collector_->pending);
    dropped = std::exchange(collector_->dropped, 0);
    collector_->first_pending_ms = -1;
  }
  return encode_batches(std::move(events), dropped);
}

}  // namespace zwrm::guest
