// The SQLite database under $ZWRM_HOME (zwrm.db) that holds projects, runs
// and the event log. Every zwrm process opens its own connection; WAL mode
// and a busy timeout let the CLI and many supervisors write concurrently.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace zwrm::state {

class Statement;

class Database {
 public:
  // Opens (creating if needed) the database at path and brings its schema
  // to the current version.
  static Result<std::unique_ptr<Database>> open(const std::string& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs SQL without results (schema changes, BEGIN/COMMIT).
  Status execute(const char* sql);
  Result<Statement> prepare(const char* sql);
  std::int64_t last_insert_rowid() const;
  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

  // Returns an Error carrying SQLite's message for this connection.
  tl::unexpected<Error> sqlite_error(std::string_view what) const;

  // Queues work to run once the current transaction commits (dropped when
  // it rolls back). Outside a transaction, runs it at once. Work with a
  // non-empty key replaces queued work of the same key, so only the last of
  // several updates to one thing runs.
  void after_commit(std::function<void()> work, const std::string& key = {});

 private:
  friend Status transaction(Database& db, const std::function<Status()>& body);

  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  Status migrate();

  sqlite3* db_;
  std::string path_;
  std::vector<std::pair<std::string, std::function<void()>>> after_commit_;
};

// A prepared statement; bind parameters by 1-based index, then step().
class Statement {
 public:
  Statement(Statement&& other) noexcept : db_(other.db_), statement_(std::exchange(other.statement_, nullptr)) {}
  Statement& operator=(Statement&&) = delete;
  ~Statement();

  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, std::optional<std::int64_t> value);
  Statement& bind_null(int index);
  // Binds bytes as a BLOB (bind with a string_view binds TEXT).
  Statement& bind_blob(int index, std::string_view bytes);

  // Returns true when a row is available, false when done.
  Result<bool> step();
  // Steps until done (for INSERT and UPDATE).
  Status run();

  std::string text(int column) const;
  std::string blob(int column) const;
  std::int64_t integer(int column) const;
  std::optional<std::int64_t> optional_integer(int column) const;
  bool is_null(int column) const;

 private:
  friend class Database;
  Statement(const Database* db, sqlite3_stmt* statement) : db_(db), statement_(statement) {}
  const Database* db_;
  sqlite3_stmt* statement_;
};

// Runs body inside BEGIN IMMEDIATE ... COMMIT, rolling back on error. Inside
// another transaction, runs body as part of it.
Status transaction(Database& db, const std::function<Status()>& body);

// Milliseconds since the Unix epoch, the time unit of every table.
std::int64_t now_unix_ms();

}  // namespace zwrm::state
