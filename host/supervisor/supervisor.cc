#include "host/supervisor/supervisor.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

#include <spdlog/spdlog.h>

#include "host/cgroup/limits.h"
#include "host/jail/artifact.h"
#include "host/jail/capabilities.h"
#include "host/supervisor/supervisor_impl.h"
#include "host/sys/files.h"
#include "host/sys/log.h"
#include "host/sys/units.h"
#include "host/vmm/vmm.h"
#include "state/audit.h"
#include "state/policy.h"
#include "state/runs.h"

namespace zwrm::supervisor {

using Clock = Supervisor::Clock;
using protocol::FrameType;
using nlohmann::json;

namespace {

// How long a run that finds its volume locked looks for the run holding it.
// The holder inserts its row just after it takes the lock and marks the row
// ended just before it releases the lock, so for a moment no row shows.
constexpr std::chrono::seconds kHolderLookup{2};

// Takes the lock that gives one run a volume. While another run holds it,
// fails with that run's id, or takes the lock after all if it is released
// within kHolderLookup.
Status lock_volume(int volume_fd, state::Database& db, const RunRequest& request) {
  const auto give_up = Clock::now() + kHolderLookup;
  while (::flock(volume_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return fail_errno("cannot lock volume " + request.volume);
    auto holder = state::find_live_run_of_project(db, request.project);
    if (holder && *holder) {
      const std::string& id = (*holder)->id;
      return fail("the volume of project " + request.project + " is in use by run " + id +
                  "; wait for it to end or stop it with `zwrm stop " + id + "`");
    }
    if (Clock::now() >= give_up) {
      return fail("the volume of project " + request.project + " (" + request.volume +
                  ") is locked by another process that is not a live run; wait for it to end");
    }
    ::poll(nullptr, 0, 50);
  }
  return {};
}

}  // namespace

void Supervisor::record(const std::string& type, json data, const std::string& actor) {
  if (!db_) return;
  state::Event event{request_.project, run_id_, state::EventSource::kHost, type, std::move(data)};
  event.actor = actor;
  auto appended = state::append_event(*db_, std::move(event));
  if (!appended) spdlog::error("cannot record {} event: {}", type, appended.error().message);
}

Status Supervisor::receive_request() {
  std::optional<protocol::Frame> request;
  const auto deadline = Clock::now() + kRequestTimeout;
  while (!request) {
    if (Clock::now() > deadline) return fail("the client sent no run request within 10 s");
    pollfd fd{client_->fd(), POLLIN, 0};
    ::poll(&fd, 1, 100);
    auto open = client_->receive([&](protocol::Frame&& frame) -> Status {
      if (frame.type != FrameType::kRunRequest) return fail("protocol violation: expected a run request");
      request = std::move(frame);
      return {};
    });
    if (!open) return tl::unexpected(open.error());
    if (!*open) return fail("the client closed the connection before sending a run request");
  }
  auto json_value = parse_json_payload(request->payload);
  if (!json_value) return tl::unexpected(json_value.error());
  auto parsed = run_request_from_json(*json_value);
  if (!parsed) return tl::unexpected(parsed.error());
  request_ = std::move(*parsed);
  return {};
}

Status Supervisor::prepare_run() {
  auto paths = sys::Paths::resolve();
  if (!paths) return tl::unexpected(paths.error());
  paths_ = std::move(*paths);
  auto db = state::Database::open(paths_.database);
  if (!db) return tl::unexpected(db.error());
  db_ = std::move(*db);

  run_id_ = sys::random_hex(12);
  log_dir_ = paths_.logs + "/" + run_id_;
  if (auto made = sys::make_directories(log_dir_, 0700); !made) return made;
  sys::log_to_file("supervisor", log_dir_ + "/supervisor.log");
  monitor_ = GuestMonitor(request_.idle_timeout_ms ? std::optional(std::chrono::milliseconds(*request_.idle_timeout_ms))
                                                   : std::nullopt,
                          request_.cpus);
  spdlog::info("run {} for project {} starting", run_id_, request_.project);

  // The VMM gets these descriptors, never the paths: a link planted at a
  // path is refused here, and one swapped in later changes nothing.
  auto volume = jail::open_artifact(request_.volume, jail::Access::kReadWrite);
  if (!volume) return tl::unexpected(volume.error());
  if (auto locked = lock_volume(volume->get(), *db_, request_); !locked) return locked;
  volume_ = std::move(*volume);
  auto boot_files = open_boot_files(request_.kernel.path, request_.initramfs.path, request_.image.path);
  if (!boot_files) return tl::unexpected(boot_files.error());
  boot_files_ = std::move(*boot_files);

  state::Run run;
  run.id = run_id_;
  run.project = request_.project;
  run.template_name = request_.template_name;
  run.command = json(request_.argv).dump();
  run.accel = request_.accel;
  run.cpus = request_.cpus;
  run.memory_mib = request_.memory_mib;
  run.timeout_ms = request_.timeout_ms;
  run.idle_timeout_ms = request_.idle_timeout_ms;
  if (request_.timeout_ms) run.deadline_at_ms = state::now_unix_ms() + *request_.timeout_ms;
  run.supervisor_pid = ::getpid();
  run.supervisor_start_ticks = state::process_start_ticks(::getpid());
  run.log_dir = log_dir_;
  if (auto inserted = state::insert_run(*db_, run); !inserted) return inserted;
  run_recorded_ = true;

  json env_names = json::array();
  for (const std::string& entry : request_.env) env_names.push_back(entry.substr(0, entry.find('=')));
  record("run.start", {{"template", request_.template_name},
                       {"argv", request_.argv},
                       {"env_names", env_names},
                       {"user", request_.root ? "root" : "agent"},
                       {"tty", request_.tty},
                       {"cpus", request_.cpus},
                       {"memory_mib", request_.memory_mib},
                       {"timeout_ms", request_.timeout_ms ? json(*request_.timeout_ms) : json(nullptr)},
                       {"idle_timeout_ms", request_.idle_timeout_ms ? json(*request_.idle_timeout_ms) : json(nullptr)},
                       {"accel", request_.accel},
                       {"accel_reason", request_.accel_reason},
                       {"kernel_digest", request_.kernel.digest},
                       {"init_digest", request_.initramfs.digest},
                       {"image_digest", request_.image.digest},
                       {"volume", request_.volume},
                       {"supervisor_pid", ::getpid()}});
  return {};
}

Status Supervisor::apply_limits() {
  const cgroup::Limits limits{request_.cpus, cgroup::vmm_memory_ceiling(request_.memory_mib << 20),
                              cgroup::kRunPidsMax};
  auto group = cgroup::RunCgroup::create(run_id_, limits);
  if (!group) {
    if (!request_.allow_no_limits) {
      return fail(group.error().message + "; or run with --no-limits to go without host resource limits");
    }
    spdlog::warn("running without host resource limits (--no-limits): {}", group.error().message);
    record("run.limits", {{"applied", false}, {"reason", group.error().message}});
    return {};
  }
  if (auto added = group->add_process(::getpid()); !added) {
    (void)group->remove(::getpid());
    return added;
  }
  spdlog::info("limits: {} CPUs, {} bytes of memory, {} tasks in {}", limits.cpus, limits.memory_bytes, limits.pids,
               group->describe());
  record("run.limits", {{"applied", true}, {"cpus", limits.cpus}, {"memory_bytes", limits.memory_bytes},
                        {"pids", limits.pids}, {"cgroup", group->describe()}});
  cgroup_ = std::move(*group);
  return {};
}

Status Supervisor::start_vm() {
  // The VMM inherits the supervisor's cgroup, so the limits apply first.
  if (auto limited = apply_limits(); !limited) return limited;

  run_dir_ = paths_.runtime + "/" + run_id_;
  if (auto made = sys::make_directories(run_dir_, 0700); !made) return made;
  auto control = ControlSocket::listen(run_dir_ + "/control.sock");
  if (!control) return tl::unexpected(control.error());
  control_ = std::move(*control);

  auto console = ConsoleLog::create(log_dir_ + "/console.log");
  if (!console) return tl::unexpected(console.error());
  console_ = std::move(*console);
  vmm_log_.reset(::open((log_dir_ + "/vmm.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!vmm_log_) return fail_errno("cannot create " + log_dir_ + "/vmm.log");

  int control_pair[2];
  int console_pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, control_pair) != 0 ||
      ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, console_pair) != 0) {
    return fail_errno("cannot create socket pairs for the VM");
  }
  UniqueFd vmm_control(control_pair[1]);
  UniqueFd vmm_console(console_pair[1]);
  guest_ = std::make_unique<protocol::Channel>(UniqueFd(control_pair[0]));
  console_fd_.reset(console_pair[0]);
  relay_ = std::make_unique<ExecRelay>(*guest_, client_.get());
  guest_events_ = std::make_unique<GuestEventLog>(*db_, request_.project, run_id_);
  if (auto network = start_network(); !network) return network;

  vmm::VmConfig config;
  config.name = "zwrm-" + run_id_;
  config.cpus = request_.cpus;
  config.memory_mib = request_.memory_mib;
  config.accel = request_.accel == "kvm" ? vmm::Accel::kKvm : vmm::Accel::kTcg;
  auto backend = vmm::make_qemu_microvm();
  spdlog::info("starting {} with {} vCPUs, {} MiB, accel {}, jail {}", backend->name(), config.cpus,
               config.memory_mib, request_.accel, request_.jail);
  auto mode = jail::parse_mode(request_.jail);
  if (!mode) return tl::unexpected(mode.error());
  const std::string jail_root = run_dir_ + "/vmm-root";
  if (auto made = sys::make_directories(jail_root, 0755); !made) return made;
  const VmmDescriptors descriptors{vmm_log_.get(), vmm_control.get(), vmm_console.get(), volume_.get()};
  auto started = start_jailed_vmm(*backend, config, boot_files_, descriptors, *mode, jail_root);
  if (!started) return tl::unexpected(started.error());
  vmm_pid_ = started->pid;
  spdlog::info("VMM {} started in jail mode {} as uid {}, gid {}", vmm_pid_, jail::mode_name(started->mode),
               started->uid, started->gid);
  for (const std::string& warning : started->warnings()) {
    spdlog::warn("{}", warning);
    warnings_.push_back(warning);
  }
  // From here on the supervisor only needs to signal its VMM, which runs
  // as another user.
  json jail_event = started->describe();
  if (auto dropped = jail::keep_only_capabilities({CAP_KILL}); !dropped) {
    spdlog::warn("the supervisor keeps its privileges: {}", dropped.error().message);
    jail_event["supervisor_capabilities"] = "kept: " + dropped.error().message;
  } else {
    jail_event["supervisor_capabilities"] = ::geteuid() == 0 ? "CAP_KILL only" : "none";
  }
  record("run.jail", std::move(jail_event));

  const auto now = Clock::now();
  boot_deadline_ = now + (config.accel == vmm::Accel::kKvm ? kBootTimeoutKvm : kBootTimeoutTcg);
  if (request_.timeout_ms) run_deadline_ = started_at_ + std::chrono::milliseconds(*request_.timeout_ms);
  return state::mark_run_running(*db_, run_id_, vmm_pid_, request_.accel);
}

Result<std::vector<proxy::Rule>> Supervisor::load_policy() {
  auto stored = state::list_policy_rules(*db_, request_.project);
  if (!stored) return tl::unexpected(stored.error());
  std::vector<proxy::Rule> rules;
  for (const state::PolicyRule& entry : *stored) {
    auto rule = proxy::parse_rule(entry.rule);
    if (!rule) {
      // Rules are checked when added; one that no longer parses (written by
      // another zwrm version) is skipped, which only denies more.
      spdlog::error("skipping stored egress rule: {}", rule.error().message);
      continue;
    }
    rules.push_back(std::move(*rule));
  }
  return rules;
}

Status Supervisor::start_network() {
  auto resolver = Resolver::create();
  if (!resolver) return tl::unexpected(resolver.error());
  const EgressLimits limits{request_.egress_rate, request_.ingress_rate, request_.egress_quota,
                            request_.max_connections};
  auto recorder = [this](const std::string& type, json data) { record(type, std::move(data)); };
  egress_ = std::make_unique<EgressProxy>(*guest_, limits, [this] { return load_policy(); }, recorder,
                                          std::move(*resolver));
  std::vector<PortMapping> mappings;
  for (const std::string& text : request_.publish) {
    auto mapping = parse_port_mapping(text);
    if (!mapping) return tl::unexpected(mapping.error());
    mappings.push_back(*mapping);
  }
  auto published = PublishedPorts::bind(*guest_, mappings, recorder);
  if (!published) return tl::unexpected(published.error());
  published_ = std::move(*published);
  return {};
}

void Supervisor::read_console() {
  char buffer[16 * 1024];
  const ssize_t count = ::read(console_fd_.get(), buffer, sizeof buffer);
  if (count > 0) {
    console_->append(buffer, static_cast<std::size_t>(count));
  } else if (count == 0 || (errno != EAGAIN && errno != EINTR)) {
    console_fd_.reset();
  }
}

void Supervisor::stop(Outcome outcome) {
  if (phase_ == Phase::kRunning) sample_memory();
  if (!outcome_) {
    spdlog::info("stopping: {} ({})", outcome.cause, outcome.detail);
    outcome_ = std::move(outcome);
  }
  if (phase_ == Phase::kStopping || phase_ == Phase::kEnded) return;
  const bool guest_can_sync =
      phase_ == Phase::kRunning && outcome_->cause != "protocol-error" && outcome_->cause != "guest-crash";
  phase_ = Phase::kStopping;
  if (guest_can_sync) {
    guest_->send(FrameType::kShutdown, protocol::kSessionStream);
    kill_deadline_ = Clock::now() + kShutdownGrace;
  } else {
    kill_vmm();
  }
}

void Supervisor::kill_vmm() {
  if (vmm_pid_ > 0) ::kill(vmm_pid_, SIGKILL);
  kill_deadline_.reset();
}

void Supervisor::handle_signals() {
  signalfd_siginfo info{};
  while (::read(signal_fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    if (info.ssi_signo == SIGCHLD) continue;
    stop({kExitStopped, "stopped",
          std::string("the supervisor received ") + strsignal(static_cast<int>(info.ssi_signo)) + " from pid " +
              std::to_string(info.ssi_pid)});
  }
  int status = 0;
  if (vmm_pid_ > 0 && ::waitpid(vmm_pid_, &status, WNOHANG) == vmm_pid_) handle_vmm_exit(status);
}

void Supervisor::handle_timers() {
  const auto now = Clock::now();
  if (kill_deadline_ && now >= *kill_deadline_) {
    spdlog::warn("the guest did not power off within {} s; killing the VMM", kShutdownGrace.count());
    kill_vmm();
  }
  if (phase_ == Phase::kRunning) {
    if (monitor_.unresponsive(now) && !guest_->at_frame_boundary() && !guest_backlogged()) {
      // A frame's bytes follow each other at once, so a guest that stops
      // in the middle of one for this long breaks the protocol.
      stop({kExitZwrmError, "protocol-error",
            "the guest sent part of a frame and then nothing for " +
                std::to_string(GuestMonitor::kUnresponsiveAfter.count()) + " s"});
    } else if (monitor_.unresponsive(now)) {
      stop({kExitZwrmError, "guest-crash",
            "the guest stopped responding for " + std::to_string(GuestMonitor::kUnresponsiveAfter.count()) +
                " s (it halted or hung); see `zwrm logs " + run_id_ + "`"});
    } else if (monitor_.ping_due(now)) {
      guest_->send(FrameType::kPing, protocol::kSessionStream);
      monitor_.ping_sent(now);
      sample_memory();
    }
  }
  if (egress_) {
    egress_->handle_timers(now);
    // Bytes moving through the proxy, or a request waiting for its response,
    // keep the run from being idle.
    const auto transfer = egress_->last_transfer();
    if (transfer && transfer != egress_activity_seen_) {
      egress_activity_seen_ = transfer;
      monitor_.on_activity(*transfer);
    }
    if (egress_->busy(now)) note_activity();
  }
  if (guest_events_) guest_events_->handle_timers(now);
  if (phase_ == Phase::kRunning && monitor_.idle(now)) {
    record("run.idle", {{"idle_timeout_ms", *request_.idle_timeout_ms}});
    stop({kExitDeadline, "idle",
          "the run was idle for " + sys::format_duration(std::chrono::milliseconds(*request_.idle_timeout_ms)) +
              " (no terminal input or output and no guest CPU use)"});
  }
  if (boot_deadline_ && now >= *boot_deadline_) {
    boot_deadline_.reset();
    stop({kExitZwrmError, "boot-failed", "the guest did not boot in time; see `zwrm logs " + run_id_ + "`"});
  }
  if (run_deadline_ && now >= *run_deadline_) {
    run_deadline_.reset();
    record("run.deadline", {{"timeout_ms", *request_.timeout_ms}});
    stop({kExitDeadline, "deadline",
          "the run reached its deadline of " + sys::format_duration(std::chrono::milliseconds(*request_.timeout_ms))});
  }
}

int Supervisor::poll_timeout_ms() const {
  std::optional<Clock::time_point> next;
  const std::optional<Clock::time_point> watch =
      phase_ == Phase::kRunning ? monitor_.next_wakeup() : std::optional<Clock::time_point>();
  const std::optional<Clock::time_point> egress = egress_ ? egress_->next_wakeup(Clock::now()) : std::nullopt;
  const std::optional<Clock::time_point> drop_report = guest_events_ ? guest_events_->next_wakeup() : std::nullopt;
  for (const auto& deadline : {boot_deadline_, run_deadline_, kill_deadline_, watch, egress, drop_report}) {
    if (deadline && (!next || *deadline < *next)) next = deadline;
  }
  if (!next) return -1;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*next - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left + 1, 0, 60'000));
}

void Supervisor::event_loop() {
  while (phase_ != Phase::kEnded) {
    std::vector<pollfd> fds;
    fds.push_back({signal_fd_.get(), POLLIN, 0});
    // Frames from the guest cause replies to it and output for the client.
    // While either queue is backlogged the guest is not read, so a guest
    // that stops reading is slowed down instead of buffered without bound.
    const bool read_guest = !guest_backlogged();
    fds.push_back({guest_open_ ? guest_->fd() : -1,
                   static_cast<short>((read_guest ? POLLIN : 0) | (guest_->has_pending() ? POLLOUT : 0)), 0});
    fds.push_back({console_fd_ ? console_fd_.get() : -1, POLLIN, 0});
    fds.push_back({client_ ? client_->fd() : -1, static_cast<short>(POLLIN | (client_ && client_->has_pending() ? POLLOUT : 0)), 0});
    fds.push_back({control_->listen_fd(), POLLIN, 0});
    for (int fd : control_->connection_fds()) fds.push_back({fd, POLLIN, 0});
    const std::size_t first_egress = fds.size();
    egress_->add_poll_fds(fds);
    const std::size_t first_published = fds.size();
    published_->add_poll_fds(fds);
    const std::size_t first_control = 5;

    if (::poll(fds.data(), fds.size(), poll_timeout_ms()) < 0 && errno != EINTR) {
      stop({kExitZwrmError, "failed", std::string("poll failed: ") + std::strerror(errno)});
      kill_vmm();
    }
    // Guest output first: a VMM that exits right after its last frames must
    // not have them discarded by the exit handling below.
    // A hung-up channel is read even when backlogged: the VMM is gone, so
    // the socket already contains all it will ever deliver.
    if ((fds[1].revents & (POLLHUP | POLLERR)) || (read_guest && (fds[1].revents & POLLIN))) {
      auto open = guest_->receive([this](protocol::Frame&& frame) -> Status {
        handle_guest_frame(std::move(frame));
        return {};
      });
      // A read error (ECONNRESET when the VMM dies with data unread) closes
      // the channel like an end of file, so the VMM's exit decides the
      // cause. Only a decoding error is the guest's fault.
      const bool read_failed = !open && open.error().errno_value != 0;
      if (!open && !read_failed) {
        stop({kExitZwrmError, "protocol-error", open.error().message});
        guest_open_ = false;
        kill_vmm();
      } else if (read_failed || !*open) {
        guest_open_ = false;
        if (!kill_deadline_) kill_deadline_ = Clock::now() + kExitGrace;
      }
    }
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) read_console();
    if (fds[0].revents & POLLIN) handle_signals();
    if (client_ && (fds[3].revents & (POLLIN | POLLHUP | POLLERR))) {
      auto open = client_->receive([this](protocol::Frame&& frame) -> Status {
        handle_client_frame(std::move(frame));
        return {};
      });
      if (!open || !*open) client_gone();
    }
    if (fds[4].revents & POLLIN) control_->accept_connection();
    for (std::size_t i = first_control; i < first_egress; ++i) {
      if (fds[i].revents) {
        control_->service(fds[i].fd, [this](const protocol::Frame& frame, const PeerCredentials& peer) {
          return handle_control_frame(frame, peer);
        });
      }
    }
    egress_->handle_poll(fds, first_egress);
    published_->handle_poll(fds, first_published);
    handle_timers();
    if (guest_open_ && !guest_->flush()) {
      guest_open_ = false;
      kill_vmm();
    }
    if (client_ && !client_->flush()) client_gone();
  }
}

bool Supervisor::guest_backlogged() const {
  return guest_->backlogged() || (client_ && client_->backlogged());
}

void Supervisor::sample_memory() {
  if (!cgroup_) return;
  if (auto usage = cgroup_->usage(); usage) peak_memory_bytes_ = std::max(peak_memory_bytes_, usage->memory_bytes);
}

void Supervisor::teardown() {
  sample_memory();
  if (vmm_pid_ > 0) {
    ::kill(vmm_pid_, SIGKILL);
    ::waitpid(vmm_pid_, nullptr, 0);
    vmm_pid_ = -1;
  }
  // Keep what the console still had buffered when the VMM died.
  while (console_fd_ && console_) {
    pollfd fd{console_fd_.get(), POLLIN, 0};
    if (::poll(&fd, 1, 0) <= 0) break;
    read_console();
  }
  control_.reset();
  if (egress_) egress_->close_all("the run ended");
  if (published_) published_->close_all("the run ended");
  if (!run_dir_.empty()) (void)sys::remove_tree(run_dir_);
  std::uint64_t host_oom_kills = 0;
  std::int64_t cpu_ms = 0;
  if (cgroup_) {
    if (auto usage = cgroup_->usage(); usage) {
      host_oom_kills = usage->oom_kills;
      cpu_ms = std::chrono::duration_cast<std::chrono::milliseconds>(usage->cpu).count();
    }
    if (auto removed = cgroup_->remove(::getpid()); !removed) {
      spdlog::error("cannot remove the run's cgroup: {}", removed.error().message);
    }
  }

  const Outcome outcome = outcome_.value_or(Outcome{kExitZwrmError, "failed", "the run ended for an unknown reason"});
  const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_at_);
  if (run_recorded_) {
    record("run.end", {{"exit_code", outcome.exit_code}, {"cause", outcome.cause}, {"detail", outcome.detail},
                       {"duration_ms", duration.count()},
                       {"console_bytes_dropped", console_ ? console_->dropped_bytes() : 0},
                       {"guest_oom_kills", console_ ? console_->oom_kills() : 0},
                       {"host_oom_kills", host_oom_kills},
                       // Resource use of the VMM and supervisor, from the run's cgroup when it had one.
                       // Memory is the largest sample, taken when the guest is ready, every 10 s, and
                       // when the run starts to end.
                       {"cpu_ms", cgroup_ ? json(cpu_ms) : json(nullptr)},
                       {"memory_peak_bytes", cgroup_ ? json(peak_memory_bytes_) : json(nullptr)},
                       {"egress_bytes", egress_ ? egress_->total_bytes() : 0},
                       {"guest_events_recorded", guest_events_ ? guest_events_->recorded() : 0},
                       {"guest_events_dropped", guest_events_ ? guest_events_->dropped() : 0}});
    if (auto ended = state::mark_run_ended(*db_, run_id_, outcome.exit_code, outcome.cause, outcome.detail); !ended) {
      spdlog::error("cannot record the end of the run: {}", ended.error().message);
    }
  }
  spdlog::info("run ended: exit code {}, cause {}, after {} ms", outcome.exit_code, outcome.cause, duration.count());
  volume_.reset();

  if (client_) {
    RunEnded ended{run_id_, outcome.exit_code, outcome.cause, outcome.detail, {}};
    if (console_ && console_->oom_kills() > 0) {
      ended.notes.push_back("the guest ran out of memory: its OOM killer ended " + std::to_string(console_->oom_kills()) +
                            " process(es); give the run more --memory, or see `zwrm logs " + run_id_ + "`");
    }
    client_->send(FrameType::kRunEnded, 0, json_payload(to_json(ended)));
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (client_->has_pending() && Clock::now() < deadline) {
      pollfd fd{client_->fd(), POLLOUT, 0};
      ::poll(&fd, 1, 100);
      if (!client_->flush()) break;
    }
  }
}

int Supervisor::run() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int signal_number : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaddset(&mask, signal_number);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  signal_fd_.reset(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));

  Status started = receive_request();
  if (started) started = prepare_run();
  if (started) started = start_vm();
  if (!started) {
    spdlog::error("{}", started.error().message);
    outcome_ = Outcome{kExitZwrmError, "failed", started.error().message};
  } else {
    event_loop();
  }
  teardown();
  return started ? 0 : 1;
}

int run_supervisor(int client_fd) {
  Supervisor supervisor(client_fd);
  return supervisor.run();
}

}  // namespace zwrm::supervisor
