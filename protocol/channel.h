// A frame channel over one non-blocking file descriptor: decodes incoming
// bytes into frames and queues outgoing frames until the descriptor is
// writable. Used by the guest init (virtio-serial port), the supervisor
// (guest and client side) and the CLI (supervisor side). Never throws and
// never blocks, so it runs inside an event loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "protocol/decoder.h"
#include "protocol/frame.h"

namespace zwrm::protocol {

class Channel {
 public:
  // Takes ownership of fd and switches it to non-blocking mode.
  explicit Channel(UniqueFd fd);

  int fd() const { return fd_.get(); }

  // Reads what the descriptor has (one read of up to 64 KiB) and hands each
  // complete frame to handler. Returns false once the peer closed the
  // channel, true while it is open, or the first decoding or handler error.
  Result<bool> receive(const Decoder::FrameHandler& handler);

  // Queues one frame; payload must fit in kMaxPayload.
  void send(FrameType type, std::uint32_t stream, std::span<const std::uint8_t> payload = {});

  // Writes queued bytes until the descriptor would block. A closed peer
  // returns an Error (EPIPE), other failures too.
  Status flush();

  // Bytes queued but not yet written. Producers of bulk data stop reading
  // their sources while this is above kMaxPendingBytes.
  std::size_t pending_bytes() const { return out_.size() - out_offset_; }
  bool has_pending() const { return pending_bytes() > 0; }

  static constexpr std::size_t kMaxPendingBytes = 1024 * 1024;

  // Whether so much is queued for the peer that the owner should stop
  // reading from it. Whatever a peer sends may cause replies (or output for
  // a third party), so a peer that does not read has to be slowed down, or
  // the queue grows without bound. Producers of bulk data stop at
  // kMaxPendingBytes first, so normal traffic seldom reaches this.
  bool backlogged() const { return pending_bytes() >= kMaxBacklogBytes; }

  static constexpr std::size_t kMaxBacklogBytes = 4 * kMaxPendingBytes;

  // True when no partial frame from the peer is buffered.
  bool at_frame_boundary() const { return decoder_.at_frame_boundary(); }

 private:
  UniqueFd fd_;
  Decoder decoder_;
  std::vector<std::uint8_t> out_;
  std::size_t out_offset_ = 0;
};

}  // namespace zwrm::protocol
