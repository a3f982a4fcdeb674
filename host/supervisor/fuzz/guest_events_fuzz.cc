// libFuzzer target for a guest-events payload and what the supervisor makes
// of it before anything reaches the audit log: the decoder, the audit
// record of each event, and the cut that fits a record into its size limit.
// Beyond crashes and sanitizer reports, it aborts when
// - a decoded batch is over its limits or does not encode back to the same
//   bytes,
// - a record cannot be written as strict JSON (invalid UTF-8 throws),
// - a record of an event within the protocol's limits does not fit the
//   default per-event limit,
// - a record that fit_guest_record accepts is over the size it was given,
// - valid_utf8 and is_valid_utf8 disagree.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/error.h"
#include "common/printable.h"
#include "host/supervisor/guest_events.h"
#include "protocol/message.h"

namespace {

using namespace zwrm::supervisor;
using zwrm::protocol::GuestEvent;

void check_valid_utf8(std::string_view text) {
  const std::string cleaned = valid_utf8(text);
  ZWRM_CHECK(zwrm::is_valid_utf8(cleaned));
  ZWRM_CHECK(zwrm::is_valid_utf8(text) == (cleaned == text));
}

void check_record(const GuestEvent& event, std::size_t small_limit) {
  GuestRecord record = make_guest_record(event);
  (void)record.data.dump();  // strict: throws, and so aborts, on invalid UTF-8

  GuestRecord bounded = record;
  ZWRM_CHECK(fit_guest_record(bounded, GuestEventLimits{}.max_data_bytes));
  ZWRM_CHECK(bounded.data.dump().size() <= GuestEventLimits{}.max_data_bytes);

  GuestRecord cut = record;
  if (fit_guest_record(cut, small_limit)) {
    ZWRM_CHECK(cut.data.dump().size() <= small_limit);
    if (cut.data.contains("argv")) ZWRM_CHECK(cut.data["argv"].size() == event.argv.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> payload(data, size);
  check_valid_utf8(std::string_view(reinterpret_cast<const char*>(data), size));

  auto batch = zwrm::protocol::decode_guest_events(payload);
  if (!batch) return 0;
  ZWRM_CHECK(batch->events.size() <= zwrm::protocol::kMaxGuestEventsPerBatch);
  ZWRM_CHECK(!batch->events.empty() || batch->dropped > 0);
  const auto encoded = zwrm::protocol::encode(*batch);
  ZWRM_CHECK(encoded.size() == size && std::equal(encoded.begin(), encoded.end(), data));

  // A limit from the input, so the cut is tried at many sizes.
  const std::size_t small_limit = size > 0 ? std::size_t{data[size - 1]} * 16 : 0;
  for (const GuestEvent& event : batch->events) check_record(event, small_limit);
  return 0;
}
