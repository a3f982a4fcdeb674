#include "host/sys/units.h"

#include "common/printable.h"

#include <cmath>
#include <cctype>
#include <cstdio>

namespace zwrm::sys {

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  const std::string original = printable(text);
  auto invalid = [&] {
    return fail("invalid duration '" + original + "'; use a number with a unit, such as 30s, 5m, 1h30m or 2d");
  };
  if (text.empty()) return invalid();

  double total_ms = 0;
  bool bare_number = true;
  while (!text.empty()) {
    std::size_t digits = 0;
    while (digits < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) {
      ++digits;
    }
    if (digits == 0) return invalid();
    double value = 0;
    if (std::sscanf(std::string(text.substr(0, digits)).c_str(), "%lf", &value) != 1) return invalid();
    text.remove_prefix(digits);

    std::size_t unit_length = 0;
    while (unit_length < text.size() && std::isalpha(static_cast<unsigned char>(text[unit_length]))) ++unit_length;
    const std::string_view unit = text.substr(0, unit_length);
    text.remove_prefix(unit_length);
    double scale = 0;
    if (unit.empty() && text.empty() && bare_number) {
      scale = 1000;
    } else if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = 60e3;
    } else if (unit == "h") {
      scale = 3600e3;
    } else if (unit == "d") {
      scale = 86400e3;
    } else {
      return invalid();
    }
    bare_number = false;
    total_ms += value * scale;
  }
  // Ten years is far beyond any deadline and keeps every later sum in range.
  if (total_ms > 10.0 * 365 * 86400e3) return fail("duration '" + original + "' is too long; the maximum is 10 years");
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(total_ms)));
}

Result<std::uint64_t> parse_size(std::string_view text) {
  const std::string original = printable(text);
  auto invalid = [&] {
    return fail("invalid size '" + original + "'; use a number with a unit, such as 512M, 10G or 1T");
  };
  std::size_t digits = 0;
  while (digits < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) {
    ++digits;
  }
  if (digits == 0) return invalid();
  double value = 0;
  if (std::sscanf(std::string(text.substr(0, digits)).c_str(), "%lf", &value) != 1) return invalid();
  std::string unit(text.substr(digits));
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() == 3 && unit.substr(1) == "IB") unit.resize(1);
  if (unit.size() == 2 && unit[1] == 'B') unit.resize(1);

  double scale = 0;
  if (unit.empty() || unit == "B") {
    scale = 1;
  } else if (unit == "K") {
    scale = 1024.0;
  } else if (unit == "M") {
    scale = 1024.0 * 1024;
  } else if (unit == "G") {
    scale = 1024.0 * 1024 * 1024;
  } else if (unit == "T") {
    scale = 1024.0 * 1024 * 1024 * 1024;
  } else if (unit == "P") {
    scale = 1024.0 * 1024 * 1024 * 1024 * 1024;
  } else {
    return invalid();
  }
  const double bytes = value * scale;
  if (bytes > 1024.0 * 1024 * 1024 * 1024 * 1024) return fail("size '" + original + "' is too large; the maximum is 1 PiB");
  return static_cast<std::uint64_t>(std::llround(bytes));
}

std::string format_size(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  if (value == std::floor(value)) {
    std::snprintf(text, sizeof text, "%.0f %s", value, kUnits[unit]);
  } else {
    std::snprintf(text, sizeof text, "%.1f %s", value, kUnits[unit]);
  }
  return text;
}

std::string format_duration(std::chrono::milliseconds duration) {
  const std::int64_t ms = duration.count();
  char text[32];
  if (ms < 1000) {
    std::snprintf(text, sizeof text, "%lldms", static_cast<long long>(ms));
  } else if (ms < 60'000) {
    std::snprintf(text, sizeof text, "%.1fs", static_cast<double>(ms) / 1000);
  } else if (ms < 3'600'000) {
    std::snprintf(text, sizeof text, "%lldm%02llds", static_cast<long long>(ms / 60'000),
                  static_cast<long long>(ms / 1000 % 60));
  } else {
    std::snprintf(text, sizeof text, "%lldh%02lldm", static_cast<long long>(ms / 3'600'000),
                  static_cast<long long>(ms / 60'000 % 60));
  }
  return text;
}

}  // namespace zwrm::sys
