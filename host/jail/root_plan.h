// The jailed VMM's root file system, as data: the list of operations the
// child performs on the tmpfs it mounts over the jail's root directory.
// Built in the parent, because the child of a multithreaded process must not
// allocate memory.
#pragma once

#include <string>
#include <vector>

#include "host/jail/jail.h"

namespace zwrm::jail {

struct RootOp {
  enum Kind {
    kDirectory,   // mkdir target
    kSymlink,     // symlink source -> target
    kBindFile,    // create an empty file at target, bind source over it
    kBindDir,     // mkdir target, bind source over it
    kAttachFile,  // create an empty file at target, attach source_fd's file over it
  } kind;
  std::string source;
  std::string target;  // absolute host path under the jail root
  // For kAttachFile: a descriptor of the file. spawn() turns it into a
  // detached mount (open_tree) before the clone, because a bind mount's
  // source must be in the caller's mount namespace.
  int source_fd = -1;
  bool read_only = true;  // device nodes stay writable
  std::string reason;     // why the VMM needs it; shown when the step fails
};

// Returns the operations that give the VMM of options its root: /usr and
// the library links of the host, /etc/ld.so.cache, options.devices, each of
// options.files under /vmm (attached from their descriptors), and the VMM
// binary's directory when it is outside /usr. Every bind is read-only,
// nosuid and nodev, except device nodes.
std::vector<RootOp> plan_root(const Options& options);

}  // namespace zwrm::jail
