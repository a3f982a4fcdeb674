// Template definitions: the TOML files that describe a guest root file
// system image and its default command. docs/templates.md documents the
// format for users.
//
// A definition is data from a file that a user may have written, so the
// parser rejects anything it does not know: unknown keys, wrong types, names
// that are not Debian package names, npm package specs or shell variable
// names. Every error message starts with "FILE:LINE: " and tells how to fix
// the file.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "host/sys/paths.h"

namespace zwrm::images {

// Maximum size of a template definition file.
inline constexpr std::size_t kMaxTemplateFileBytes = 64 * 1024;

// Settings an agent gets when it is created from the template. Each is
// unset unless the file's [defaults] table gives it. The parser checks the
// syntax and a lower bound; a run still checks them against the host (its
// CPU count and memory).
struct TemplateDefaults {
  std::optional<unsigned> cpus;                     // 1 to 64 virtual CPUs
  std::optional<std::uint64_t> memory_bytes;        // at least 64 MiB
  std::optional<std::uint64_t> disk_bytes;          // the volume's size when created, at least 64 MiB
  std::optional<std::chrono::milliseconds> timeout;       // deadline of each run, above zero
  std::optional<std::chrono::milliseconds> idle_timeout;  // idle deadline of each run, above zero
};

// Where a definition was found.
enum class TemplateSource {
  kFile,     // a file the caller named
  kBuiltIn,  // <paths.data>/templates, shipped with zwrm
  kUser,     // <paths.templates>, saved by `zwrm template build FILE`
};

// One parsed and validated template definition.
struct TemplateDefinition {
  std::string name;         // [a-z0-9][a-z0-9-]{0,31}, never a reserved name
  std::string description;  // free text, may be empty
  std::string base;         // "busybox" or "debian"
  std::string suite;        // Debian suite such as "bookworm"; empty for busybox
  std::vector<std::string> packages;  // Debian package names; empty for busybox
  // npm package specs installed globally at build time, such as
  // "@openai/codex" or "is-number@7.0.0": a registry name with an optional
  // version, range or tag, never a URL, path or git spec. Debian only.
  std::vector<std::string> npm;
  // Shell commands run as root in the image's root tree at build time, after
  // packages and npm, in order. Debian only.
  std::vector<std::string> run;
  std::vector<std::string> command;   // default command, argv[0] first; never empty
  // Environment for the default command, in the order of the file.
  std::vector<std::pair<std::string, std::string>> env;
  TemplateDefaults defaults;
  // Egress rules from [policy] allow, as written: "host", "*.suffix",
  // either with ":port", an IP address with an optional ":port" (IPv6 in
  // brackets), or a CIDR block. Only their syntax is checked here.
  std::vector<std::string> policy_allow;
  std::string source_path;  // the file as named by the caller
  std::string source_text;  // the file's content, which the image cache key covers
  TemplateSource source = TemplateSource::kFile;
};

// Parses and validates a definition. source_path only names the file in
// error messages and in the result. Fails with "SOURCE_PATH:LINE: ..." on
// invalid TOML, an unknown key, a missing required key, a value of the wrong
// type or an invalid name.
Result<TemplateDefinition> parse_template_text(std::string_view text, const std::string& source_path);

// Reads path (at most kMaxTemplateFileBytes) and parses it.
Result<TemplateDefinition> load_template_file(const std::string& path);

// Loads a template by name: the built-in <paths.data>/templates/<name>.toml
// first, else the user template <paths.templates>/<name>.toml (skipped when
// paths.templates is empty). Fails when name is not a valid template name
// (so it cannot leave those directories), when neither file exists (the
// message lists the available names), or when the file's own name field
// differs from name.
Result<TemplateDefinition> find_template(const sys::Paths& paths, std::string_view name);

// Returns the names of the built-in and user templates, sorted, each once;
// empty when neither directory exists.
std::vector<std::string> list_templates(const sys::Paths& paths);

// Returns whether name matches [a-z0-9][a-z0-9-]{0,31}.
bool is_valid_template_name(std::string_view name);

// Returns whether name is reserved for a subcommand of `zwrm agent` (create,
// ls, show, set, rm), which `zwrm agent TEMPLATE PROJECT` could not tell
// apart from a template of that name.
bool is_reserved_template_name(std::string_view name);

}  // namespace zwrm::images
