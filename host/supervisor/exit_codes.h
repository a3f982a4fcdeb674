// Exit codes of `zwrm run` and `zwrm agent` beyond the command's own, chosen
// to match the conventions of timeout(1) and container runtimes.
#pragma once

namespace zwrm::supervisor {

inline constexpr int kExitDeadline = 124;     // the run reached its deadline (as timeout(1))
inline constexpr int kExitZwrmError = 125;    // zwrm, the VMM or the guest failed, not the command
inline constexpr int kExitInterrupted = 130;  // stopped by Ctrl-C at the client (128 + SIGINT)
inline constexpr int kExitStopped = 143;      // stopped by `zwrm stop` or SIGTERM (128 + SIGTERM)

}  // namespace zwrm::supervisor
