// Quoting user input in messages.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace zwrm {

// Returns text with control and non-ASCII bytes written as \xNN, so a value
// quoted in an error message cannot move the cursor or change the terminal.
inline std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    }
  }
  return out;
}

}  // namespace zwrm
