#include "host/sys/units.h"

#include "common/printable.h"

#include <cmath>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <optional>

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

namespace {

// Reads the fields of a date and time from the front of a text.
class FieldReader {
 public:
  explicit FieldReader(std::string_view text) : rest_(text) {}

  // Reads exactly `count` digits.
  bool number(std::size_t count, int& value) {
    if (rest_.size() < count) return false;
    value = 0;
    for (std::size_t i = 0; i < count; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(rest_[i]))) return false;
      value = value * 10 + (rest_[i] - '0');
    }
    rest_.remove_prefix(count);
    return true;
  }

  // Reads 1 to 9 digits after a decimal point and returns the milliseconds
  // they stand for (".5" is 500).
  bool fraction(int& millis) {
    std::size_t digits = 0;
    millis = 0;
    while (digits < rest_.size() && digits < 9 && std::isdigit(static_cast<unsigned char>(rest_[digits]))) {
      if (digits < 3) millis = millis * 10 + (rest_[digits] - '0');
      ++digits;
    }
    if (digits == 0) return false;
    for (std::size_t i = digits; i < 3; ++i) millis *= 10;
    rest_.remove_prefix(digits);
    return true;
  }

  bool skip(char c) {
    if (rest_.empty() || rest_.front() != c) return false;
    rest_.remove_prefix(1);
    return true;
  }

  bool skip_any(std::string_view characters, char& which) {
    if (rest_.empty() || characters.find(rest_.front()) == std::string_view::npos) return false;
    which = rest_.front();
    rest_.remove_prefix(1);
    return true;
  }

  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

bool starts_with_date(std::string_view text) {
  if (text.size() < 5 || text[4] != '-') return false;
  for (std::size_t i = 0; i < 4; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  return true;
}

// Reads "[+-]HH[[:]MM]" after a time and returns its offset east of UTC in
// seconds, or "Z" for UTC.
std::optional<std::int64_t> read_offset(FieldReader& reader) {
  char sign = 0;
  if (reader.skip_any("Zz", sign)) return 0;
  if (!reader.skip_any("+-", sign)) return std::nullopt;
  int hours = 0;
  int minutes = 0;
  if (!reader.number(2, hours) || hours > 23) return std::nullopt;
  const bool colon = reader.skip(':');
  if ((colon || !reader.done()) && (!reader.number(2, minutes) || minutes > 59)) return std::nullopt;
  const std::int64_t seconds = hours * 3600 + minutes * 60;
  return sign == '-' ? -seconds : seconds;
}

// Parses "YYYY-MM-DD[( |T)HH:MM[:SS[.fff]]][Z|offset]". Returns the reason
// when the text is not one.
Result<std::int64_t> parse_date_time(std::string_view text) {
  FieldReader reader(text);
  std::tm fields{};
  int year = 0;
  int month = 0;
  int millis = 0;
  if (!reader.number(4, year) || !reader.skip('-') || !reader.number(2, month) || !reader.skip('-') ||
      !reader.number(2, fields.tm_mday)) {
    return fail("not a date of the form YYYY-MM-DD");
  }
  fields.tm_year = year - 1900;
  fields.tm_mon = month - 1;

  std::optional<std::int64_t> offset_seconds;
  char separator = 0;
  if (reader.skip_any(" T", separator)) {
    if (!reader.number(2, fields.tm_hour) || !reader.skip(':') || !reader.number(2, fields.tm_min)) {
      return fail("not a time of the form HH:MM or HH:MM:SS");
    }
    if (reader.skip(':') && !reader.number(2, fields.tm_sec)) return fail("not a time of the form HH:MM:SS");
    if (reader.skip('.') && !reader.fraction(millis)) return fail("no digits after the decimal point");
    if (!reader.done()) {
      offset_seconds = read_offset(reader);
      if (!offset_seconds) return fail("not a time zone: use Z, or an offset such as +01:00 or -0500");
    }
  }
  if (!reader.done()) return fail("unexpected text after the date and time");

  // timegm normalizes fields out of range (February 30, 24:00), so a date
  // that does not come back unchanged does not exist.
  std::tm normalized = fields;
  const std::time_t utc_seconds = ::timegm(&normalized);
  if (normalized.tm_year != fields.tm_year || normalized.tm_mon != fields.tm_mon ||
      normalized.tm_mday != fields.tm_mday || normalized.tm_hour != fields.tm_hour ||
      normalized.tm_min != fields.tm_min || normalized.tm_sec != fields.tm_sec) {
    return fail("no such date or time");
  }
  std::int64_t seconds = 0;
  if (offset_seconds) {
    seconds = static_cast<std::int64_t>(utc_seconds) - *offset_seconds;
  } else {
    // NOTE: a local time that a daylight saving change skips or repeats is
    // taken as mktime(3) resolves it.
    fields.tm_isdst = -1;
    seconds = static_cast<std::int64_t>(::mktime(&fields));
  }
  return seconds * 1000 + millis;
}

}  // namespace

Result<std::int64_t> parse_time(std::string_view text, std::int64_t now_unix_ms) {
  const std::string original = printable(text);
  auto invalid = [&](const std::string& why) {
    return fail("invalid time '" + original + "'" + (why.empty() ? "" : ": " + why) +
                "; use a duration back from now, such as 30m, 2h or 7d, or a date and time, such as 2026-12-04, "
                "2026-12-04 10:00 or 2026-12-04T10:00:00Z");
  };
  if (starts_with_date(text)) {
    auto parsed = parse_date_time(text);
    if (!parsed) return invalid(parsed.error().message);
    return *parsed;
  }
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos) {
    return invalid("a duration needs a unit");
  }
  auto duration = parse_duration(text);
  if (!duration) return invalid("");
  return now_unix_ms - duration->count();
}

std::string format_local_time(std::int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm local{};
  char text[32] = "?";
  if (::localtime_r(&seconds, &local) != nullptr) std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
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
