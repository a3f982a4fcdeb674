#include "state/projects.h"

namespace zwrm::state {

namespace {

constexpr const char* kColumns = "name, template, volume_path, volume_bytes, created_at";

Project read_project(const Statement& row) {
  return Project{row.text(0), row.text(1), row.text(2), static_cast<std::uint64_t>(row.integer(3)), row.integer(4)};
}

}  // namespace

Result<std::optional<Project>> find_project(Database& db, const std::string& name) {
  auto query = db.prepare((std::string("SELECT ") + kColumns + " FROM projects WHERE name = ?").c_str());
  if (!query) return tl::unexpected(query.error());
  query->bind(1, name);
  auto row = query->step();
  if (!row) return tl::unexpected(row.error());
  if (!*row) return std::optional<Project>();
  return std::optional<Project>(read_project(*query));
}

Result<bool> insert_project(Database& db, const Project& project) {
  auto insert = db.prepare(
      "INSERT OR IGNORE INTO projects (name, template, volume_path, volume_bytes, created_at) VALUES (?, ?, ?, ?, ?)");
  if (!insert) return tl::unexpected(insert.error());
  insert->bind(1, project.name)
      .bind(2, project.template_name)
      .bind(3, project.volume_path)
      .bind(4, static_cast<std::int64_t>(project.volume_bytes))
      .bind(5, project.created_at_ms != 0 ? project.created_at_ms : now_unix_ms());
  if (auto done = insert->run(); !done) return tl::unexpected(done.error());
  return sqlite3_changes(db.handle()) > 0;
}

Result<std::vector<Project>> list_projects(Database& db) {
  auto query = db.prepare((std::string("SELECT ") + kColumns + " FROM projects ORDER BY name").c_str());
  if (!query) return tl::unexpected(query.error());
  std::vector<Project> projects;
  for (;;) {
    auto row = query->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return projects;
    projects.push_back(read_project(*query));
  }
}

}  // namespace zwrm::state
