#include "host/images/template.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include <toml++/toml.h>

#include "common/printable.h"
#include "host/sys/files.h"

namespace zwrm::images {

namespace {

constexpr std::array<std::string_view, 7> kKnownKeys = {"name", "description", "base", "suite",
                                                        "packages", "command", "env"};
constexpr std::string_view kDefaultSuite = "bookworm";
constexpr std::size_t kMaxTemplateNameLength = 32;

tl::unexpected<Error> fail_at(const std::string& source_path, std::uint32_t line, const std::string& message) {
  return fail(source_path + ":" + std::to_string(line) + ": " + message);
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string text;
  for (const std::string& item : items) {
    if (!text.empty()) text += separator;
    text += item;
  }
  return text;
}

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool is_letter_or_underscore(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

// A Debian package name: at least two characters, lowercase letters,
// digits, '+', '-' and '.', starting with a letter or digit.
bool is_debian_package_name(std::string_view name) {
  if (name.size() < 2 || !is_lower_alnum(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_lower_alnum(c) || c == '+' || c == '-' || c == '.'; });
}

// A suite or codename as it appears in a Debian archive's dists/ directory.
bool is_debian_suite_name(std::string_view suite) {
  if (suite.empty() || suite.size() > 64 || !is_lower_alnum(suite.front())) return false;
  return std::all_of(suite.begin(), suite.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
}

bool is_shell_variable_name(std::string_view name) {
  if (name.empty() || !is_letter_or_underscore(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_letter_or_underscore(c) || (c >= '0' && c <= '9'); });
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> previous(b.size() + 1);
  std::vector<std::size_t> current(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::string describe_unknown_key(std::string_view key) {
  std::string message = "unknown key '" + printable(key) + "'; ";
  for (std::string_view known : kKnownKeys) {
    if (edit_distance(key, known) <= 2) return message + "did you mean '" + std::string(known) + "'?";
  }
  return message + "remove it, because the only keys are name, description, base, suite, packages, command and [env]";
}

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

struct Entry {
  std::string_view key;
  std::uint32_t line;
  const toml::node* value;
};

// Returns a table's entries in the order of the file, so that the first
// error reported is the first one a reader meets.
std::vector<Entry> entries_in_file_order(const toml::table& table) {
  std::vector<Entry> entries;
  for (const auto& [key, value] : table) entries.push_back({key.str(), key.source().begin.line, &value});
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.line < b.line; });
  return entries;
}

// Reads one string value. A NUL byte cannot travel in argv or the
// environment, so it is rejected here rather than truncated later.
Result<std::string> read_string(const Entry& entry, const std::string& source_path) {
  const std::optional<std::string> value = entry.value->value<std::string>();
  if (!entry.value->is_string() || !value) {
    return fail_at(source_path, entry.value->source().begin.line,
                   "'" + printable(entry.key) + "' must be a string, not " +
                       std::string(type_name(entry.value->type())) + "; put the value in double quotes");
  }
  if (value->find('\0') != std::string::npos) {
    return fail_at(source_path, entry.line,
                   "'" + printable(entry.key) + "' contains a NUL character; remove it");
  }
  return *value;
}

// Reads an array of strings and, when element_lines is given, the line of
// each element for later messages.
Result<std::vector<std::string>> read_string_array(const Entry& entry, const std::string& source_path,
                                                   std::string_view example,
                                                   std::vector<std::uint32_t>* element_lines = nullptr) {
  const std::string expected = "'" + printable(entry.key) + "' must be an array of strings such as " +
                               std::string(example);
  const toml::array* array = entry.value->as_array();
  if (array == nullptr) {
    return fail_at(source_path, entry.value->source().begin.line,
                   expected + ", not " + std::string(type_name(entry.value->type())));
  }
  std::vector<std::string> items;
  for (const toml::node& element : *array) {
    const Entry item{entry.key, element.source().begin.line, &element};
    if (!element.is_string()) {
      return fail_at(source_path, item.line,
                     expected + ", but one element is " + std::string(type_name(element.type())));
    }
    Result<std::string> value = read_string(item, source_path);
    if (!value) return tl::unexpected(value.error());
    items.push_back(std::move(*value));
    if (element_lines != nullptr) element_lines->push_back(item.line);
  }
  return items;
}

Status check_name(const std::string& name, std::uint32_t line, const std::string& source_path) {
  if (is_valid_template_name(name)) return {};
  return fail_at(source_path, line,
                 "invalid template name '" + printable(name) +
                     "'; use 1 to 32 lowercase letters, digits and '-', starting with a letter or digit");
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

Result<std::vector<std::pair<std::string, std::string>>> read_env(const Entry& entry,
                                                                   const std::string& source_path) {
  const toml::table* table = entry.value->as_table();
  if (table == nullptr) {
    return fail_at(source_path, entry.line,
                   "'env' must be a table of strings such as [env] followed by LANG = \"C.UTF-8\", not " +
                       std::string(type_name(entry.value->type())));
  }
  std::vector<std::pair<std::string, std::string>> env;
  for (const Entry& variable : entries_in_file_order(*table)) {
    if (!is_shell_variable_name(variable.key)) {
      return fail_at(source_path, variable.line,
                     "invalid environment variable name '" + printable(variable.key) +
                         "' in [env]; use letters, digits and '_', not starting with a digit");
    }
    Result<std::string> value = read_string(variable, source_path);
    if (!value) return tl::unexpected(value.error());
    env.emplace_back(std::string(variable.key), std::move(*value));
  }
  return env;
}

// Lines of the keys that need checks across fields, 0 when absent.
struct KeyLines {
  std::uint32_t name = 0, base = 0, suite = 0, packages = 0, command = 0;
  std::vector<std::uint32_t> package_elements;
};

Status read_entry(const Entry& entry, const std::string& source_path, TemplateDefinition& definition,
                  KeyLines& lines) {
  Result<std::string> text;
  Result<std::vector<std::string>> list;
  if (entry.key == "name" || entry.key == "description" || entry.key == "base" || entry.key == "suite") {
    text = read_string(entry, source_path);
    if (!text) return tl::unexpected(text.error());
  }
  if (entry.key == "name") {
    definition.name = *text;
    lines.name = entry.line;
  } else if (entry.key == "description") {
    definition.description = *text;
  } else if (entry.key == "base") {
    definition.base = *text;
    lines.base = entry.line;
  } else if (entry.key == "suite") {
    definition.suite = *text;
    lines.suite = entry.line;
  } else if (entry.key == "packages") {
    list = read_string_array(entry, source_path, "[\"git\", \"curl\"]", &lines.package_elements);
    if (!list) return tl::unexpected(list.error());
    definition.packages = std::move(*list);
    lines.packages = entry.line;
  } else if (entry.key == "command") {
    list = read_string_array(entry, source_path, "[\"/bin/sh\", \"-l\"]");
    if (!list) return tl::unexpected(list.error());
    definition.command = std::move(*list);
    lines.command = entry.line;
  } else if (entry.key == "env") {
    auto env = read_env(entry, source_path);
    if (!env) return tl::unexpected(env.error());
    definition.env = std::move(*env);
  } else {
    return fail_at(source_path, entry.line, describe_unknown_key(entry.key));
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
    if (lines.packages != 0) {
      return fail_at(source_path, lines.packages,
                     "'packages' applies only to base \"debian\"; remove it or set base = \"debian\"");
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
  return check_packages(definition.packages, lines.package_elements, source_path);
}

}  // namespace

bool is_valid_template_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxTemplateNameLength || !is_lower_alnum(name.front())) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
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

std::vector<std::string> list_templates(const sys::Paths& paths) {
  std::vector<std::string> names;
  const std::string directory = paths.data + "/templates";
  DIR* stream = ::opendir(directory.c_str());
  if (stream == nullptr) return names;
  while (const dirent* entry = ::readdir(stream)) {
    const std::string_view file(entry->d_name);
    constexpr std::string_view kSuffix = ".toml";
    if (file.size() <= kSuffix.size() || !file.ends_with(kSuffix)) continue;
    const std::string_view name = file.substr(0, file.size() - kSuffix.size());
    if (is_valid_template_name(name)) names.emplace_back(name);
  }
  ::closedir(stream);
  std::sort(names.begin(), names.end());
  return names;
}

Result<TemplateDefinition> find_template(const sys::Paths& paths, std::string_view name) {
  const std::string requested(name);
  if (!is_valid_template_name(name)) {
    return fail("invalid template name '" + printable(requested) +
                "'; a template name is 1 to 32 lowercase letters, digits and '-'");
  }

  const std::string directory = paths.data + "/templates";
  const std::string path = directory + "/" + requested + ".toml";
  if (!sys::path_exists(path)) {
    const std::vector<std::string> available = list_templates(paths);
    if (available.empty()) {
      return fail("unknown template '" + requested + "': no templates found in " + directory +
                      "; set ZWRM_DATA_DIR to zwrm's share/zwrm directory",
                  ENOENT);
    }
    return fail("unknown template '" + requested + "'; use one of: " + join(available, ", "), ENOENT);
  }

  Result<TemplateDefinition> definition = load_template_file(path);
  if (!definition) return definition;
  if (definition->name != requested) {
    return fail(path + ": defines template '" + definition->name + "', not '" + requested +
                "'; make its name match the file name");
  }
  return definition;
}

}  // namespace zwrm::images
