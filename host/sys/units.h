// Parsing of the durations, sizes and points in time users type on the
// command line.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"

namespace zwrm::sys {

// Parses "90", "90s", "5m", "1h30m", "2d", "500ms". A bare number is seconds.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);
// Parses "512M", "10G", "1.5G", "1048576" (bytes), with K/M/G/T/P as binary
// multiples (KiB, MiB, ...) and an optional "iB" or "B" suffix. At most 1 PiB.
Result<std::uint64_t> parse_size(std::string_view text);

// Parses a point in time and returns it in Unix milliseconds. It is either a
// duration back from now_unix_ms with a unit ("30m", "2h", "7d"), or a date
// and time: "2026-12-04", "2026-12-04 10:00", "2026-12-04T10:00:00",
// optionally with ".fff" fractions of a second and then "Z" or an offset
// ("+01:00", "-0500"). Without "Z" or an offset it is local time (TZ). A bare
// number is rejected, because "2026" is more likely a year than seconds.
Result<std::int64_t> parse_time(std::string_view text, std::int64_t now_unix_ms);

// Formats Unix milliseconds as local time, "2026-12-04 23:54:16".
std::string format_local_time(std::int64_t unix_ms);

// Formats bytes as "10 GiB", "512 MiB", "1.5 GiB".
std::string format_size(std::uint64_t bytes);
// Formats a duration as "1h02m", "3m05s", "4.2s", "850ms".
std::string format_duration(std::chrono::milliseconds duration);

}  // namespace zwrm::sys
