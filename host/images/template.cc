#include "host/images/template.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include <toml++/toml.h>

#include "common/printable.h"
#include "host/images/template_syntax.h"
#include "host/images/template_toml.h"
#include "host/sys/files.h"

namespace zwrm::images {

namespace {

constexpr std::array<std::string_view, 11> kKnownKeys = {"name",    "description", "base", "suite",    "packages", "npm",
                                                         "run",     "command",     "env",  "defaults", "policy"};
constexpr std::string_view kKnownKeyList =
    "name, description, base, suite, packages, npm, run, command, [env], [defaults] and [policy]";
constexpr std::string_view kDefaultSuite = "bookworm";
constexpr std::size_t kMaxTemplateNameLength = 32;
// Subcommands of `zwrm agent`, whose first argument is otherwise a template.
constexpr std::array<std::string_view, 5> kReservedNames = {"create", "ls", "show", "set", "rm"};

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

Status check_name(const std::string& name, std::uint32_t line, const std::string& source_path) {
  if (!is_valid_template_name(name)) {
    return fail_at(source_path, line,
                   "invalid template name '" + printable(name) +
                       "'; use 1 to 32 lowercase letters, digits and '-', starting with a letter or digit");
  }
  if (is_reserved_template_name(name)) {
    return fail_at(source_path, line,
                   "template name '" + name + "' is reserved for the command `zwrm agent " + name +
                       "`; choose another name");
  }
  return {};
}

Status check_packages(const std::vector<std::string>& packages, const std::vector<std::uint32_t>& lines,
                      const std::string& source_path) {
  for (std::size_t i = 0; i < packages.size(); ++i) {
    const std::uint32_t line = lines[i];
    if (!is_debian_package_name(packages[i])) {
      return fail_at(source_path, line,
                     "invalid Debian package name '" + printable(packages[i]) +
                         "'; a package name has at least 2 characters, only lowercase letters, digits, "
                         "'+', '-' and '.', and starts with a letter or digit");
    }
    if (std::find(packages.begin(), packages.begin() + static_cast<std::ptrdiff_t>(i), packages[i]) !=
        packages.begin() + static_cast<std::ptrdiff_t>(i)) {
      return fail_at(source_path, line, "package '" + printable(packages[i]) + "' is listed twice; remove one");
    }
  }
  return {};
}

// Checks the npm specs and that no package is listed twice, whatever its
// version.
Status check_npm(const std::vector<std::string>& specs, const std::vector<std::uint32_t>& lines,
                 const std::string& source_path) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (std::string reason = check_npm_spec(specs[i]); !reason.empty()) {
      return fail_at(source_path, lines[i], "invalid npm package '" + printable(specs[i]) + "': " + reason);
    }
    const std::string name = npm_package_name(specs[i]);
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      return fail_at(source_path, lines[i], "npm package '" + name + "' is listed twice; remove one");
    }
    names.push_back(name);
  }
  return {};
}

Status check_run(const std::vector<std::string>& commands, const std::vector<std::uint32_t>& lines,
                 const std::string& source_path) {
  for (std::size_t i = 0; i < commands.size(); ++i) {
    if (commands[i].find_first_not_of(" \t\r\n") == std::string::npos) {
      return fail_at(source_path, lines[i],
                     "command " + std::to_string(i + 1) + " in 'run' is empty; remove it or give a shell command");
    }
  }
  return {};
}

// Lines of the keys that need checks across fields, 0 when absent.
struct KeyLines {
  std::uint32_t name = 0, base = 0, suite = 0, packages = 0, npm = 0, run = 0, command = 0;
  std::vector<std::uint32_t> package_elements, npm_elements, run_elements;
};

Status read_string_entry(const Entry& entry, const std::string& source_path, TemplateDefinition& definition,
                         KeyLines& lines) {
  Result<std::string> text = read_string(entry, source_path);
  if (!text) return tl::unexpected(text.error());
  if (entry.key == "name") {
    definition.name = std::move(*text);
    lines.name = entry.line;
  } else if (entry.key == "description") {
    definition.description = std::move(*text);
  } else if (entry.key == "base") {
    definition.base = std::move(*text);
    lines.base = entry.line;
  } else {
    definition.suite = std::move(*text);
    lines.suite = entry.line;
  }
  return {};
}

// Reads one of the top-level arrays. Any other key is unknown, because
// read_entry handles the strings and tables first.
Status read_array_entry(const Entry& entry, const std::string& source_path, TemplateDefinition& definition,
                        KeyLines& lines) {
  struct ArrayKey {
    std::string_view key;
    std::string_view example;
    std::vector<std::string> TemplateDefinition::*field;
    std::uint32_t KeyLines::*line;
    std::vector<std::uint32_t> KeyLines::*element_lines;  // nullptr when not needed
  };
  static constexpr std::array<ArrayKey, 4> kArrays = {{
      {"packages", "[\"git\", \"curl\"]", &TemplateDefinition::packages, &KeyLines::packages,
       &KeyLines::package_elements},
      {"npm", "[\"@openai/codex\", \"is-number@7.0.0\"]", &TemplateDefinition::npm, &KeyLines::npm,
       &KeyLines::npm_elements},
      {"run", "[\"ln -s /usr/bin/python3 /usr/local/bin/python\"]", &TemplateDefinition::run, &KeyLines::run,
       &KeyLines::run_elements},
      {"command", "[\"/bin/sh\", \"-l\"]", &TemplateDefinition::command, &KeyLines::command, nullptr},
  }};
  for (const ArrayKey& array : kArrays) {
    if (entry.key != array.key) continue;
    std::vector<std::uint32_t>* element_lines = array.element_lines ? &(lines.*array.element_lines) : nullptr;
    Result<std::vector<std::string>> list = read_string_array(entry, source_path, array.example, element_lines);
    if (!list) return tl::unexpected(list.error());
    definition.*array.field = std::move(*list);
    lines.*array.line = entry.line;
    return {};
  }
  return fail_at(source_path, entry.line, describe_unknown_key(entry.key, kKnownKeys, "", kKnownKeyList));
}

Status read_entry(const Entry& entry, const std::string& source_path, TemplateDefinition& definition,
                  KeyLines& lines) {
  if (entry.key == "name" || entry.key == "description" || entry.key == "base" || entry.key == "suite") {
    return read_string_entry(entry, source_path, definition, lines);
  }
  if (entry.key == "env") {
    auto env = read_env(entry, source_path);
    if (!env) return tl::unexpected(env.error());
    definition.env = std::move(*env);
  } else if (entry.key == "defaults") {
    auto defaults = read_defaults(entry, source_path);
    if (!defaults) return tl::unexpected(defaults.error());
    definition.defaults = *defaults;
  } else if (entry.key == "policy") {
    auto allow = read_policy(entry, source_path);
    if (!allow) return tl::unexpected(allow.error());
    definition.policy_allow = std::move(*allow);
  } else {
    return read_array_entry(entry, source_path, definition, lines);
  }
  return {};
}

// A missing key has no line of its own, so the error points at line 1.
Status check_required(const TemplateDefinition& definition, const KeyLines& lines,
                      const std::string& source_path) {
  if (lines.name == 0) {
    return fail_at(source_path, 1, "missing key 'name'; add a line such as name = \"my-template\"");
  }
  if (lines.base == 0) {
    return fail_at(source_path, 1, "missing key 'base'; add base = \"busybox\" or base = \"debian\"");
  }
  if (lines.command == 0) {
    return fail_at(source_path, 1, "missing key 'command'; add a default command such as command = [\"/bin/sh\", \"-l\"]");
  }
  if (definition.command.empty()) {
    return fail_at(source_path, lines.command,
                   "'command' is empty; give the program and its arguments, such as [\"/bin/sh\", \"-l\"]");
  }
  if (definition.command.front().empty()) {
    return fail_at(source_path, lines.command, "the program in 'command' is an empty string; name a program");
  }
  return {};
}

Status check_base(TemplateDefinition& definition, const KeyLines& lines, const std::string& source_path) {
  if (definition.base == "busybox") {
    if (lines.suite != 0) {
      return fail_at(source_path, lines.suite,
                     "'suite' applies only to base \"debian\"; remove it or set base = \"debian\"");
    }
    for (auto [key, line] : {std::pair{"packages", lines.packages}, {"npm", lines.npm}, {"run", lines.run}}) {
      if (line == 0) continue;
      return fail_at(source_path, line,
                     "'" + std::string(key) + "' applies only to base \"debian\"; remove it or set base = \"debian\"");
    }
    return {};
  }
  if (definition.base != "debian") {
    return fail_at(source_path, lines.base,
                   "invalid base '" + printable(definition.base) + "'; use \"busybox\" or \"debian\"");
  }
  if (lines.suite == 0) definition.suite = kDefaultSuite;
  if (!is_debian_suite_name(definition.suite)) {
    return fail_at(source_path, lines.suite,
                   "invalid Debian suite '" + printable(definition.suite) + "'; use a suite name such as \"bookworm\"");
  }
  if (Status packages = check_packages(definition.packages, lines.package_elements, source_path); !packages) {
    return packages;
  }
  if (Status npm = check_npm(definition.npm, lines.npm_elements, source_path); !npm) return npm;
  return check_run(definition.run, lines.run_elements, source_path);
}

}  // namespace

bool is_valid_template_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxTemplateNameLength || !is_lower_alnum(name.front())) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
}

bool is_reserved_template_name(std::string_view name) {
  return std::find(kReservedNames.begin(), kReservedNames.end(), name) != kReservedNames.end();
}

Result<TemplateDefinition> parse_template_text(std::string_view text, const std::string& source_path) {
  if (text.size() > kMaxTemplateFileBytes) {
    return fail_at(source_path, 1,
                   "template definition is " + std::to_string(text.size()) +
                       " bytes, over the limit of 64 KiB; shorten it");
  }

  toml::table table;
  try {
    table = toml::parse(text, source_path);
  } catch (const toml::parse_error& error) {
    return fail_at(source_path, error.source().begin.line,
                   "invalid TOML: " + std::string(error.description()) + "; fix the syntax");
  }

  TemplateDefinition definition;
  definition.source_path = source_path;
  definition.source_text = std::string(text);
  KeyLines lines;
  for (const Entry& entry : entries_in_file_order(table)) {
    if (Status read = read_entry(entry, source_path, definition, lines); !read) return tl::unexpected(read.error());
  }

  if (Status required = check_required(definition, lines, source_path); !required) {
    return tl::unexpected(required.error());
  }
  if (Status name = check_name(definition.name, lines.name, source_path); !name) return tl::unexpected(name.error());
  if (Status base = check_base(definition, lines, source_path); !base) return tl::unexpected(base.error());
  return definition;
}

Result<TemplateDefinition> load_template_file(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return fail_errno("cannot read template definition " + path);
  if (!S_ISREG(info.st_mode)) return fail("template definition " + path + " is not a regular file; name a .toml file");
  if (static_cast<std::uint64_t>(info.st_size) > kMaxTemplateFileBytes) {
    return fail_at(path, 1,
                   "template definition is " + std::to_string(info.st_size) +
                       " bytes, over the limit of 64 KiB; shorten it");
  }

  Result<std::string> text = sys::read_file(path);
  if (!text) return tl::unexpected(with_context(text.error(), "cannot read template definition"));
  return parse_template_text(*text, path);
}

}  // namespace zwrm::images
