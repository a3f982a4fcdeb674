#include "guest/init/log.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>

namespace zwrm::guest {

void log_line(const char* format, ...) {
  char line[512];
  int length = std::snprintf(line, sizeof line, "zwrm-init: ");
  va_list arguments;
  va_start(arguments, format);
  const int body = std::vsnprintf(line + length, sizeof line - static_cast<std::size_t>(length) - 1, format, arguments);
  va_end(arguments);
  if (body > 0) length += body;
  if (length > static_cast<int>(sizeof line) - 2) length = static_cast<int>(sizeof line) - 2;
  line[length++] = '\n';
  // The console is the init's stderr; a failed write has nowhere to be reported.
  (void)!::write(STDERR_FILENO, line, static_cast<std::size_t>(length));
}

}  // namespace zwrm::guest
