// Template definitions: the TOML files that describe a guest root file
// system image and its default command. docs/templates.md documents the
// format for users.
//
// A definition is data from a file that a user may have written, so the
// parser rejects anything it does not know: unknown keys, wrong types, names
// that are not Debian package names or shell variable names. Every error
// message starts with "FILE:LINE: " and tells how to fix the file.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "host/sys/paths.h"

namespace zwrm::images {

// Maximum size of a template definition file.
inline constexpr std::size_t kMaxTemplateFileBytes = 64 * 1024;

// One parsed and validated template definition.
struct TemplateDefinition {
  std::string name;         // [a-z0-9][a-z0-9-]{0,31}
  std::string description;  // free text, may be empty
  std::string base;         // "busybox" or "debian"
  std::string suite;        // Debian suite such as "bookworm"; empty for busybox
  std::vector<std::string> packages;  // Debian package names; empty for busybox
  std::vector<std::string> command;   // default command, argv[0] first; never empty
  // Environment for the default command, in the order of the file.
  std::vector<std::pair<std::string, std::string>> env;
  std::string source_path;  // the file as named by the caller
  std::string source_text;  // the file's content, which the image cache key covers
};

// Parses and validates a definition. source_path only names the file in
// error messages and in the result. Fails with "SOURCE_PATH:LINE: ..." on
// invalid TOML, an unknown key, a missing required key, a value of the wrong
// type or an invalid name.
Result<TemplateDefinition> parse_template_text(std::string_view text, const std::string& source_path);

// Reads path (at most kMaxTemplateFileBytes) and parses it.
Result<TemplateDefinition> load_template_file(const std::string& path);

// Loads the built-in template <paths.data>/templates/<name>.toml. Fails when
// name is not a valid template name (so it cannot leave that directory), when
// no such file exists (the message lists the available names), or when the
// file's own name field differs from name.
Result<TemplateDefinition> find_template(const sys::Paths& paths, std::string_view name);

// Returns the names of the built-in templates, sorted; empty when the
// templates directory is missing.
std::vector<std::string> list_templates(const sys::Paths& paths);

// Returns whether name matches [a-z0-9][a-z0-9-]{0,31}.
bool is_valid_template_name(std::string_view name);

}  // namespace zwrm::images
