// The audit log: the one writer every component calls to record what
// happened, and the queries, verification and pruning over it.
//
// Rows are append-only: triggers reject UPDATE, and DELETE outside
// prune_events. The log is tamper-evident: each row carries the SHA-256 of
// the previous row's hash and its own canonical content (id, time, agent,
// run, source, type, actor and data), so an edited, deleted or reordered row
// breaks the chain. After every commit the newest row's id and hash are also
// written to a head file beside the database (zwrm.db.audit-head), so
// dropping the newest rows, or rebuilding the whole chain, is detected too.
// Event data never contains a secret's value, because callers pass names only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "state/database.h"

namespace zwrm::state {

enum class EventSource { kHost, kGuest };

const char* source_name(EventSource source);  // "host" or "guest"

struct Event {
  std::string project;  // the agent; empty for events about no agent
  std::string run;      // empty for events outside a run
  EventSource source = EventSource::kHost;
  std::string type;     // dotted name: run.start, run.exec, egress, guest.process, ...
  nlohmann::json data = nlohmann::json::object();
  // The cause of the event: "root (uid 0)" for a CLI call, the run's user
  // for its supervisor, "guest" for guest-reported events. When empty,
  // append_event fills in the calling process's Unix user.
  std::string actor;
  std::int64_t time_ms = 0;  // 0: now
  // Set when read back.
  std::int64_t id = 0;
  std::string prev_hash;
  std::string hash;
};

// Returns "NAME (uid N)" for the calling process's real user.
std::string current_actor();
// Returns "NAME (uid N)" for uid, with NAME "unknown" when it has no entry.
std::string actor_for_uid(uid_t uid);

// Appends one event and returns its id. Works inside and outside
// state::transaction(). The head file is written once the row is committed.
Result<std::int64_t> append_event(Database& db, Event event);

struct EventFilter {
  std::string project;            // exact; empty: any
  std::string run;                // exact; empty: any
  std::string type;               // exact, or a prefix ending in '.' ("run.") matches the family; empty: any
  std::optional<EventSource> source;
  std::optional<std::int64_t> since_ms;  // time >= since
  std::optional<std::int64_t> until_ms;  // time < until
  std::string grep;               // substring of type, agent, run or data (case-sensitive); empty: any
  std::int64_t after_id = 0;      // id > after_id (for --follow)
  std::optional<std::int64_t> limit;  // the newest N that match, still returned oldest first
};

// Returns matching events in id order.
Result<std::vector<Event>> read_events(Database& db, const EventFilter& filter);
// Returns all events of one run (or every event when run is empty) in id order.
Result<std::vector<Event>> read_events(Database& db, const std::string& run = {});
Result<std::optional<Event>> find_event(Database& db, std::int64_t id);

// Returns the event as one JSON object with every field, hashes included:
// the form of `zwrm audit --json` and `zwrm audit export`.
nlohmann::json event_json(const Event& event);

struct VerifyReport {
  bool ok = true;
  std::int64_t events = 0;         // rows checked
  std::int64_t first_id = 0;       // oldest row checked (0 when none)
  std::int64_t last_id = 0;        // newest row checked
  std::optional<std::int64_t> broken_id;  // first row where the chain breaks, when !ok
  std::string problem;             // what is wrong there, one sentence
};

// Checks the whole chain and the head file. A chain that starts after a
// prune must start at the anchor a prune event recorded.
Result<VerifyReport> verify_events(Database& db);

struct PruneResult {
  std::int64_t removed = 0;
  std::int64_t event_id = 0;  // the audit.prune event recording it
};

// Removes every event older than before_ms and appends an audit.prune event
// with the count and the hash the oldest remaining row chains from, so the
// rest stays verifiable.
Result<PruneResult> prune_events(Database& db, std::int64_t before_ms);

// The head file of the database at db_path.
std::string audit_head_path(const std::string& db_path);

// Gives every event without a hash its hash, in id order, and writes the
// head file. Only the schema migration that added hashes calls it, for the
// events written before.
Status hash_unhashed_events(Database& db);

}  // namespace zwrm::state
