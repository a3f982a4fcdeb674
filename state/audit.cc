#include "state/audit.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include <openssl/sha.h>

#include "common/unique_fd.h"

namespace zwrm::state {

namespace {

using nlohmann::json;

constexpr const char* kColumns = "id, time, project, run, source, type, data, actor, prev_hash, hash";

// The text a row's hash covers: every column but the hashes, in a fixed
// order, as one JSON array, so no field can move into another.
std::string canonical_content(std::int64_t id, std::int64_t time_ms, const std::string& project,
                              const std::string& run, const std::string& source, const std::string& type,
                              const std::string& actor, const std::string& data_text) {
  return json::array({id, time_ms, project, run, source, type, actor, data_text})
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string chain_hash(const std::string& prev_hash, const std::string& content) {
  const std::string input = prev_hash + "\n" + content;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : digest) {
    hex.push_back(kHex[byte >> 4]);
    hex.push_back(kHex[byte & 0xf]);
  }
  return hex;
}

// One row as stored, with its data still as text.
struct StoredRow {
  std::int64_t id = 0;
  std::int64_t time_ms = 0;
  std::string project, run, source, type, data_text, actor, prev_hash, hash;

  std::string expected_hash() const {
    return chain_hash(prev_hash, canonical_content(id, time_ms, project, run, source, type, actor, data_text));
  }
};

StoredRow read_row(const Statement& query) {
  StoredRow row;
  row.id = query.integer(0);
  row.time_ms = query.integer(1);
  row.project = query.text(2);
  row.run = query.text(3);
  row.source = query.text(4);
  row.type = query.text(5);
  row.data_text = query.text(6);
  row.actor = query.text(7);
  row.prev_hash = query.text(8);
  row.hash = query.text(9);
  return row;
}

Event to_event(const StoredRow& row) {
  Event event;
  event.id = row.id;
  event.time_ms = row.time_ms;
  event.project = row.project;
  event.run = row.run;
  event.source = row.source == "guest" ? EventSource::kGuest : EventSource::kHost;
  event.type = row.type;
  event.data = json::parse(row.data_text, nullptr, false);
  if (event.data.is_discarded()) event.data = row.data_text;  // shown as it is, and verify reports it
  event.actor = row.actor;
  event.prev_hash = row.prev_hash;
  event.hash = row.hash;
  return event;
}

struct Head {
  std::int64_t id = 0;
  std::string hash;
};

std::optional<Head> read_head(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "re");
  if (file == nullptr) return std::nullopt;
  long long id = 0;
  char hash[65] = {};
  const int fields = std::fscanf(file, "%lld %64s", &id, hash);
  std::fclose(file);
  if (fields != 2) return Head{-1, ""};  // unreadable: verify reports it
  return Head{id, hash};
}

// Writes the head file if id is newer than what it names, and only while
// the event the head names is still in the database with that hash. So
// after the newest events were deleted, or an older copy of the database
// was put back, the head stays where it was and verify_events reports it.
// A lock file orders concurrent writers, and a rename makes the update
// atomic. A prune, which may remove the event the head names, passes
// after_prune to move the head anyway.
void write_head(Database& db, std::int64_t id, const std::string& hash, bool after_prune = false) {
  const std::string path = audit_head_path(db.path());
  UniqueFd lock(::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock || ::flock(lock.get(), LOCK_EX) != 0) return;
  const std::optional<Head> current = read_head(path);
  if (current && current->id >= id) return;
  if (current && !after_prune) {
    auto query = db.prepare("SELECT hash FROM events WHERE id = ?");
    if (!query) return;
    query->bind(1, current->id);
    auto row = query->step();
    if (!row || !*row || query->text(0) != current->hash) return;
  }
  const std::string temporary = path + ".tmp";
  UniqueFd file(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!file) return;
  const std::string text = std::to_string(id) + " " + hash + "\n";
  if (::write(file.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) || ::fsync(file.get()) != 0) {
    return;
  }
  file.reset();
  ::rename(temporary.c_str(), path.c_str());
}

// Returns every event as stored, in id order.
Result<std::vector<StoredRow>> all_rows(Database& db) {
  auto query = db.prepare((std::string("SELECT ") + kColumns + " FROM events ORDER BY id").c_str());
  if (!query) return tl::unexpected(query.error());
  std::vector<StoredRow> rows;
  for (;;) {
    auto row = query->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return rows;
    rows.push_back(read_row(*query));
  }
}

Result<std::optional<StoredRow>> newest_row(Database& db) {
  auto query = db.prepare((std::string("SELECT ") + kColumns + " FROM events ORDER BY id DESC LIMIT 1").c_str());
  if (!query) return tl::unexpected(query.error());
  auto row = query->step();
  if (!row) return tl::unexpected(row.error());
  if (!*row) return std::optional<StoredRow>();
  return std::optional<StoredRow>(read_row(*query));
}

// The id the next row gets: past every id ever used, as AUTOINCREMENT does,
// so a pruned or deleted id is never reused.
Result<std::int64_t> next_event_id(Database& db) {
  auto query = db.prepare(
      "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0), "
      "coalesce((SELECT max(id) FROM events), 0)) + 1");
  if (!query) return tl::unexpected(query.error());
  auto row = query->step();
  if (!row) return tl::unexpected(row.error());
  return query->integer(0);
}

}  // namespace

const char* source_name(EventSource source) { return source == EventSource::kHost ? "host" : "guest"; }

std::string current_actor() { return actor_for_uid(::getuid()); }

std::string actor_for_uid(uid_t uid) {
  passwd entry{};
  passwd* found = nullptr;
  char buffer[4096];
  const std::string name =
      ::getpwuid_r(uid, &entry, buffer, sizeof buffer, &found) == 0 && found != nullptr ? found->pw_name : "unknown";
  return name + " (uid " + std::to_string(uid) + ")";
}

std::string audit_head_path(const std::string& db_path) { return db_path + ".audit-head"; }

Result<std::int64_t> append_event(Database& db, Event event) {
  if (event.actor.empty()) event.actor = current_actor();
  if (event.time_ms == 0) event.time_ms = now_unix_ms();
  const std::string source = source_name(event.source);
  // Data can carry bytes a guest chose (a request path, a TLS server name)
  // that are not UTF-8: they are stored as U+FFFD rather than failing.
  const std::string data_text = event.data.dump(-1, ' ', false, json::error_handler_t::replace);
  std::int64_t id = 0;
  std::string hash;
  auto appended = transaction(db, [&]() -> Status {
    auto newest = newest_row(db);
    if (!newest) return tl::unexpected(newest.error());
    auto next = next_event_id(db);
    if (!next) return tl::unexpected(next.error());
    id = *next;
    const std::string prev_hash = *newest ? (*newest)->hash : std::string();
    hash = chain_hash(prev_hash, canonical_content(id, event.time_ms, event.project, event.run, source, event.type,
                                                   event.actor, data_text));
    auto insert = db.prepare(
        "INSERT INTO events (id, time, project, run, source, type, data, actor, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!insert) return tl::unexpected(insert.error());
    insert->bind(1, id)
        .bind(2, event.time_ms)
        .bind(3, event.project)
        .bind(4, event.run)
        .bind(5, source)
        .bind(6, event.type)
        .bind(7, data_text)
        .bind(8, event.actor)
        .bind(9, prev_hash)
        .bind(10, hash);
    if (auto done = insert->run(); !done) return done;
    db.after_commit([&db, id, hash] { write_head(db, id, hash); }, "audit-head");
    return {};
  });
  if (!appended) return tl::unexpected(appended.error());
  return id;
}

Status hash_unhashed_events(Database& db) {
  auto stored = all_rows(db);
  if (!stored) return tl::unexpected(stored.error());
  std::vector<StoredRow>& rows = *stored;
  std::string prev_hash;
  for (StoredRow& row : rows) {
    row.prev_hash = prev_hash;
    row.hash = row.expected_hash();
    auto update = db.prepare("UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?");
    if (!update) return tl::unexpected(update.error());
    update->bind(1, row.prev_hash).bind(2, row.hash).bind(3, row.id);
    if (auto done = update->run(); !done) return done;
    prev_hash = row.hash;
  }
  if (!rows.empty()) {
    db.after_commit([&db, id = rows.back().id, hash = rows.back().hash] { write_head(db, id, hash); }, "audit-head");
  }
  return {};
}

Result<std::vector<Event>> read_events(Database& db, const EventFilter& filter) {
  std::string where =
      " WHERE id > ?1 AND (?2 = '' OR project = ?2) AND (?3 = '' OR run = ?3)"
      " AND (?4 = '' OR type = ?4 OR (substr(?4, -1) = '.' AND substr(type, 1, length(?4)) = ?4))"
      " AND (?5 = '' OR source = ?5) AND (?6 IS NULL OR time >= ?6) AND (?7 IS NULL OR time < ?7)"
      " AND (?8 = '' OR instr(type || ' ' || project || ' ' || run || ' ' || data, ?8) > 0)";
  std::string sql = std::string("SELECT ") + kColumns + " FROM events" + where;
  sql = filter.limit ? std::string("SELECT * FROM (") + sql + " ORDER BY id DESC LIMIT ?9) ORDER BY id"
                     : sql + " ORDER BY id";
  auto query = db.prepare(sql.c_str());
  if (!query) return tl::unexpected(query.error());
  query->bind(1, filter.after_id)
      .bind(2, filter.project)
      .bind(3, filter.run)
      .bind(4, filter.type)
      .bind(5, filter.source ? std::string(source_name(*filter.source)) : std::string())
      .bind(6, filter.since_ms)
      .bind(7, filter.until_ms)
      .bind(8, filter.grep);
  if (filter.limit) query->bind(9, *filter.limit);
  std::vector<Event> events;
  for (;;) {
    auto row = query->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return events;
    events.push_back(to_event(read_row(*query)));
  }
}

Result<std::vector<Event>> read_events(Database& db, const std::string& run) {
  EventFilter filter;
  filter.run = run;
  return read_events(db, filter);
}

Result<std::optional<Event>> find_event(Database& db, std::int64_t id) {
  auto query = db.prepare((std::string("SELECT ") + kColumns + " FROM events WHERE id = ?").c_str());
  if (!query) return tl::unexpected(query.error());
  query->bind(1, id);
  auto row = query->step();
  if (!row) return tl::unexpected(row.error());
  if (!*row) return std::optional<Event>();
  return std::optional<Event>(to_event(read_row(*query)));
}

json event_json(const Event& event) {
  char time_text[48] = "";
  const std::time_t seconds = static_cast<std::time_t>(event.time_ms / 1000);
  std::tm parts{};
  if (::gmtime_r(&seconds, &parts) != nullptr) {
    std::snprintf(time_text, sizeof time_text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900,
                  parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
                  static_cast<int>(event.time_ms % 1000));
  }
  return {{"id", event.id},       {"time", time_text},    {"time_ms", event.time_ms},
          {"agent", event.project}, {"run", event.run},   {"source", source_name(event.source)},
          {"type", event.type},   {"actor", event.actor}, {"data", event.data},
          {"prev_hash", event.prev_hash}, {"hash", event.hash}};
}

Result<VerifyReport> verify_events(Database& db) {
  VerifyReport report;
  auto stored = all_rows(db);
  if (!stored) return tl::unexpected(stored.error());
  const std::vector<StoredRow>& rows = *stored;
  const auto broken = [&](std::int64_t id, std::string problem) {
    report.ok = false;
    report.broken_id = id;
    report.problem = std::move(problem);
    return report;
  };

  report.events = static_cast<std::int64_t>(rows.size());
  if (!rows.empty()) {
    report.first_id = rows.front().id;
    report.last_id = rows.back().id;
  }
  // The chain may start after a prune: then a later audit.prune event must
  // name the hash the oldest row chains from.
  if (!rows.empty() && !rows.front().prev_hash.empty()) {
    bool anchored = false;
    for (const StoredRow& row : rows) {
      if (row.type != "audit.prune") continue;
      const json data = json::parse(row.data_text, nullptr, false);
      anchored = anchored || (data.is_object() && data.value("anchor_hash", "") == rows.front().prev_hash);
    }
    if (!anchored) {
      return broken(rows.front().id,
                    "it follows an event that is missing, and no audit.prune event records removing it "
                    "(older events were deleted)");
    }
  }
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const StoredRow& row = rows[i];
    if (i > 0 && row.prev_hash != rows[i - 1].hash) {
      return broken(row.id, "it does not follow event #" + std::to_string(rows[i - 1].id) +
                                " in the chain (events before it were deleted, inserted or reordered)");
    }
    if (row.hash != row.expected_hash()) {
      return broken(row.id, "its content does not match its hash (the event was edited)");
    }
  }

  const std::string head_path = audit_head_path(db.path());
  const std::optional<Head> head = read_head(head_path);
  if (!head) {
    if (rows.empty()) return report;
    return broken(rows.back().id, "the head file " + head_path + " is missing");
  }
  if (head->id < 0) return broken(report.last_id, "the head file " + head_path + " is unreadable");
  if (rows.empty() || head->id > rows.back().id) {
    return broken(head->id, "the head file names event #" + std::to_string(head->id) + " but the newest event is #" +
                                std::to_string(report.last_id) + " (the newest events were removed)");
  }
  for (const StoredRow& row : rows) {
    if (row.id != head->id) continue;
    if (row.hash != head->hash) {
      return broken(row.id, "its hash differs from the one the head file recorded (the log was rebuilt)");
    }
    return report;
  }
  return broken(head->id, "the head file names event #" + std::to_string(head->id) + ", which is missing");
}

Result<PruneResult> prune_events(Database& db, std::int64_t before_ms) {
  PruneResult result;
  std::int64_t prune_id = 0;
  auto pruned = transaction(db, [&]() -> Status {
    auto last = db.prepare("SELECT id, hash FROM events WHERE time < ? ORDER BY id DESC LIMIT 1");
    if (!last) return tl::unexpected(last.error());
    last->bind(1, before_ms);
    auto row = last->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return {};
    // Removes a prefix by id, so the remaining events stay one chain.
    const std::int64_t last_id = last->integer(0);
    const std::string anchor = last->text(1);
    auto count = db.prepare("SELECT count(*) FROM events WHERE id <= ?");
    if (!count) return tl::unexpected(count.error());
    count->bind(1, last_id);
    if (auto counted = count->step(); !counted) return tl::unexpected(counted.error());
    result.removed = count->integer(0);

    if (auto guarded = db.execute("INSERT INTO events_prune_guard VALUES (1)"); !guarded) return guarded;
    auto remove = db.prepare("DELETE FROM events WHERE id <= ?");
    if (!remove) return tl::unexpected(remove.error());
    remove->bind(1, last_id);
    if (auto done = remove->run(); !done) return done;
    if (auto unguarded = db.execute("DELETE FROM events_prune_guard"); !unguarded) return unguarded;

    auto appended = append_event(db, {"", "", EventSource::kHost, "audit.prune",
                                      {{"before_ms", before_ms}, {"removed", result.removed},
                                       {"last_removed_id", last_id}, {"anchor_hash", anchor}}});
    if (!appended) return tl::unexpected(appended.error());
    prune_id = *appended;
    auto newest = newest_row(db);
    if (!newest || !*newest) return fail("the audit.prune event just written is missing");
    db.after_commit([&db, id = (*newest)->id, hash = (*newest)->hash] { write_head(db, id, hash, true); },
                    "audit-head");
    return {};
  });
  if (!pruned) return tl::unexpected(pruned.error());
  result.event_id = prune_id;
  return result;
}

}  // namespace zwrm::state
