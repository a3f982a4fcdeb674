// `zwrm audit`: query the audit log (with --follow to keep printing new
// events), export it as JSON Lines, show one event, verify its hash chain and
// prune old events. The log itself is state/audit.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/run_command.h"
#include "cli/terminal.h"
#include "common/printable.h"
#include "host/sys/units.h"
#include "state/audit.h"
#include "state/names.h"

namespace zwrm::cli {

namespace {

using nlohmann::json;

// The exit status of `zwrm audit verify` when the chain or the head file is
// broken, so scripts can tell it from bad input or a failure to read (125).
constexpr int kExitAuditBroken = 1;

// How long --follow waits between two reads of the database.
constexpr long kFollowIntervalNs = 250'000'000;

// The filter options as typed, shared by the query and `export`.
struct FilterInput {
  std::string agent;
  std::string run;
  std::string type;
  std::string source;
  std::string since;
  std::string until;
  std::string grep;
  std::string limit;
};

struct QueryInput {
  FilterInput filter;
  bool as_json = false;
  bool follow = false;
};

Result<std::int64_t> parse_when(const char* option, const std::string& text, std::int64_t now_ms) {
  auto parsed = sys::parse_time(text, now_ms);
  if (!parsed) return tl::unexpected(with_context(parsed.error(), option));
  return parsed;
}

Result<std::optional<state::EventSource>> parse_source(const std::string& text) {
  if (text.empty()) return std::nullopt;
  if (text == "host") return state::EventSource::kHost;
  if (text == "guest") return state::EventSource::kGuest;
  return fail("invalid --source '" + printable(text) +
              "'; use host (events zwrm recorded) or guest (events the guest reported)");
}

Result<std::optional<std::int64_t>> parse_limit(const std::string& text) {
  if (text.empty()) return std::nullopt;
  const bool digits = text.size() <= 18 && text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || std::stoll(text) == 0) {
    return fail("invalid --limit '" + printable(text) + "'; use a whole number of events from 1 up, such as 50");
  }
  return std::stoll(text);
}

Result<state::EventFilter> build_filter(const FilterInput& input) {
  state::EventFilter filter;
  if (!input.agent.empty()) {
    if (auto valid = state::validate_project_name(input.agent); !valid) {
      return tl::unexpected(with_context(valid.error(), "--agent"));
    }
  }
  filter.project = input.agent;
  filter.run = input.run;
  filter.type = input.type;
  filter.grep = input.grep;

  auto source = parse_source(input.source);
  if (!source) return tl::unexpected(source.error());
  filter.source = *source;
  auto limit = parse_limit(input.limit);
  if (!limit) return tl::unexpected(limit.error());
  filter.limit = *limit;

  const std::int64_t now = state::now_unix_ms();
  if (!input.since.empty()) {
    auto since = parse_when("--since", input.since, now);
    if (!since) return tl::unexpected(since.error());
    filter.since_ms = *since;
  }
  if (!input.until.empty()) {
    auto until = parse_when("--until", input.until, now);
    if (!until) return tl::unexpected(until.error());
    filter.until_ms = *until;
  }
  if (filter.since_ms && filter.until_ms && *filter.since_ms >= *filter.until_ms) {
    return fail("--since '" + printable(input.since) + "' is not before --until '" + printable(input.until) +
                "', so no event can match; swap them or widen the range");
  }
  return filter;
}

// Returns one event as a JSON Lines record. Non-ASCII text is escaped as
// \uXXXX, so the line is ASCII and safe to print on a terminal.
std::string json_line(const state::Event& event) {
  return state::event_json(event).dump(-1, ' ', true, json::error_handler_t::replace);
}

bool is_bare_word(const std::string& text) {
  return !text.empty() && text.find_first_of(" \"=") == std::string::npos;
}

// Formats event data on one line as "key=value ...": a string that needs no
// quotes as it is, any other value as compact JSON.
std::string summarize(const json& data) {
  if (!data.is_object()) return printable(data.dump(-1, ' ', false, json::error_handler_t::replace));
  std::string line;
  for (const auto& [key, value] : data.items()) {
    if (!line.empty()) line += ' ';
    line += key;
    line += '=';
    if (value.is_string() && is_bare_word(value.get_ref<const std::string&>())) {
      line += value.get_ref<const std::string&>();
    } else {
      line += value.dump(-1, ' ', false, json::error_handler_t::replace);
    }
  }
  return printable(line);
}

std::string or_dash(const std::string& text) { return text.empty() ? "-" : printable(text); }

// Prints events as JSON Lines or as aligned text, flushing each line so a
// program reading the pipe gets it at once. Text columns only grow, so what --follow prints later
// stays aligned with what came before unless a value is wider.
class EventPrinter {
 public:
  explicit EventPrinter(bool as_json) : as_json_(as_json) {}

  void print(const std::vector<state::Event>& events) {
    if (as_json_) {
      for (const state::Event& event : events) print_line(json_line(event));
      return;
    }
    for (const state::Event& event : events) fit(event);
    if (!events.empty()) print_header();
    for (const state::Event& event : events) print_text(event);
  }

  // Prints the column titles once; --follow calls it before any event.
  void print_header() {
    if (as_json_ || header_printed_) return;
    header_printed_ = true;
    print_row("TIME", "ID", "SOURCE", "AGENT", "RUN", "TYPE", "DATA");
  }

 private:
  void fit(const state::Event& event) {
    id_width_ = std::max(id_width_, std::to_string(event.id).size());
    agent_width_ = std::max(agent_width_, or_dash(event.project).size());
    run_width_ = std::max(run_width_, or_dash(event.run).size());
    type_width_ = std::max(type_width_, printable(event.type).size());
  }

  void print_text(const state::Event& event) {
    print_row(sys::format_local_time(event.time_ms), std::to_string(event.id), state::source_name(event.source),
              or_dash(event.project), or_dash(event.run), printable(event.type), summarize(event.data));
  }

  void print_row(const std::string& time, const std::string& id, const std::string& source, const std::string& agent,
                 const std::string& run, const std::string& type, const std::string& data) {
    std::printf("%-19s  %*s  %-6s  %-*s  %-*s  %-*s  %s\n", time.c_str(), static_cast<int>(id_width_), id.c_str(),
                source.c_str(), static_cast<int>(agent_width_), agent.c_str(), static_cast<int>(run_width_),
                run.c_str(), static_cast<int>(type_width_), type.c_str(), data.c_str());
    std::fflush(stdout);
  }

  void print_line(const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }

  bool as_json_;
  bool header_printed_ = false;
  // Wide enough for a 12-character run id and common agent and type names,
  // so --follow rarely has to widen a column.
  std::size_t id_width_ = 4;
  std::size_t agent_width_ = 12;
  std::size_t run_width_ = 12;
  std::size_t type_width_ = 14;
};

// Prints the matching events, then reads the database again every 250 ms
// and prints newer ones until SIGINT or SIGTERM, which end it with status 0.
// The two signals are blocked and taken with sigtimedwait, so one that
// arrives during a read ends the wait that follows it.
int follow_events(state::Database& db, state::EventFilter filter, EventPrinter& printer) {
  sigset_t stop_signals;
  ::sigemptyset(&stop_signals);
  ::sigaddset(&stop_signals, SIGINT);
  ::sigaddset(&stop_signals, SIGTERM);
  if (::sigprocmask(SIG_BLOCK, &stop_signals, nullptr) != 0) {
    return report_error(fail_errno("cannot block SIGINT and SIGTERM for --follow").value());
  }
  printer.print_header();
  for (;;) {
    auto events = state::read_events(db, filter);
    if (!events) return report_error(events.error());
    printer.print(*events);
    if (!events->empty()) filter.after_id = events->back().id;
    // --limit applies only to the events there at the start, so every later
    // event is printed.
    filter.limit.reset();

    const timespec interval{0, kFollowIntervalNs};
    const int received = ::sigtimedwait(&stop_signals, nullptr, &interval);
    if (received == SIGINT || received == SIGTERM) return 0;
  }
}

int query_events(const QueryInput& input) {
  auto filter = build_filter(input.filter);
  if (!filter) return report_error(filter.error());
  auto session = open_session();
  if (!session) return report_error(session.error());

  EventPrinter printer(input.as_json);
  if (input.follow) return follow_events(*session->db, *filter, printer);
  auto events = state::read_events(*session->db, *filter);
  if (!events) return report_error(events.error());
  if (events->empty() && !input.as_json) std::fprintf(stderr, "zwrm: no events match\n");
  printer.print(*events);
  return 0;
}

int export_events(const FilterInput& input) {
  auto filter = build_filter(input);
  if (!filter) return report_error(filter.error());
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto events = state::read_events(*session->db, *filter);
  if (!events) return report_error(events.error());

  for (const state::Event& event : *events) std::printf("%s\n", json_line(event).c_str());
  // A full disk behind `> file.jsonl` must not pass as a complete export.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    return report_error(fail_errno("cannot write the exported events to stdout").value());
  }
  return 0;
}

Result<std::int64_t> parse_event_id(const std::string& text) {
  // Accepts "#42" too, as verify and prune print ids.
  const std::string digits = text.starts_with('#') ? text.substr(1) : text;
  const bool valid = !digits.empty() && digits.size() <= 18 &&
                     digits.find_first_not_of("0123456789") == std::string::npos && std::stoll(digits) > 0;
  if (!valid) {
    return fail("invalid event id '" + printable(text) + "'; use a number from the ID column of `zwrm audit`, such as 42");
  }
  return std::stoll(digits);
}

int show_event(const std::string& text) {
  auto id = parse_event_id(text);
  if (!id) return report_error(id.error());
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto event = state::find_event(*session->db, *id);
  if (!event) return report_error(event.error());
  if (!*event) {
    return report_error({"no event #" + std::to_string(*id) +
                         " in the audit log (never written, or pruned); `zwrm audit` lists the events there are"});
  }
  std::printf("%s\n", state::event_json(**event).dump(2, ' ', true, json::error_handler_t::replace).c_str());
  return 0;
}

int verify_log() {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto report = state::verify_events(*session->db);
  if (!report) return report_error(report.error());
  if (!report->ok) {
    const std::string where = report->broken_id ? " at event #" + std::to_string(*report->broken_id) : "";
    std::fprintf(stderr, "zwrm: error: the audit log is broken%s: %s\n", where.c_str(),
                 printable(report->problem).c_str());
    return kExitAuditBroken;
  }
  if (report->events == 0) {
    std::printf("ok: no events, head intact\n");
    return 0;
  }
  std::printf("ok: %lld event%s from #%lld to #%lld, chain and head intact\n", static_cast<long long>(report->events),
              report->events == 1 ? "" : "s", static_cast<long long>(report->first_id),
              static_cast<long long>(report->last_id));
  return 0;
}

int prune_log(const std::string& before_text, bool yes) {
  const std::int64_t now = state::now_unix_ms();
  auto before = parse_when("--before", before_text, now);
  if (!before) return report_error(before.error());
  if (*before > now) {
    return report_error({"--before '" + printable(before_text) + "' is in the future (" +
                         sys::format_local_time(*before) + "); give a time in the past, such as 90d"});
  }
  const std::string when = sys::format_local_time(*before);
  auto session = open_session();
  if (!session) return report_error(session.error());

  // Checks only whether one exists, because counting them would mean reading
  // them all.
  state::EventFilter older;
  older.until_ms = *before;
  older.limit = 1;
  auto newest_older = state::read_events(*session->db, older);
  if (!newest_older) return report_error(newest_older.error());
  if (newest_older->empty()) {
    std::printf("no events before %s; nothing removed\n", when.c_str());
    return 0;
  }

  if (!yes && !::isatty(STDIN_FILENO)) {
    return report_error({"nothing removed: pruning deletes events for good, so it asks first, and stdin is not a "
                         "terminal; pass --yes to prune without asking"});
  }
  if (!yes && !confirm("Remove every audit event before " + when + " for good?")) {
    return report_error({"nothing removed: pruning needs confirmation; answer y, or pass --yes"});
  }
  auto pruned = state::prune_events(*session->db, *before);
  if (!pruned) return report_error(pruned.error());
  std::printf("removed %lld event%s before %s; event #%lld records the prune\n",
              static_cast<long long>(pruned->removed), pruned->removed == 1 ? "" : "s", when.c_str(),
              static_cast<long long>(pruned->event_id));
  return 0;
}

void add_filter_options(CLI::App& command, FilterInput& input) {
  command.add_option("--agent", input.agent, "Only events of this agent")->type_name("NAME");
  command.add_option("--run", input.run, "Only events of this run: the run's story in order")->type_name("RUN");
  command.add_option("--type", input.type, "Only events of this type (run.exec), or of a family when TYPE ends in '.' (run.)")
      ->type_name("TYPE");
  command.add_option("--source", input.source, "Only events zwrm recorded on the host, or the guest reported")
      ->type_name("host|guest");
  command
      .add_option("--since", input.since,
                  "Only events at or after WHEN: a duration back from now (30m, 2h, 7d) or a date and time "
                  "(2026-12-04, 2026-12-04 10:00, 2026-12-04T10:00:00Z), local time unless it ends in Z or an offset")
      ->type_name("WHEN");
  command.add_option("--until", input.until, "Only events before WHEN, in the forms of --since")->type_name("WHEN");
  command.add_option("--grep", input.grep, "Only events whose type, agent, run or data contains TEXT (case-sensitive)")
      ->type_name("TEXT");
  command.add_option("--limit", input.limit, "Only the newest N matching events, still oldest first")->type_name("N");
}

// Rejects options given to `zwrm audit` before a subcommand name, which
// CLI11 would otherwise give to the query and the subcommand would ignore.
Status check_no_parent_options(const CLI::App& audit, const CLI::App& subcommand) {
  for (const CLI::Option* option : audit.get_options()) {
    if (option->count() > 0) {
      return fail(option->get_name() + " must come after `zwrm audit " + subcommand.get_name() + "`, not before it");
    }
  }
  return {};
}

// Runs body, the query when subcommand is null, unless an option is empty
// or misplaced, and stores its exit code.
void run_checked(const CLI::App& audit, const CLI::App* subcommand, Context& context,
                 const std::function<int()>& body) {
  Status valid = subcommand != nullptr ? check_no_parent_options(audit, *subcommand) : Status{};
  if (valid) valid = check_no_empty_values(subcommand != nullptr ? *subcommand : audit);
  context.exit_code = valid ? body() : report_error(valid.error());
}

}  // namespace

void add_audit_commands(CLI::App& app, Context& context) {
  auto query = std::make_shared<QueryInput>();
  CLI::App* audit = app.add_subcommand(
      "audit", "Query the audit log of what zwrm, its runs and their guests did, or export, show, verify or prune it");
  audit->require_subcommand(0, 1);
  add_filter_options(*audit, query->filter);
  audit->add_flag("--json", query->as_json, "Print one JSON object per event (JSON Lines) with every field");
  audit->add_flag("-f,--follow", query->follow, "Keep printing new matching events until interrupted (Ctrl-C)");
  audit->callback([audit, query, &context] {
    if (!audit->get_subcommands().empty()) return;
    run_checked(*audit, nullptr, context, [query] { return query_events(*query); });
  });

  auto exported = std::make_shared<FilterInput>();
  CLI::App* export_command = audit->add_subcommand(
      "export", "Write the matching events to stdout as JSON Lines, with hashes, for `> events.jsonl`");
  add_filter_options(*export_command, *exported);
  export_command->callback([=, &context] {
    run_checked(*audit, export_command, context, [exported] { return export_events(*exported); });
  });

  auto event_id = std::make_shared<std::string>();
  CLI::App* show = audit->add_subcommand("show", "Print one event in full as JSON, with its hashes");
  show->add_option("event", *event_id, "Event id, from the ID column of `zwrm audit`")->required()->type_name("EVENT");
  show->callback([=, &context] { run_checked(*audit, show, context, [event_id] { return show_event(*event_id); }); });

  CLI::App* verify = audit->add_subcommand(
      "verify", "Check the hash chain and the head file; exits 1 and names the first bad event when the log was altered");
  verify->callback([=, &context] { run_checked(*audit, verify, context, [] { return verify_log(); }); });

  auto before = std::make_shared<std::string>();
  auto yes = std::make_shared<bool>(false);
  CLI::App* prune = audit->add_subcommand(
      "prune", "Remove events older than WHEN; the rest stays verifiable and an audit.prune event records it");
  prune->add_option("--before", *before, "Remove events before WHEN: a duration back from now (90d) or a date and time")
      ->required()
      ->type_name("WHEN");
  prune->add_flag("-y,--yes", *yes, "Prune without asking");
  prune->callback(
      [=, &context] { run_checked(*audit, prune, context, [before, yes] { return prune_log(*before, *yes); }); });
}

}  // namespace zwrm::cli
