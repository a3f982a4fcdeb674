// Per-stream flow control for the data kinds of a process stream.
//
// Each direction of data (stdin, stdout, stderr) on each stream has a window:
// the sender starts with kInitialWindow bytes of credit, spends it with every
// data frame, and gets more only when the receiver has passed data on to its
// final reader and sends a kCredit frame. So a slow reader stops the writer
// instead of making anything in between buffer without bound. A sender that
// exceeds its credit, or a receiver that grants more than the window, breaks
// the protocol.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/error.h"

namespace zwrm::protocol {

inline constexpr std::uint32_t kInitialWindow = 256 * 1024;

// The sending side's view: how many bytes it may still send.
class SendCredit {
 public:
  std::uint32_t available() const { return available_; }
  // Spends credit for bytes about to be sent; bytes must not exceed available().
  void spend(std::size_t bytes);
  // Adds credit the receiver granted. Fails when the total would exceed
  // kInitialWindow, which no correct receiver does.
  Status grant(std::uint32_t bytes);

 private:
  std::uint32_t available_ = kInitialWindow;
};

// The receiving side's view: how many bytes the peer may still send, and how
// many consumed bytes have not been granted back yet.
class ReceiveWindow {
 public:
  // Accounts for a data frame of this size. Fails when the peer sent more
  // than its credit allowed.
  Status receive(std::size_t bytes);
  // Accounts for bytes handed to the final reader. Returns the credit to
  // grant now: zero until a quarter of the window is due, so credit frames
  // stay few.
  std::uint32_t consume(std::size_t bytes);
  // Returns all consumed-but-ungranted credit at once (used when the stream
  // goes idle, so the last partial batch is not held back).
  std::uint32_t flush_credit();
  // Makes bytes available again at once, for a relay that forwards the
  // downstream reader's credit unchanged. Fails when bytes exceed what was
  // received and not yet released (a downstream peer granting too much).
  Status release(std::uint32_t bytes);
  // Bytes the peer may still send before it needs more credit.
  std::uint32_t available() const { return remaining_; }

 private:
  std::uint32_t remaining_ = kInitialWindow;
  std::uint32_t consumed_ = 0;
};

}  // namespace zwrm::protocol
