// The templates a user can name: built-in ones shipped in
// <paths.data>/templates, and user templates saved by `zwrm template build
// FILE` in <paths.templates>. find_template and list_templates (template.h)
// search both; this header lists them with their source and saves and
// removes user templates.
//
// A user template may not take a built-in's name, so a name always means
// one definition. A user file that a newer zwrm's built-in shadows is still
// listed, marked shadowed, and can be removed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "host/images/template.h"
#include "host/sys/paths.h"

namespace zwrm::images {

struct TemplateEntry {
  std::string name;
  TemplateSource source = TemplateSource::kBuiltIn;  // kBuiltIn or kUser
  std::string path;                                  // the definition file
  bool shadowed = false;  // a user template hidden by the built-in of the same name
};

// Lists the built-in templates, then the user templates, each sorted by
// name. Files whose names are not valid template names are skipped.
std::vector<TemplateEntry> list_template_entries(const sys::Paths& paths);

// Returns whether <paths.data>/templates/<name>.toml exists.
bool is_builtin_template(const sys::Paths& paths, std::string_view name);

// Returns <paths.templates>/<name>.toml. name must be a valid template name.
std::string user_template_path(const sys::Paths& paths, std::string_view name);

// Checks that definition may become a user template: no built-in template
// has its name. Fails with "FILE:LINE: ..." at the line of the name.
Status check_user_template_name(const sys::Paths& paths, const TemplateDefinition& definition);

// Stores definition.source_text as the user template of its name, replacing
// an older definition of that name, and sets definition.source and
// source_path to the stored copy. Fails as check_user_template_name does.
// Returns whether an older definition was replaced.
Result<bool> save_user_template(const sys::Paths& paths, TemplateDefinition& definition);

// Deletes the user template's definition file. Returns false when there
// was none. Cached images are not touched (see remove_template_images).
Result<bool> remove_user_template(const sys::Paths& paths, std::string_view name);

}  // namespace zwrm::images
