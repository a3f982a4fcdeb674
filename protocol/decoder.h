// Incremental decoder for the frame format in frame.h.
//
// Bytes arrive in arbitrary pieces; feed() buffers at most one frame
// (kHeaderSize + kMaxPayload bytes) and hands out each complete frame. The
// first invalid header puts the decoder into a failed state for good: the
// byte stream cannot be resynchronised, so the channel must be closed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "protocol/frame.h"

namespace zwrm::protocol {

class Decoder {
 public:
  // Called once per complete frame. Returning an Error stops decoding and
  // fails the decoder with that error.
  using FrameHandler = std::function<Status(Frame&&)>;

  // Decodes bytes, calling handler for each frame completed by them.
  // Returns the first error: an invalid header (length over kMaxPayload,
  // unknown type, non-zero reserved bytes) or one returned by the handler.
  // After an error every later call returns the same error.
  Status feed(std::span<const std::uint8_t> bytes, const FrameHandler& handler);

  // True when no partial frame is buffered, so a close here lost nothing.
  bool at_frame_boundary() const { return buffer_.empty(); }

 private:
  Status check_header() const;

  std::vector<std::uint8_t> buffer_;
  std::size_t needed_ = kHeaderSize;
  bool have_header_ = false;
  Error failure_;
  bool failed_ = false;
};

}  // namespace zwrm::protocol
