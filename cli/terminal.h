// The user's terminal: raw mode while the guest's pseudo-terminal owns the
// screen in an interactive run, restored on every way out of the client, and
// yes/no questions before a command deletes something.
#pragma once

#include <termios.h>

#include <cstdint>
#include <optional>
#include <string>

namespace zwrm::cli {

struct WindowSize {
  std::uint16_t rows = 0;
  std::uint16_t cols = 0;
};

// Asks question on stderr and reads the reply from stdin. Returns true only
// for "y", "Y" or "yes", and false without asking when stdin is not a
// terminal.
bool confirm(const std::string& question);

// Returns the size of the terminal on fd, or nothing when fd is not one.
std::optional<WindowSize> window_size(int fd);

class RawMode {
 public:
  // Puts fd into raw mode (no echo, no line editing, no signals from
  // Ctrl-C: those bytes go to the guest). Does nothing when fd is not a
  // terminal.
  explicit RawMode(int fd);
  ~RawMode();
  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;

 private:
  int fd_;
  std::optional<termios> saved_;
};

}  // namespace zwrm::cli
