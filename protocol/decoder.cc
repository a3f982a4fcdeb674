#include "protocol/decoder.h"

#include <algorithm>

namespace zwrm::protocol {

namespace {

std::uint32_t get_u32(const std::uint8_t* bytes) {
  return static_cast<std::uint32_t>(bytes[0]) | static_cast<std::uint32_t>(bytes[1]) << 8 |
         static_cast<std::uint32_t>(bytes[2]) << 16 | static_cast<std::uint32_t>(bytes[3]) << 24;
}

}  // namespace

Status Decoder::check_header() const {
  const std::uint32_t length = get_u32(buffer_.data());
  if (length > kMaxPayload) {
    return fail("protocol violation: frame payload of " + std::to_string(length) +
                " bytes exceeds the limit of " + std::to_string(kMaxPayload));
  }
  if (!is_known_frame_type(buffer_[8])) {
    return fail("protocol violation: unknown frame type " + std::to_string(buffer_[8]));
  }
  if (buffer_[9] != 0 || buffer_[10] != 0 || buffer_[11] != 0) {
    return fail("protocol violation: reserved header bytes are not zero");
  }
  return {};
}

Status Decoder::feed(std::span<const std::uint8_t> bytes, const FrameHandler& handler) {
  if (failed_) return tl::unexpected(failure_);

  while (!bytes.empty()) {
    const std::size_t take = std::min(bytes.size(), needed_ - buffer_.size());
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
    bytes = bytes.subspan(take);
    if (buffer_.size() < needed_) break;

    if (!have_header_) {
      if (Status valid = check_header(); !valid) {
        failed_ = true;
        failure_ = valid.error();
        return valid;
      }
      have_header_ = true;
      needed_ = kHeaderSize + get_u32(buffer_.data());
      if (buffer_.size() < needed_) continue;
    }

    Frame frame;
    frame.type = static_cast<FrameType>(buffer_[8]);
    frame.stream = get_u32(buffer_.data() + 4);
    frame.payload.assign(buffer_.begin() + kHeaderSize, buffer_.end());
    buffer_.clear();
    needed_ = kHeaderSize;
    have_header_ = false;

    if (Status handled = handler(std::move(frame)); !handled) {
      failed_ = true;
      failure_ = handled.error();
      return handled;
    }
  }
  return {};
}

}  // namespace zwrm::protocol
