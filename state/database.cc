#include "state/database.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "state/audit.h"

namespace zwrm::state {

namespace {

// Each entry upgrades the schema by one version; PRAGMA user_version holds
// the number applied. Never edit an entry that has shipped: append one.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE projects (
  name TEXT PRIMARY KEY,
  template TEXT NOT NULL,
  volume_path TEXT NOT NULL,
  volume_bytes INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  project TEXT NOT NULL,
  template TEXT NOT NULL,
  command TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('starting', 'running', 'ended')),
  accel TEXT NOT NULL DEFAULT '',
  cpus INTEGER NOT NULL,
  memory_mib INTEGER NOT NULL,
  timeout_ms INTEGER,
  supervisor_pid INTEGER NOT NULL,
  supervisor_start_ticks INTEGER NOT NULL,
  vmm_pid INTEGER,
  created_at INTEGER NOT NULL,
  ended_at INTEGER,
  exit_code INTEGER,
  stop_cause TEXT,
  stop_detail TEXT,
  log_dir TEXT NOT NULL
);
CREATE INDEX runs_by_state ON runs (state, project);
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time INTEGER NOT NULL,
  project TEXT NOT NULL DEFAULT '',
  run TEXT NOT NULL DEFAULT '',
  source TEXT NOT NULL CHECK (source IN ('host', 'guest')),
  type TEXT NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX events_by_run ON events (run, id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
  BEGIN SELECT RAISE(ABORT, 'the events table is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
  BEGIN SELECT RAISE(ABORT, 'the events table is append-only'); END;
)sql",
    // Projects become agents: the same volume with persistent settings, an
    // environment and secrets (encrypted; the key is kept outside the
    // database).
    R"sql(
CREATE TABLE agents (
  name TEXT PRIMARY KEY,
  template TEXT NOT NULL,
  volume_path TEXT NOT NULL,
  volume_bytes INTEGER NOT NULL,
  cpus INTEGER NOT NULL DEFAULT 1,
  memory_mib INTEGER NOT NULL DEFAULT 512,
  timeout_ms INTEGER,
  idle_timeout_ms INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
INSERT INTO agents (name, template, volume_path, volume_bytes, created_at, updated_at)
  SELECT name, template, volume_path, volume_bytes, created_at, created_at FROM projects;
DROP TABLE projects;
CREATE TABLE agent_env (
  agent TEXT NOT NULL REFERENCES agents (name) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (agent, key)
);
CREATE TABLE secrets (
  agent TEXT NOT NULL REFERENCES agents (name) ON DELETE CASCADE,
  name TEXT NOT NULL,
  nonce BLOB NOT NULL,
  ciphertext BLOB NOT NULL,
  set_at INTEGER NOT NULL,
  PRIMARY KEY (agent, name)
);
)sql",
    // Runs record their idle deadline and when the hard deadline falls, so
    // `zwrm ps` can show time left after `zwrm extend`.
    R"sql(
ALTER TABLE runs ADD COLUMN idle_timeout_ms INTEGER;
ALTER TABLE runs ADD COLUMN deadline_at INTEGER;
)sql",
    // Egress: each agent's policy rules (seeded from its template's defaults
    // the first time they are needed, so agents created before this version
    // get them too) and its bandwidth and connection limits (NULL: the
    // defaults).
    R"sql(
CREATE TABLE policy_rules (
  agent TEXT NOT NULL REFERENCES agents (name) ON DELETE CASCADE,
  rule TEXT NOT NULL,
  added_at INTEGER NOT NULL,
  PRIMARY KEY (agent, rule)
);
ALTER TABLE agents ADD COLUMN policy_seeded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN egress_rate INTEGER;
ALTER TABLE agents ADD COLUMN ingress_rate INTEGER;
ALTER TABLE agents ADD COLUMN egress_quota INTEGER;
ALTER TABLE agents ADD COLUMN max_connections INTEGER;
)sql",
    // A tamper-evident audit log: each event records who caused it and
    // carries a hash chained to the previous event's. Deleting is allowed
    // only while events_prune_guard has a row, which only zwrm audit prune
    // adds, inside its own transaction. The update trigger comes back after
    // the existing rows get their hashes (kAfterMigration below).
    R"sql(
ALTER TABLE events ADD COLUMN actor TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN hash TEXT NOT NULL DEFAULT '';
CREATE INDEX events_by_time ON events (time);
CREATE INDEX events_by_project ON events (project, id);
CREATE TABLE events_prune_guard (active INTEGER NOT NULL);
DROP TRIGGER IF EXISTS events_no_update;
DROP TRIGGER IF EXISTS events_no_delete;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events WHEN NOT EXISTS (SELECT 1 FROM events_prune_guard)
  BEGIN SELECT RAISE(ABORT, 'the events table is append-only; zwrm audit prune removes old events'); END;
)sql",
};

// Work a migration needs beyond SQL, run right after the migration of the
// same index, in the same transaction.
Status add_event_hashes(Database& db) {
  if (auto hashed = hash_unhashed_events(db); !hashed) return hashed;
  return db.execute(
      "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
      "BEGIN SELECT RAISE(ABORT, 'the events table is append-only'); END;");
}

Status (*const kAfterMigration[])(Database&) = {nullptr, nullptr, nullptr, nullptr, add_event_hashes};
static_assert(std::size(kAfterMigration) == std::size(kMigrations));

}  // namespace

std::int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<std::unique_ptr<Database>> Database::open(const std::string& path) {
  // Created owner-only, because it contains every agent's settings and the
  // audit log. SQLite gives its -wal and -shm files the same mode.
  if (const int created = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600); created >= 0) {
    ::close(created);
  }
  sqlite3* handle = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW;
  if (sqlite3_open_v2(path.c_str(), &handle, flags, nullptr) != SQLITE_OK) {
    std::string message = "cannot open database " + path + ": " + sqlite3_errmsg(handle);
    sqlite3_close(handle);
    return fail(message + "; check that ZWRM_HOME is writable");
  }
  std::unique_ptr<Database> db(new Database(handle, path));
  sqlite3_busy_timeout(handle, 10'000);
  // Switching a new database to WAL needs exclusive access. When another
  // process opens it at the same moment, SQLite returns "database is
  // locked" at once instead of waiting, so both steps are retried.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (int attempt = 0;; ++attempt) {
    Status opened = db->execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
    if (opened) opened = db->migrate();
    if (opened) return db;
    const int code = sqlite3_errcode(handle) & 0xff;
    const bool busy = code == SQLITE_BUSY || code == SQLITE_LOCKED ||
                      opened.error().message.find("database is locked") != std::string::npos;
    if (!busy || std::chrono::steady_clock::now() > give_up) return tl::unexpected(opened.error());
    ::usleep(static_cast<useconds_t>(std::min(10 + attempt * 10, 100)) * 1000);
  }
}

Database::~Database() { sqlite3_close(db_); }

tl::unexpected<Error> Database::sqlite_error(std::string_view what) const {
  return fail(std::string(what) + " failed in " + path_ + ": " + sqlite3_errmsg(db_));
}

Status Database::execute(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message != nullptr ? message : "unknown error";
    sqlite3_free(message);
    return fail("database statement failed in " + path_ + ": " + text);
  }
  return {};
}

Result<Statement> Database::prepare(const char* sql) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &statement, nullptr) != SQLITE_OK) return sqlite_error("preparing a query");
  return Statement(this, statement);
}

std::int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

Status Database::migrate() {
  return transaction(*this, [&]() -> Status {
    std::int64_t version = 0;
    {
      // Finalized before the migrations run: an open statement would make
      // DROP TABLE fail with "database table is locked".
      auto version_query = prepare("PRAGMA user_version");
      if (!version_query) return tl::unexpected(version_query.error());
      if (auto row = version_query->step(); !row) return tl::unexpected(row.error());
      version = version_query->integer(0);
    }
    constexpr std::int64_t kLatest = static_cast<std::int64_t>(std::size(kMigrations));
    if (version > kLatest) {
      return fail("database " + path_ + " has schema version " + std::to_string(version) +
                  ", newer than this zwrm knows (" + std::to_string(kLatest) + "); upgrade zwrm");
    }
    for (std::int64_t next = version; next < kLatest; ++next) {
      if (auto done = execute(kMigrations[next]); !done) return done;
      if (kAfterMigration[next] != nullptr) {
        if (auto done = kAfterMigration[next](*this); !done) return done;
      }
      const std::string pragma = "PRAGMA user_version=" + std::to_string(next + 1);
      if (auto done = execute(pragma.c_str()); !done) return done;
    }
    return {};
  });
}

Statement::~Statement() { sqlite3_finalize(statement_); }

Statement& Statement::bind(int index, std::string_view value) {
  sqlite3_bind_text(statement_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bind(int index, std::int64_t value) {
  sqlite3_bind_int64(statement_, index, value);
  return *this;
}

Statement& Statement::bind(int index, std::optional<std::int64_t> value) {
  return value ? bind(index, *value) : bind_null(index);
}

Statement& Statement::bind_null(int index) {
  sqlite3_bind_null(statement_, index);
  return *this;
}

Statement& Statement::bind_blob(int index, std::string_view bytes) {
  sqlite3_bind_blob(statement_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}

Result<bool> Statement::step() {
  const int code = sqlite3_step(statement_);
  if (code == SQLITE_ROW) return true;
  if (code == SQLITE_DONE) return false;
  return db_->sqlite_error("a query");
}

Status Statement::run() {
  for (;;) {
    auto row = step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return {};
  }
}

std::string Statement::text(int column) const {
  const unsigned char* value = sqlite3_column_text(statement_, column);
  return value != nullptr ? std::string(reinterpret_cast<const char*>(value),
                                        static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)))
                          : std::string();
}

std::string Statement::blob(int column) const {
  const void* value = sqlite3_column_blob(statement_, column);
  return value != nullptr ? std::string(static_cast<const char*>(value),
                                        static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)))
                          : std::string();
}

std::int64_t Statement::integer(int column) const { return sqlite3_column_int64(statement_, column); }

std::optional<std::int64_t> Statement::optional_integer(int column) const {
  if (is_null(column)) return std::nullopt;
  return integer(column);
}

bool Statement::is_null(int column) const { return sqlite3_column_type(statement_, column) == SQLITE_NULL; }

Status transaction(Database& db, const std::function<Status()>& body) {
  if (sqlite3_get_autocommit(db.handle()) == 0) return body();  // already in one
  if (auto begun = db.execute("BEGIN IMMEDIATE"); !begun) return begun;
  Status result = body();
  if (result) result = db.execute("COMMIT");
  if (!result) {
    (void)db.execute("ROLLBACK");
    db.after_commit_.clear();
    return result;
  }
  for (auto& [key, work] : std::exchange(db.after_commit_, {})) work();
  return result;
}

void Database::after_commit(std::function<void()> work, const std::string& key) {
  if (sqlite3_get_autocommit(db_) != 0) {
    work();
    return;
  }
  for (auto& [queued_key, queued_work] : after_commit_) {
    if (!key.empty() && queued_key == key) {
      queued_work = std::move(work);
      return;
    }
  }
  after_commit_.emplace_back(key, std::move(work));
}

}  // namespace zwrm::state
