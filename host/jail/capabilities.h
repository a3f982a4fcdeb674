// Dropping the supervisor's own privileges once its VMM runs.
#pragma once

#include <vector>

#include "common/error.h"

namespace zwrm::jail {

// Reduces the calling thread, and every thread it creates later, to the
// capabilities in keep (CAP_* numbers): the others leave the effective,
// permitted, inheritable, ambient and bounding sets, and no_new_privs is
// set, so no later execve can gain any back. Threads that already exist
// keep theirs, so call it before starting any.
//
// Security: without root (no CAP_SETPCAP) only no_new_privs applies, since
// there is nothing else to drop.
Status keep_only_capabilities(const std::vector<int>& keep);

}  // namespace zwrm::jail
