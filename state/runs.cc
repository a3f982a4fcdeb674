#include "state/runs.h"

#include "common/printable.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace zwrm::state {

namespace {

constexpr const char* kColumns =
    "id, project, template, command, state, accel, cpus, memory_mib, timeout_ms, supervisor_pid, "
    "supervisor_start_ticks, vmm_pid, created_at, ended_at, exit_code, stop_cause, stop_detail, log_dir, "
    "idle_timeout_ms, deadline_at";

Run read_run(const Statement& row) {
  Run run;
  run.id = row.text(0);
  run.project = row.text(1);
  run.template_name = row.text(2);
  run.command = row.text(3);
  run.state = row.text(4);
  run.accel = row.text(5);
  run.cpus = static_cast<unsigned>(row.integer(6));
  run.memory_mib = static_cast<std::uint64_t>(row.integer(7));
  run.timeout_ms = row.optional_integer(8);
  run.supervisor_pid = static_cast<pid_t>(row.integer(9));
  run.supervisor_start_ticks = row.integer(10);
  run.vmm_pid = row.optional_integer(11);
  run.created_at_ms = row.integer(12);
  run.ended_at_ms = row.optional_integer(13);
  run.exit_code = row.optional_integer(14);
  run.stop_cause = row.text(15);
  run.stop_detail = row.text(16);
  run.log_dir = row.text(17);
  run.idle_timeout_ms = row.optional_integer(18);
  run.deadline_at_ms = row.optional_integer(19);
  return run;
}

Result<std::vector<Run>> collect(Statement& query) {
  std::vector<Run> runs;
  for (;;) {
    auto row = query.step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return runs;
    runs.push_back(read_run(query));
  }
}

std::string select_runs(const char* where) { return std::string("SELECT ") + kColumns + " FROM runs " + where; }

}  // namespace

Status insert_run(Database& db, const Run& run) {
  auto insert = db.prepare(
      "INSERT INTO runs (id, project, template, command, state, accel, cpus, memory_mib, timeout_ms, "
      "supervisor_pid, supervisor_start_ticks, created_at, log_dir, idle_timeout_ms, deadline_at) "
      "VALUES (?, ?, ?, ?, 'starting', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!insert) return tl::unexpected(insert.error());
  insert->bind(1, run.id)
      .bind(2, run.project)
      .bind(3, run.template_name)
      .bind(4, run.command)
      .bind(5, run.accel)
      .bind(6, static_cast<std::int64_t>(run.cpus))
      .bind(7, static_cast<std::int64_t>(run.memory_mib))
      .bind(8, run.timeout_ms)
      .bind(9, static_cast<std::int64_t>(run.supervisor_pid))
      .bind(10, run.supervisor_start_ticks)
      .bind(11, run.created_at_ms != 0 ? run.created_at_ms : now_unix_ms())
      .bind(12, run.log_dir)
      .bind(13, run.idle_timeout_ms)
      .bind(14, run.deadline_at_ms);
  return insert->run();
}

Status mark_run_running(Database& db, const std::string& id, pid_t vmm_pid, const std::string& accel) {
  auto update = db.prepare("UPDATE runs SET state = 'running', vmm_pid = ?, accel = ? WHERE id = ? AND state = 'starting'");
  if (!update) return tl::unexpected(update.error());
  update->bind(1, static_cast<std::int64_t>(vmm_pid)).bind(2, accel).bind(3, id);
  return update->run();
}

Status set_run_deadline(Database& db, const std::string& id, std::int64_t deadline_at_ms) {
  auto update = db.prepare("UPDATE runs SET deadline_at = ? WHERE id = ?");
  if (!update) return tl::unexpected(update.error());
  update->bind(1, deadline_at_ms).bind(2, id);
  return update->run();
}

Status mark_run_ended(Database& db, const std::string& id, std::optional<int> exit_code, const std::string& cause,
                      const std::string& detail) {
  auto update = db.prepare(
      "UPDATE runs SET state = 'ended', ended_at = ?, exit_code = ?, stop_cause = ?, stop_detail = ? "
      "WHERE id = ? AND state != 'ended'");
  if (!update) return tl::unexpected(update.error());
  update->bind(1, now_unix_ms())
      .bind(2, exit_code ? std::optional<std::int64_t>(*exit_code) : std::nullopt)
      .bind(3, cause)
      .bind(4, detail)
      .bind(5, id);
  return update->run();
}

Result<std::vector<Run>> list_runs(Database& db, bool live_only) {
  auto query = db.prepare(
      select_runs(live_only ? "WHERE state != 'ended' ORDER BY created_at" : "ORDER BY created_at").c_str());
  if (!query) return tl::unexpected(query.error());
  return collect(*query);
}

Result<std::vector<Run>> list_ended_runs_before(Database& db, int skip) {
  auto query = db.prepare(select_runs("WHERE state = 'ended' ORDER BY created_at DESC LIMIT -1 OFFSET ?").c_str());
  if (!query) return tl::unexpected(query.error());
  query->bind(1, static_cast<std::int64_t>(skip));
  return collect(*query);
}

Result<Run> find_run(Database& db, const std::string& id_or_prefix) {
  if (id_or_prefix.size() < 4 || id_or_prefix.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return fail("invalid run id '" + printable(id_or_prefix) + "'; give at least 4 hex digits of an id from `zwrm ps -a`");
  }
  auto query = db.prepare(select_runs("WHERE id >= ?1 AND id < ?1 || 'g' ORDER BY created_at LIMIT 2").c_str());
  if (!query) return tl::unexpected(query.error());
  query->bind(1, id_or_prefix);
  auto runs = collect(*query);
  if (!runs) return tl::unexpected(runs.error());
  if (runs->empty()) return fail("no run with id " + id_or_prefix + "; `zwrm ps -a` lists runs");
  if (runs->size() > 1) return fail("run id " + id_or_prefix + " is ambiguous; give more of it");
  return std::move(runs->front());
}

Result<std::optional<Run>> find_live_run_of_project(Database& db, const std::string& project) {
  auto query = db.prepare(select_runs("WHERE state != 'ended' AND project = ? ORDER BY created_at DESC LIMIT 1").c_str());
  if (!query) return tl::unexpected(query.error());
  query->bind(1, project);
  auto runs = collect(*query);
  if (!runs) return tl::unexpected(runs.error());
  if (runs->empty()) return std::optional<Run>();
  return std::optional<Run>(std::move(runs->front()));
}

namespace {

// The fields of /proc/PID/stat that tell which process a pid is and whether
// it still runs.
struct ProcessStat {
  char state = 0;                // field 3: R, S, D, ... or Z once it exited but is not yet reaped
  std::int64_t start_ticks = 0;  // field 22; 0 when the process does not exist
};

ProcessStat read_process_stat(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  FILE* file = std::fopen(path, "re");
  if (file == nullptr) return {};
  char buffer[1024];
  const std::size_t size = std::fread(buffer, 1, sizeof buffer - 1, file);
  std::fclose(file);
  buffer[size] = '\0';
  // The command name (field 2) may contain spaces and parentheses; fields
  // after it start behind the last ')'.
  const char* rest = std::strrchr(buffer, ')');
  if (rest == nullptr) return {};
  char state = 0;
  long long ticks = 0;
  // Fields 4..21 are skipped; field 22 is starttime.
  if (std::sscanf(rest + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %lld",
                  &state, &ticks) != 2) {
    return {};
  }
  return {state, ticks};
}

}  // namespace

std::int64_t process_start_ticks(pid_t pid) { return read_process_stat(pid).start_ticks; }

bool supervisor_alive(const Run& run) {
  if (run.supervisor_pid <= 0) return false;
  const ProcessStat stat = read_process_stat(run.supervisor_pid);
  // A killed supervisor stays a zombie until its parent (the client, or
  // init once the client is gone) reaps it, but it has ended all the same.
  return stat.start_ticks == run.supervisor_start_ticks && stat.state != 'Z' && stat.state != 'X';
}

}  // namespace zwrm::state
