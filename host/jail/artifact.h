// Opening the files a VMM needs (kernel, initramfs, template image, volume)
// on the host, so that a file planted by someone else is rejected.
//
// The supervisor opens each artifact once, by path, and hands the VMM only
// the descriptor. A symbolic link or hard link swapped in later cannot
// redirect the VMM, because the VMM never opens the path itself.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/error.h"
#include "common/unique_fd.h"

namespace zwrm::jail {

enum class Access { kReadOnly, kReadWrite };

// Opens path with O_NOFOLLOW and O_CLOEXEC and checks what was opened: a
// regular file, owned by the calling user or by root, with exactly one hard
// link, and writable by no other user or foreign group. A FIFO there does not
// block the open. Otherwise fails with one sentence naming the path and the
// problem. The check applies to the opened file, so a swap between check and
// use is impossible.
//
// Security: only the last path component is checked for a link. The
// directories above it (ZWRM_HOME, the cache) are the user's own.
Result<UniqueFd> open_artifact(const std::string& path, Access access);

}  // namespace zwrm::jail
