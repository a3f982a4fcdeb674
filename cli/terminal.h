// The user's terminal during an interactive run: raw mode while the guest's
// pseudo-terminal owns the screen, restored on every way out of the client.
#pragma once

#include <termios.h>

#include <cstdint>
#include <optional>

namespace zwrm::cli {

struct WindowSize {
  std::uint16_t rows = 0;
  std::uint16_t cols = 0;
};

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
