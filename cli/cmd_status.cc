// `zwrm ps`, `zwrm stop` and `zwrm logs`: looking at runs and ending them.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/printable.h"
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
  return {{"id", run.id}, {"project", run.project}, {"template", run.template_name},
          {"command", nlohmann::json::parse(run.command, nullptr, false)}, {"state", run.state},
          {"accel", run.accel}, {"cpus", run.cpus}, {"memory_mib", run.memory_mib},
          {"timeout_ms", run.timeout_ms ? nlohmann::json(*run.timeout_ms) : nlohmann::json(nullptr)},
          {"created_at_ms", run.created_at_ms},
          {"ended_at_ms", run.ended_at_ms ? nlohmann::json(*run.ended_at_ms) : nlohmann::json(nullptr)},
          {"exit_code", run.exit_code ? nlohmann::json(*run.exit_code) : nlohmann::json(nullptr)},
          {"stop_cause", run.stop_cause}, {"stop_detail", run.stop_detail},
          {"supervisor_pid", run.supervisor_pid}};
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
  std::printf("%-12s  %-16s  %-8s  %-8s  %-5s  %4s  %8s  %-8s  %-19s  %s\n", "RUN", "PROJECT", "TEMPLATE", "STATE",
              "ACCEL", "CPUS", "MEMORY", "UPTIME", "EXIT", "COMMAND");
  for (const state::Run& run : *runs) {
    const std::string exit = run.state != "ended" ? ""
                             : run.exit_code    ? std::to_string(*run.exit_code) + " " + run.stop_cause
                                                : run.stop_cause;
    std::printf("%-12s  %-16s  %-8s  %-8s  %-5s  %4u  %8s  %-8s  %-19s  %s\n", run.id.c_str(), run.project.c_str(),
                run.template_name.c_str(), run.state.c_str(), run.accel.c_str(), run.cpus,
                sys::format_size(run.memory_mib << 20).c_str(),
                age(run.created_at_ms, run.ended_at_ms.value_or(now)).c_str(), exit.c_str(),
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
  if (auto sent = supervisor::send_control_frame(socket, protocol::FrameType::kStopRequest,
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

int show_logs(const std::string& id, bool supervisor_log, bool raw) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto run = state::find_run(*session->db, id);
  if (!run) return report_error(run.error());
  const std::string path = run->log_dir + (supervisor_log ? "/supervisor.log" : "/console.log");
  if (!sys::path_exists(run->log_dir)) {
    return report_error({"the logs of run " + run->id + " were removed; zwrm keeps those of the newest " +
                         std::to_string(supervisor::kKeptRunLogs) + " ended runs"});
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

  CLI::App* logs = app.add_subcommand("logs", "Print a run's serial console log (kernel and guest init messages)");
  auto logs_id = std::make_shared<std::string>();
  auto supervisor_log = std::make_shared<bool>(false);
  auto raw = std::make_shared<bool>(false);
  logs->add_option("run", *logs_id, "Run id, or a unique prefix of at least 4 characters")->required();
  logs->add_flag("--supervisor", *supervisor_log, "Print the supervisor's log instead");
  logs->add_flag("--raw", *raw,
                 "Print the log byte for byte; by default control characters the guest wrote are escaped as \\xNN");
  logs->callback([logs_id, supervisor_log, raw, &context] {
    context.exit_code = show_logs(*logs_id, *supervisor_log, *raw);
  });
}

}  // namespace zwrm::cli
