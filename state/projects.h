// Projects: a name and its persistent volume. Created on first use.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "state/database.h"

namespace zwrm::state {

struct Project {
  std::string name;
  std::string template_name;  // the template of the project's first run
  std::string volume_path;
  std::uint64_t volume_bytes = 0;
  std::int64_t created_at_ms = 0;
};

Result<std::optional<Project>> find_project(Database& db, const std::string& name);
// Inserts the project, or leaves an existing row of the same name as it is.
// Returns true when the row was inserted.
Result<bool> insert_project(Database& db, const Project& project);
Result<std::vector<Project>> list_projects(Database& db);

}  // namespace zwrm::state
