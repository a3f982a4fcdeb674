// The host's one logging facility: spdlog with a component name in every
// line. The CLI logs warnings and errors to stderr; the supervisor logs
// everything down to debug into its run's supervisor.log. The audit log is a
// separate, structured channel (state/audit.h).
#pragma once

#include <string>

#include <spdlog/spdlog.h>

namespace zwrm::sys {

// Sends log lines of at least `level` to stderr, prefixed "zwrm[component]".
void log_to_stderr(const std::string& component, spdlog::level::level_enum level);
// Sends all log lines to a file, with timestamps, prefixed by component.
void log_to_file(const std::string& component, const std::string& path);

}  // namespace zwrm::sys
