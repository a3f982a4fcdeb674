// `zwrm ps`, `zwrm stop` and `zwrm logs`: looking at runs and ending them.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/printable.h"
#include "host/cgroup/run_cgroup.h"
#include "host/supervisor/control_socket.h"
#include "host/supervisor/reaper.h"
#include "host/supervisor/run_request.h"
#include "host/sys/files.h"
#include "host/sys/units.h"
#include "state/runs.h"

namespace zwrm::cli {

namespace {

// `zwrm stop` waits this long for the supervisor to record the end: the
// guest's shutdown grace plus a margin for a loaded host.
constexpr std::chrono::seconds kStopWait{30};

std::string age(std::int64_t since_ms, std::int64_t until_ms) {
  return sys::format_duration(std::chrono::milliseconds(std::max<std::int64_t>(0, until_ms - since_ms)));
}

std::string command_text(const std::string& command_json) {
  auto argv = nlohmann::json::parse(command_json, nullptr, false);
  if (!argv.is_array()) return command_json;
  std::string text;
  for (const auto& arg : argv) {
    if (!text.empty()) text += ' ';
    text += arg.is_string() ? arg.get<std::string>() : arg.dump();
  }
  text = printable(text);
  return text.size() > 40 ? text.substr(0, 37) + "..." : text;
}

nlohmann::json run_json(const state::Run& run) {
  nlohmann::json value = {{"id", run.id}, {"project", run.project}, {"template", run.template_name},
          {"command", nlohmann::json::parse(run.command, nullptr, false)}, {"state", run.state},
          {"accel", run.accel}, {"cpus", run.cpus}, {"memory_mib", run.memory_mib},
          {"timeout_ms", run.timeout_ms ? nlohmann::json(*run.timeout_ms) : nlohmann::json(nullptr)},
          {"created_at_ms", run.created_at_ms},
          {"ended_at_ms", run.ended_at_ms ? nlohmann::json(*run.ended_at_ms) : nlohmann::json(nullptr)},
          {"exit_code", run.exit_code ? nlohmann::json(*run.exit_code) : nlohmann::json(nullptr)},
          {"stop_cause", run.stop_cause}, {"stop_detail", run.stop_detail},
          {"supervisor_pid", run.supervisor_pid},
          {"idle_timeout_ms", run.idle_timeout_ms ? nlohmann::json(*run.idle_timeout_ms) : nlohmann::json(nullptr)},
          {"deadline_at_ms", run.deadline_at_ms ? nlohmann::json(*run.deadline_at_ms) : nlohmann::json(nullptr)}};
  if (run.state != "ended") {
    if (auto usage = cgroup::read_usage(run.id)) {
      value["usage"] = {{"cpu_us", usage->cpu.count()},
                        {"memory_bytes", usage->memory_bytes},
                        {"memory_limit_bytes", usage->memory_limit_bytes},
                        {"pids", usage->pids}};
    }
  }
  return value;
}

int list_runs(bool all, bool json) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto runs = state::list_runs(*session->db, !all);
  if (!runs) return report_error(runs.error());

  if (json) {
    for (const state::Run& run : *runs) std::printf("%s\n", run_json(run).dump().c_str());
    return 0;
  }
  const std::int64_t now = state::now_unix_ms();
  std::printf("%-12s  %-16s  %-8s  %-8s  %-5s  %4s  %8s  %8s  %10s  %-8s  %-8s  %-19s  %s\n", "RUN", "AGENT",
              "TEMPLATE", "STATE", "ACCEL", "CPUS", "MEMORY", "CPU TIME", "MEM USED", "UPTIME", "DEADLINE", "EXIT",
              "COMMAND");
  for (const state::Run& run : *runs) {
    const std::string exit = run.state != "ended" ? ""
                             : run.exit_code    ? std::to_string(*run.exit_code) + " " + run.stop_cause
                                                : run.stop_cause;
    const std::string deadline = run.state == "ended" || !run.deadline_at_ms ? "-" : age(now, *run.deadline_at_ms);
    // Usage of the run's cgroup: the VMM and the supervisor, as the host sees them.
    std::string cpu_time = "-";
    std::string memory_used = "-";
    if (run.state != "ended") {
      if (auto usage = cgroup::read_usage(run.id)) {
        cpu_time = sys::format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(usage->cpu));
        memory_used = sys::format_size(usage->memory_bytes);
      }
    }
    std::printf("%-12s  %-16s  %-8s  %-8s  %-5s  %4u  %8s  %8s  %10s  %-8s  %-8s  %-19s  %s\n", run.id.c_str(),
                run.project.c_str(), run.template_name.c_str(), run.state.c_str(), run.accel.c_str(), run.cpus,
                sys::format_size(run.memory_mib << 20).c_str(), cpu_time.c_str(), memory_used.c_str(),
                age(run.created_at_ms, run.ended_at_ms.value_or(now)).c_str(), deadline.c_str(), exit.c_str(),
                command_text(run.command).c_str());
  }
  return 0;
}

int stop_run(const std::string& id) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto run = state::find_run(*session->db, id);
  if (!run) return report_error(run.error());
  if (run->state == "ended") {
    std::printf("run %s already ended (%s)\n", run->id.c_str(), run->stop_cause.c_str());
    return 0;
  }
  const std::string socket = session->paths.runtime + "/" + run->id + "/control.sock";
  if (auto sent = supervisor::send_control_request(socket, protocol::FrameType::kStopRequest,
                                                   supervisor::json_payload(supervisor::to_json(
                                                       supervisor::StopRequest{"stopped", "zwrm stop"})));
      !sent) {
    // The supervisor may have died since the session reaped lost runs.
    if (!state::supervisor_alive(*run)) {
      if (auto reaped = supervisor::reap_lost_runs(*session->db, session->paths); !reaped) {
        return report_error(reaped.error());
      }
      std::printf("run %s already ended (its supervisor exited)\n", run->id.c_str());
      return 0;
    }
    return report_error(with_context(sent.error(), "cannot reach the supervisor of run " + run->id));
  }
  const auto deadline = std::chrono::steady_clock::now() + kStopWait;
  while (std::chrono::steady_clock::now() < deadline) {
    auto current = state::find_run(*session->db, run->id);
    if (current && current->state == "ended") {
      std::printf("stopped run %s\n", run->id.c_str());
      return 0;
    }
    // A supervisor that dies during the stop takes its VMM with it; record
    // the run as lost instead of waiting for an end it will never write.
    if (current && !state::supervisor_alive(*current)) {
      if (auto reaped = supervisor::reap_lost_runs(*session->db, session->paths); !reaped) {
        return report_error(reaped.error());
      }
      std::printf("stopped run %s (its supervisor exited during the stop)\n", run->id.c_str());
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return report_error({"run " + run->id + " did not end within 30 s of the stop request"});
}

// Returns log text with control characters other than newline and tab
// escaped, because the guest writes the console log and could otherwise
// drive the terminal of whoever reads it. The serial console's CR LF line
// ends become LF.
std::string terminal_safe(std::string_view text) {
  std::string out;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool line_end = text[i] == '\n' || (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n');
    if (!line_end && text[i] != '\t') continue;
    out += printable(text.substr(start, i - start));
    if (text[i] != '\r') out.push_back(text[i]);
    start = i + 1;
  }
  out += printable(text.substr(start));
  return out;
}

int extend_run(const std::string& id, const std::string& by) {
  auto duration = sys::parse_duration(by);
  if (!duration) return report_error(duration.error());
  if (duration->count() <= 0) return report_error({"invalid duration '" + printable(by) + "'; it must be longer than zero"});
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto run = state::find_run(*session->db, id);
  if (!run) return report_error(run.error());
  if (run->state == "ended") return report_error({"run " + run->id + " already ended (" + run->stop_cause + ")"});

  const std::string socket = session->paths.runtime + "/" + run->id + "/control.sock";
  auto payload = supervisor::send_control_request(socket, protocol::FrameType::kExtendRequest,
                                                  supervisor::json_payload(supervisor::to_json(
                                                      supervisor::ExtendRequest{duration->count()})));
  if (!payload) return report_error(with_context(payload.error(), "cannot reach the supervisor of run " + run->id));
  auto value = supervisor::parse_json_payload(*payload);
  auto reply = value ? supervisor::control_reply_from_json(*value) : tl::unexpected(value.error());
  if (!reply) return report_error(reply.error());
  if (!reply->ok) return report_error({reply->message});
  std::printf("run %s: deadline in %s\n", run->id.c_str(),
              sys::format_duration(std::chrono::milliseconds(reply->deadline_in_ms.value_or(0))).c_str());
  return 0;
}

int show_logs(const std::string& id, const std::string& file, bool raw) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto run = state::find_run(*session->db, id);
  if (!run) return report_error(run.error());
  const std::string path = run->log_dir + "/" + file;
  if (!sys::path_exists(run->log_dir)) {
    return report_error({"the logs of run " + run->id + " were removed; zwrm keeps those of the newest " +
                         std::to_string(supervisor::kKeptRunLogs) + " ended runs"});
  }
  if (file == "output.log" && !sys::path_exists(path)) {
    return report_error({"run " + run->id + " has no output log: only a detached run (zwrm run --detach) writes one"});
  }
  auto content = sys::read_file(path);
  if (!content) return report_error(content.error());
  const std::string shown = raw ? *content : terminal_safe(*content);
  std::fwrite(shown.data(), 1, shown.size(), stdout);
  return 0;
}

}  // namespace

void add_status_commands(CLI::App& app, Context& context) {
  CLI::App* ps = app.add_subcommand("ps", "List live runs with their resources and uptime");
  auto all = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  ps->add_flag("-a,--all", *all, "Include ended runs, with exit code and stop cause");
  ps->add_flag("--json", *json, "Print one JSON object per run");
  ps->callback([all, json, &context] { context.exit_code = list_runs(*all, *json); });

  CLI::App* stop = app.add_subcommand("stop", "Stop a live run: its processes get a few seconds, then the VM ends");
  auto stop_id = std::make_shared<std::string>();
  stop->add_option("run", *stop_id, "Run id, or a unique prefix of at least 4 characters")->required();
  stop->callback([stop_id, &context] { context.exit_code = stop_run(*stop_id); });

  CLI::App* extend = app.add_subcommand("extend", "Push a live run's deadline out");
  auto extend_id = std::make_shared<std::string>();
  auto extend_by = std::make_shared<std::string>();
  extend->add_option("run", *extend_id, "Run id, or a unique prefix of at least 4 characters")->required();
  extend->add_option("duration", *extend_by, "How much later the deadline falls, such as 30m or 2h")
      ->required()
      ->type_name("DURATION");
  extend->callback([extend_id, extend_by, &context] { context.exit_code = extend_run(*extend_id, *extend_by); });

  CLI::App* logs = app.add_subcommand("logs", "Print a run's serial console log (kernel and guest init messages)");
  auto logs_id = std::make_shared<std::string>();
  auto supervisor_log = std::make_shared<bool>(false);
  auto raw = std::make_shared<bool>(false);
  logs->add_option("run", *logs_id, "Run id, or a unique prefix of at least 4 characters")->required();
  auto output_log = std::make_shared<bool>(false);
  logs->add_flag("--supervisor", *supervisor_log, "Print the supervisor's log instead");
  logs->add_flag("--output", *output_log, "Print a detached run's stdout and stderr instead")
      ->excludes("--supervisor");
  logs->add_flag("--raw", *raw,
                 "Print the log byte for byte; by default control characters the guest wrote are escaped as \\xNN");
  logs->callback([logs_id, supervisor_log, output_log, raw, &context] {
    const char* file = *supervisor_log ? "supervisor.log" : *output_log ? "output.log" : "console.log";
    context.exit_code = show_logs(*logs_id, file, *raw);
  });
}

}  // namespace zwrm::cli
