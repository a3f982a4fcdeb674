// Validation of the names users give (projects, run ids), so that a name
// can be used as a file name, a hostname and a table key without escaping.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"
#include "common/printable.h"

namespace zwrm::state {

// A project name: 1 to 63 characters of [a-z0-9-], starting and ending
// with a letter or digit, as a hostname label; so no '/', '..' or control
// character can reach a path or the guest's hostname.
Status validate_project_name(std::string_view name);

using zwrm::printable;

}  // namespace zwrm::state
