#include "state/audit.h"

namespace zwrm::state {

Result<std::int64_t> append_event(Database& db, Event event) {
  auto insert = db.prepare("INSERT INTO events (time, project, run, source, type, data) VALUES (?, ?, ?, ?, ?, ?)");
  if (!insert) return tl::unexpected(insert.error());
  insert->bind(1, event.time_ms != 0 ? event.time_ms : now_unix_ms())
      .bind(2, event.project)
      .bind(3, event.run)
      .bind(4, event.source == EventSource::kHost ? "host" : "guest")
      .bind(5, event.type)
      .bind(6, event.data.dump());
  if (auto done = insert->run(); !done) return tl::unexpected(done.error());
  return db.last_insert_rowid();
}

Result<std::vector<Event>> read_events(Database& db, const std::string& run) {
  auto query = db.prepare(
      "SELECT id, time, project, run, source, type, data FROM events WHERE (?1 = '' OR run = ?1) ORDER BY id");
  if (!query) return tl::unexpected(query.error());
  query->bind(1, run);
  std::vector<Event> events;
  for (;;) {
    auto row = query->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    Event event;
    event.id = query->integer(0);
    event.time_ms = query->integer(1);
    event.project = query->text(2);
    event.run = query->text(3);
    event.source = query->text(4) == "guest" ? EventSource::kGuest : EventSource::kHost;
    event.type = query->text(5);
    event.data = nlohmann::json::parse(query->text(6), nullptr, false);
    events.push_back(std::move(event));
  }
  return events;
}

}  // namespace zwrm::state
