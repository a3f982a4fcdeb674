#include "protocol/channel.h"

#include <fcntl.h>
#include <unistd.h>

namespace zwrm::protocol {

Channel::Channel(UniqueFd fd) : fd_(std::move(fd)) {
  const int flags = ::fcntl(fd_.get(), F_GETFL);
  ZWRM_CHECK(flags >= 0);
  ZWRM_CHECK(::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK) == 0);
}

Result<bool> Channel::receive(const Decoder::FrameHandler& handler) {
  std::uint8_t buffer[64 * 1024];
  const ssize_t count = ::read(fd_.get(), buffer, sizeof buffer);
  if (count == 0) return false;
  if (count < 0) {
    if (errno == EAGAIN || errno == EINTR) return true;
    return fail_errno("reading from the control channel");
  }
  if (Status decoded = decoder_.feed({buffer, static_cast<std::size_t>(count)}, handler); !decoded) {
    return tl::unexpected(decoded.error());
  }
  return true;
}

void Channel::send(FrameType type, std::uint32_t stream, std::span<const std::uint8_t> payload) {
  if (out_offset_ > 0 && out_offset_ == out_.size()) {
    out_.clear();
    out_offset_ = 0;
  }
  append_frame(out_, type, stream, payload);
}

Status Channel::flush() {
  while (out_offset_ < out_.size()) {
    const ssize_t count = ::write(fd_.get(), out_.data() + out_offset_, out_.size() - out_offset_);
    if (count < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return fail_errno("writing to the control channel");
    }
    out_offset_ += static_cast<std::size_t>(count);
  }
  // Drop written bytes once they are the larger part of the buffer, so a
  // busy channel does not keep growing its buffer.
  if (out_offset_ > 0 && out_offset_ * 2 >= out_.size()) {
    out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(out_offset_));
    out_offset_ = 0;
  }
  return {};
}

}  // namespace zwrm::protocol
