// Parsing of the durations and sizes users type on the command line.
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

// Formats bytes as "10 GiB", "512 MiB", "1.5 GiB".
std::string format_size(std::uint64_t bytes);
// Formats a duration as "1h02m", "3m05s", "4.2s", "850ms".
std::string format_duration(std::chrono::milliseconds duration);

}  // namespace zwrm::sys
