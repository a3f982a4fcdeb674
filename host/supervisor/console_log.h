// The run's serial console, kept in logs/<run>/console.log up to a fixed
// size. The guest controls everything written here, so the file never grows
// past its cap: later output is read (the guest's UART must not stall) and
// counted, not stored.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/unique_fd.h"

namespace zwrm::supervisor {

class ConsoleLog {
 public:
  static constexpr std::uint64_t kDefaultCap = 1 << 20;

  static Result<ConsoleLog> create(const std::string& path, std::uint64_t cap = kDefaultCap);

  // Appends bytes from the console, up to the cap.
  void append(const char* data, std::size_t size);

  std::uint64_t dropped_bytes() const { return dropped_; }
  // True once the guest kernel printed "Kernel panic".
  bool saw_kernel_panic() const { return saw_panic_; }
  // Processes the guest kernel's OOM killer ended, counted from its
  // "Out of memory: Killed process" lines. The guest writes the console,
  // so this is a report for the user, not evidence.
  std::uint64_t oom_kills() const { return oom_kills_; }

 private:
  ConsoleLog(UniqueFd fd, std::uint64_t cap) : fd_(std::move(fd)), cap_(cap) {}

  UniqueFd fd_;
  std::uint64_t cap_;
  std::uint64_t written_ = 0;
  std::uint64_t dropped_ = 0;
  bool saw_panic_ = false;
  std::uint64_t oom_kills_ = 0;
  std::string tail_;  // end of the previous chunk, to match text split across reads
};

}  // namespace zwrm::supervisor
