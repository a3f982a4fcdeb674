#include "protocol/flow.h"

#include <string>

namespace zwrm::protocol {

void SendCredit::spend(std::size_t bytes) {
  ZWRM_CHECK(bytes <= available_);
  available_ -= static_cast<std::uint32_t>(bytes);
}

Status SendCredit::grant(std::uint32_t bytes) {
  if (bytes > kInitialWindow - available_) {
    return fail("protocol violation: credit of " + std::to_string(bytes) +
                " bytes exceeds the flow-control window");
  }
  available_ += bytes;
  return {};
}

Status ReceiveWindow::receive(std::size_t bytes) {
  if (bytes > remaining_) {
    return fail("protocol violation: peer sent " + std::to_string(bytes) +
                " bytes with only " + std::to_string(remaining_) + " bytes of credit");
  }
  remaining_ -= static_cast<std::uint32_t>(bytes);
  return {};
}

std::uint32_t ReceiveWindow::consume(std::size_t bytes) {
  ZWRM_CHECK(bytes <= kInitialWindow - remaining_ - consumed_);
  consumed_ += static_cast<std::uint32_t>(bytes);
  if (consumed_ < kInitialWindow / 4) return 0;
  return flush_credit();
}

Status ReceiveWindow::release(std::uint32_t bytes) {
  const std::uint32_t in_flight = kInitialWindow - remaining_ - consumed_;
  if (bytes > in_flight) {
    return fail("protocol violation: credit of " + std::to_string(bytes) + " bytes exceeds the " +
                std::to_string(in_flight) + " bytes outstanding");
  }
  remaining_ += bytes;
  return {};
}

std::uint32_t ReceiveWindow::flush_credit() {
  const std::uint32_t grant = consumed_;
  remaining_ += grant;
  consumed_ = 0;
  return grant;
}

}  // namespace zwrm::protocol
