#include "host/jail/capabilities.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

namespace zwrm::jail {

Status keep_only_capabilities(const std::vector<int>& keep) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &header, data) != 0) return fail_errno("cannot read the supervisor's capabilities");

  const bool can_drop_bounding = (data[0].effective & (1u << CAP_SETPCAP)) != 0;
  for (int cap = 0; can_drop_bounding && ::prctl(PR_CAPBSET_READ, cap) >= 0; ++cap) {
    if (std::find(keep.begin(), keep.end(), cap) != keep.end()) continue;
    if (::prctl(PR_CAPBSET_DROP, cap) != 0) return fail_errno("cannot drop capability " + std::to_string(cap));
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return fail_errno("cannot clear the ambient capabilities");
  }

  __user_cap_data_struct kept[2]{};
  for (int cap : keep) {
    const unsigned word = static_cast<unsigned>(cap) / 32;
    const unsigned bit = 1u << (static_cast<unsigned>(cap) % 32);
    if (word < 2 && (data[word].permitted & bit) != 0) {
      kept[word].permitted |= bit;
      kept[word].effective |= bit;
    }
  }
  if (::syscall(SYS_capset, &header, kept) != 0) return fail_errno("cannot drop the supervisor's capabilities");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail_errno("cannot set no_new_privs");
  return {};
}

}  // namespace zwrm::jail
