#include "host/sys/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace zwrm::sys {

void log_to_stderr(const std::string& component, spdlog::level::level_enum level) {
  auto logger = spdlog::stderr_logger_st(component);
  logger->set_pattern("zwrm[%n]: %l: %v");
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

void log_to_file(const std::string& component, const std::string& path) {
  auto logger = spdlog::basic_logger_st(component, path);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l [%n] %v");
  logger->set_level(spdlog::level::debug);
  logger->flush_on(spdlog::level::debug);
  spdlog::set_default_logger(logger);
}

}  // namespace zwrm::sys
