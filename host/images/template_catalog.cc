#include "host/images/template_catalog.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>

#include <toml++/toml.h>

#include "common/printable.h"
#include "host/sys/files.h"

namespace zwrm::images {

namespace {

constexpr std::string_view kSuffix = ".toml";

std::string builtin_directory(const sys::Paths& paths) { return paths.data + "/templates"; }

std::string builtin_path(const sys::Paths& paths, std::string_view name) {
  return builtin_directory(paths) + "/" + std::string(name) + std::string(kSuffix);
}

// Returns the template names of the .toml files in directory, sorted.
std::vector<std::string> names_in(const std::string& directory) {
  std::vector<std::string> names;
  if (directory.empty()) return names;
  DIR* stream = ::opendir(directory.c_str());
  if (stream == nullptr) return names;
  while (const dirent* entry = ::readdir(stream)) {
    const std::string_view file(entry->d_name);
    if (file.size() <= kSuffix.size() || !file.ends_with(kSuffix)) continue;
    const std::string_view name = file.substr(0, file.size() - kSuffix.size());
    if (is_valid_template_name(name)) names.emplace_back(name);
  }
  ::closedir(stream);
  std::sort(names.begin(), names.end());
  return names;
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string text;
  for (const std::string& item : items) {
    if (!text.empty()) text += separator;
    text += item;
  }
  return text;
}

// The line of the name key, for errors about the name that come after
// parsing; 1 when it cannot be found.
std::uint32_t line_of_name(const TemplateDefinition& definition) {
  try {
    const toml::table table = toml::parse(definition.source_text, definition.source_path);
    if (const toml::node* name = table.get("name")) return name->source().begin.line;
  } catch (const toml::parse_error&) {
    // A definition that parse_template_text accepted parses again.
  }
  return 1;
}

Result<TemplateDefinition> load_named(const std::string& path, std::string_view name, TemplateSource source) {
  Result<TemplateDefinition> definition = load_template_file(path);
  if (!definition) return definition;
  if (definition->name != name) {
    return fail(path + ": defines template '" + definition->name + "', not '" + std::string(name) +
                "'; make its name match the file name");
  }
  definition->source = source;
  return definition;
}

}  // namespace

std::vector<TemplateEntry> list_template_entries(const sys::Paths& paths) {
  std::vector<TemplateEntry> entries;
  const std::vector<std::string> builtins = names_in(builtin_directory(paths));
  for (const std::string& name : builtins) {
    entries.push_back({name, TemplateSource::kBuiltIn, builtin_path(paths, name), false});
  }
  for (const std::string& name : names_in(paths.templates)) {
    const bool shadowed = std::binary_search(builtins.begin(), builtins.end(), name);
    entries.push_back({name, TemplateSource::kUser, user_template_path(paths, name), shadowed});
  }
  return entries;
}

std::vector<std::string> list_templates(const sys::Paths& paths) {
  std::vector<std::string> names;
  for (const TemplateEntry& entry : list_template_entries(paths)) names.push_back(entry.name);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

bool is_builtin_template(const sys::Paths& paths, std::string_view name) {
  return is_valid_template_name(name) && sys::path_exists(builtin_path(paths, name));
}

std::string user_template_path(const sys::Paths& paths, std::string_view name) {
  return paths.templates + "/" + std::string(name) + std::string(kSuffix);
}

Result<TemplateDefinition> find_template(const sys::Paths& paths, std::string_view name) {
  const std::string requested(name);
  if (!is_valid_template_name(name)) {
    return fail("invalid template name '" + printable(requested) +
                "'; a template name is 1 to 32 lowercase letters, digits and '-'");
  }

  if (is_builtin_template(paths, name)) return load_named(builtin_path(paths, name), name, TemplateSource::kBuiltIn);
  if (!paths.templates.empty() && sys::path_exists(user_template_path(paths, name))) {
    return load_named(user_template_path(paths, name), name, TemplateSource::kUser);
  }

  const std::vector<std::string> available = list_templates(paths);
  if (available.empty()) {
    return fail("unknown template '" + requested + "': no templates found in " + builtin_directory(paths) +
                    "; set ZWRM_DATA_DIR to zwrm's share/zwrm directory",
                ENOENT);
  }
  return fail("unknown template '" + requested + "'; use one of: " + join(available, ", ") +
                  ", or build a template file with `zwrm template build FILE`",
              ENOENT);
}

Status check_user_template_name(const sys::Paths& paths, const TemplateDefinition& definition) {
  if (!is_builtin_template(paths, definition.name)) return {};
  return fail(definition.source_path + ":" + std::to_string(line_of_name(definition)) + ": template name '" +
              definition.name + "' belongs to a built-in template; choose another name");
}

Result<bool> save_user_template(const sys::Paths& paths, TemplateDefinition& definition) {
  if (Status allowed = check_user_template_name(paths, definition); !allowed) return tl::unexpected(allowed.error());
  if (paths.templates.empty()) return fail("no directory for user templates is set; set ZWRM_HOME");
  if (Status made = sys::make_directories(paths.templates, 0700); !made) return tl::unexpected(made.error());

  const std::string path = user_template_path(paths, definition.name);
  const bool replaced = sys::path_exists(path);
  if (Status written = sys::write_file_atomic(path, definition.source_text, 0600); !written) {
    return tl::unexpected(with_context(written.error(), "cannot save user template " + definition.name));
  }
  definition.source = TemplateSource::kUser;
  definition.source_path = path;
  return replaced;
}

Result<bool> remove_user_template(const sys::Paths& paths, std::string_view name) {
  if (!is_valid_template_name(name) || paths.templates.empty()) return false;
  const std::string path = user_template_path(paths, name);
  if (::unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  return fail_errno("cannot remove user template " + path);
}

}  // namespace zwrm::images
