// The audit record of one guest-reported event: the event type and JSON
// data the supervisor records for a decoded guest event (protocol/message.h).
// Everything in an event comes from the guest, so strings are made valid
// UTF-8 and an event's data is bounded before it reaches the audit log.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "protocol/message.h"

namespace zwrm::supervisor {

// The audit event type and data of one guest event.
struct GuestRecord {
  std::string type;  // process.exec, process.exit, file.create, file.modify, file.delete or file.rename
  nlohmann::json data;
};

// Builds the audit record of one decoded event. Strings from the guest are
// made valid UTF-8 first (see valid_utf8), so the JSON can always be written.
GuestRecord make_guest_record(const protocol::GuestEvent& event);

// Cuts an exec record's arguments until its data fits max_bytes, and sets
// argv_truncated. Returns false when it still does not fit, or the record
// has no arguments to cut.
bool fit_guest_record(GuestRecord& record, std::size_t max_bytes);

// Returns text with every byte that is not part of a valid UTF-8 sequence
// replaced by U+FFFD, so file names and arguments in other encodings can go
// into JSON.
std::string valid_utf8(std::string_view text);

}  // namespace zwrm::supervisor
