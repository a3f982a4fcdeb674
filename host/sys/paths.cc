#include "host/sys/paths.h"

#include <pwd.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "host/sys/files.h"

namespace zwrm::sys {

namespace {

std::string environment_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

std::string default_home() {
  if (::geteuid() == 0) return "/var/lib/zwrm";
  std::string user_home = environment_or("HOME", "");
  if (user_home.empty()) {
    if (const passwd* entry = ::getpwuid(::geteuid()); entry != nullptr) user_home = entry->pw_dir;
  }
  return environment_or("XDG_DATA_HOME", user_home + "/.local/share") + "/zwrm";
}

std::string parent_directory(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string executable_path() {
  char buffer[PATH_MAX];
  const ssize_t size = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  ZWRM_CHECK(size > 0);
  return std::string(buffer, static_cast<std::size_t>(size));
}

Result<Paths> Paths::resolve() {
  Paths paths;
  paths.home = environment_or("ZWRM_HOME", default_home());
  if (paths.home.front() != '/') return fail("ZWRM_HOME must be an absolute path, not " + paths.home);
  paths.cache = environment_or("ZWRM_CACHE_DIR", paths.home + "/cache");
  paths.runtime = paths.home + "/run";
  paths.logs = paths.home + "/logs";
  paths.volumes = paths.home + "/volumes";
  paths.database = paths.home + "/zwrm.db";
  paths.templates = paths.home + "/templates";

  const std::string prefix = parent_directory(parent_directory(executable_path()));
  paths.data = environment_or("ZWRM_DATA_DIR", prefix + "/share/zwrm");
  paths.init = environment_or("ZWRM_INIT", prefix + "/libexec/zwrm/zwrm-init");

  for (const std::string* directory : {&paths.home, &paths.runtime, &paths.logs, &paths.volumes, &paths.cache}) {
    if (Status made = make_directories(*directory, 0700); !made) {
      return fail(made.error().message + "; set ZWRM_HOME to a writable directory", made.error().errno_value);
    }
  }
  return paths;
}

}  // namespace zwrm::sys
