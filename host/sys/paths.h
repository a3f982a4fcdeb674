// Where zwrm keeps its state, caches and runtime files, and where it finds
// its own guest init and data files.
//
//   ZWRM_HOME        state: database, volumes, logs. Default /var/lib/zwrm
//                    for root, ~/.local/share/zwrm otherwise.
//   ZWRM_CACHE_DIR   kernels, template images, initramfs; rebuildable.
//                    Default $ZWRM_HOME/cache.
//   ZWRM_DATA_DIR    templates and kernel files shipped with zwrm. Default
//                    share/zwrm beside the binary's bin/ directory.
//   ZWRM_INIT        the guest init binary. Default libexec/zwrm/zwrm-init
//                    beside the binary's bin/ directory.
#pragma once

#include <string>

#include "common/error.h"

namespace zwrm::sys {

struct Paths {
  std::string home;
  std::string cache;
  std::string runtime;   // $ZWRM_HOME/run: one directory per live run
  std::string logs;      // $ZWRM_HOME/logs: one directory per run, kept after it
  std::string volumes;   // $ZWRM_HOME/volumes: one ext4 image per project
  std::string database;  // $ZWRM_HOME/zwrm.db
  std::string templates;  // $ZWRM_HOME/templates: user template definitions, created on first save
  std::string data;
  std::string init;

  // Resolves every path from the environment and the executable's location
  // and creates the state directories (mode 0700). Fails when ZWRM_HOME
  // cannot be created.
  static Result<Paths> resolve();
};

// Returns the absolute path of the running executable.
std::string executable_path();

}  // namespace zwrm::sys
