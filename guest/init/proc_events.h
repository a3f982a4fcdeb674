// Process events from the kernel's process events connector (netlink
// protocol NETLINK_CONNECTOR, multicast group CN_IDX_PROC; the kernel side is
// drivers/connector/cn_proc.c), and the /proc reads that complete an exec
// event with the process's argv, parent and user.
//
// The connector reports that a process called execve, not what it ran: the
// argv comes from /proc/PID/cmdline, which is gone once the process has been
// reaped, and empty once it is a zombie. The caller reads it as soon as the
// event arrives (see audit_events.h for how that is made likely).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"

namespace zwrm::guest {

// One message of the process events connector, reduced to the fields the
// audit collector uses.
struct ProcEvent {
  enum class What { kFork, kExec, kExit, kOther };
  What what = What::kOther;
  pid_t pid = 0;          // the thread: the new one for a fork
  pid_t tgid = 0;         // its process (thread group); pid == tgid for a new process
  pid_t parent_tgid = 0;  // fork and exit: the parent process
  std::uint32_t exit_code = 0;  // exit: as in a wait status, code << 8 or the signal number
};

// Opens a non-blocking netlink socket subscribed to the process events
// connector, with a receive buffer large enough for bursts. Needs
// CAP_NET_ADMIN in the initial namespaces.
Result<UniqueFd> open_proc_connector();

// Parses the netlink messages in one datagram received from the connector.
// Messages that are not process events, or too short to be one, are skipped.
std::vector<ProcEvent> parse_proc_datagram(std::span<const std::uint8_t> datagram);

// The fields of /proc/PID/status the audit events use.
struct ProcStatus {
  std::string name;  // the command name, with the kernel's \n and \\ escapes undone
  pid_t tgid = 0;
  pid_t ppid = 0;
  uid_t uid = 0;  // real user id
};

// Parses the text of /proc/PID/status. Returns nullopt when the Name, Tgid,
// PPid or Uid line is missing or invalid.
std::optional<ProcStatus> parse_proc_status(std::string_view text);

struct Argv {
  std::vector<std::string> args;
  bool truncated = false;  // arguments were cut to the protocol's limits
};

// Splits the content of /proc/PID/cmdline (arguments, each ending in NUL)
// and cuts it to kMaxEventArgs arguments of at most kMaxEventArgBytes and
// kMaxEventArgvBytes in all. complete is false when the read stopped at its
// buffer size, so more arguments follow.
Argv split_cmdline(std::string_view content, bool complete);

// What /proc still shows of a process. A part is nullopt when its file
// could not be read because the process is gone. argv is also nullopt when
// cmdline was empty, as it is for a zombie.
struct ProcessDetails {
  std::optional<Argv> argv;
  std::optional<ProcStatus> status;
};

// Reads /proc/PID/cmdline, then /proc/PID/status.
ProcessDetails read_process(pid_t pid);

}  // namespace zwrm::guest
