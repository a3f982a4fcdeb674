// Diagnostics of the guest init, written to the console (the VM's serial
// port, which the supervisor keeps in the run's capped console log). Never
// given secrets: exec requests are logged by argv[0] only.
#pragma once

namespace zwrm::guest {

// printf-style; prefixes "zwrm-init: " and appends a newline.
void log_line(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace zwrm::guest
