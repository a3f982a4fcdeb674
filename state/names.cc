#include "state/names.h"

namespace zwrm::state {

Status validate_project_name(std::string_view name) {
  auto invalid = [&](const char* why) {
    return fail("invalid project name '" + printable(name) + "': " + why +
                "; use 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit");
  };
  if (name.empty()) return invalid("it is empty");
  if (name.size() > 63) return invalid("it is longer than 63 characters");
  for (unsigned char c : name) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!allowed) return invalid("it contains a character that is not allowed");
  }
  if (name.front() == '-' || name.back() == '-') return invalid("it starts or ends with '-'");
  return {};
}

}  // namespace zwrm::state
