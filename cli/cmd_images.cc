// `zwrm kernel build` and `zwrm template build|ls|rm`.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/printable.h"
#include "cli/prepare.h"
#include "host/images/kernel.h"
#include "host/images/template.h"
#include "host/images/template_cache.h"
#include "host/images/template_catalog.h"
#include "host/images/template_image.h"
#include "host/sys/files.h"
#include "host/sys/units.h"

namespace zwrm::cli {

namespace {

int build_kernel() {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto kernel = images::ensure_kernel(session->paths, report_progress);
  if (!kernel) return report_error(kernel.error());
  std::printf("%s\n", kernel->bzimage.c_str());
  return 0;
}

// An argument with a '/' or a .toml suffix names a file; anything else a
// template.
bool names_a_file(const std::string& target) {
  return target.find('/') != std::string::npos || target.ends_with(".toml");
}

images::ImageBuildOptions build_options(bool force, const std::string& ca_bundle) {
  images::ImageBuildOptions options;
  options.progress = report_progress;
  options.force = force;
  options.ca_bundle = ca_bundle.empty() ? images::default_ca_bundle() : ca_bundle;
  return options;
}

// Builds a template file's image and then saves the definition as a user
// template, so that a definition whose build fails is not left behind.
int build_template_file(const Session& session, const std::string& file, const images::ImageBuildOptions& options) {
  auto definition = images::load_template_file(file);
  if (!definition) return report_error(definition.error());
  if (auto allowed = images::check_user_template_name(session.paths, *definition); !allowed) {
    return report_error(allowed.error());
  }

  auto image = images::ensure_template_image(session.paths, *definition, options);
  if (!image) return report_error(image.error());
  auto replaced = images::save_user_template(session.paths, *definition);
  if (!replaced) return report_error(replaced.error());
  report_progress(std::string(*replaced ? "replaced" : "saved") + " user template " + definition->name + " as " +
                  definition->source_path + "; start it with `zwrm agent " + definition->name + " PROJECT`");
  std::printf("%s  %s  %s\n", definition->name.c_str(), sys::format_size(image->size_bytes).c_str(), image->path.c_str());
  return 0;
}

int build_template(const std::string& target, bool force, const std::string& ca_bundle) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  const images::ImageBuildOptions options = build_options(force, ca_bundle);
  if (names_a_file(target)) return build_template_file(*session, target, options);

  auto definition = images::find_template(session->paths, target);
  if (!definition) return report_error(definition.error());
  auto image = images::ensure_template_image(session->paths, *definition, options);
  if (!image) return report_error(image.error());
  std::printf("%s  %s  %s\n", definition->name.c_str(), sys::format_size(image->size_bytes).c_str(), image->path.c_str());
  return 0;
}

std::string source_name(const images::TemplateEntry& entry) {
  if (entry.source == images::TemplateSource::kBuiltIn) return "built-in";
  return entry.shadowed ? "user, hidden" : "user";
}

// One row of `zwrm template ls`: the entry, its definition or why it does
// not load, and whether its image is in the cache.
nlohmann::json describe_template(const sys::Paths& paths, const images::TemplateEntry& entry) {
  nlohmann::json row = {{"name", entry.name}, {"source", source_name(entry)}, {"definition", entry.path}};
  auto definition = images::load_template_file(entry.path);
  if (!definition) {
    row["error"] = definition.error().message;
    row["image"] = {{"cached", false}, {"state", "invalid definition"}};
    return row;
  }
  row["description"] = definition->description;
  row["base"] = definition->base;
  if (entry.shadowed) {
    row["error"] = "hidden by the built-in template " + entry.name + "; rename it in " + entry.path;
  }

  images::ImageBuildOptions options;
  options.ca_bundle = images::default_ca_bundle();
  auto image = images::verify_template_image(paths, *definition, options);
  if (image) {
    row["image"] = {{"cached", true}, {"state", "cached"}, {"path", image->path}, {"size_bytes", image->size_bytes}};
  } else {
    const bool missing = image.error().errno_value == ENOENT;
    row["image"] = {{"cached", false}, {"state", missing ? "not built" : "changed"}};
    if (!missing) row["image"]["error"] = image.error().message;
  }
  return row;
}

int list_templates(bool json) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  nlohmann::json rows = nlohmann::json::array();
  for (const images::TemplateEntry& entry : images::list_template_entries(session->paths)) {
    rows.push_back(describe_template(session->paths, entry));
  }
  if (json) {
    std::printf("%s\n", rows.dump(2).c_str());
    return 0;
  }

  std::printf("%-16s  %-12s  %-10s  %s\n", "TEMPLATE", "SOURCE", "IMAGE", "DESCRIPTION");
  for (const nlohmann::json& row : rows) {
    const nlohmann::json& image = row["image"];
    const std::string state = image["cached"].get<bool>() ? sys::format_size(image["size_bytes"].get<std::uint64_t>())
                                                          : image["state"].get<std::string>();
    const std::string text = row.contains("error") ? row["error"].get<std::string>() : row["description"].get<std::string>();
    std::printf("%-16s  %-12s  %-10s  %s\n", row["name"].get<std::string>().c_str(),
                row["source"].get<std::string>().c_str(), state.c_str(), text.c_str());
  }
  return 0;
}

std::string describe_removed(const images::RemovedImages& removed) {
  return std::to_string(removed.count) + (removed.count == 1 ? " cached image" : " cached images") + " (" +
         sys::format_size(removed.size_bytes) + ")";
}

// Removes a user template with its images, or with only_images the cached
// images of any template. A built-in template's definition stays.
int remove_template(const std::string& name, bool only_images) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  if (!images::is_valid_template_name(name)) {
    return report_error({"invalid template name '" + printable(name) + "'; `zwrm template ls` lists the templates"});
  }
  const bool user = sys::path_exists(images::user_template_path(session->paths, name));
  const bool builtin = images::is_builtin_template(session->paths, name);
  if (!user && !builtin && !only_images) {
    return report_error({"unknown template '" + name + "'; `zwrm template ls` lists the templates"});
  }
  if (!user && builtin && !only_images) {
    return report_error({"template " + name + " is built in and cannot be removed; `zwrm template rm " + name +
                         " --images` removes its cached images"});
  }

  auto removed = images::remove_template_images(session->paths, name);
  if (!removed) return report_error(removed.error());
  if (only_images) {
    std::printf("removed %s of template %s\n", describe_removed(*removed).c_str(), name.c_str());
    return 0;
  }
  auto deleted = images::remove_user_template(session->paths, name);
  if (!deleted) return report_error(deleted.error());
  std::printf("removed user template %s and %s\n", name.c_str(), describe_removed(*removed).c_str());
  return 0;
}

void add_template_build(CLI::App& templates, Context& context) {
  CLI::App* build = templates.add_subcommand(
      "build", "Build a template's image now (otherwise the first run does); a FILE becomes a user template");
  auto target = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  auto ca_bundle = std::make_shared<std::string>();
  build->add_option("template", *target,
                    "Template name, or a template file (a path with '/' or ending in .toml) to save as a user "
                    "template once its image builds")
      ->type_name("NAME|FILE")
      ->required();
  build->add_flag("--force", *force, "Rebuild even when a cached image exists");
  build->add_option("--ca-bundle", *ca_bundle,
                    "PEM file of CA certificates to trust inside the image, for TLS-inspecting gateways "
                    "(default: $ZWRM_CA_BUNDLE); runs use images built with $ZWRM_CA_BUNDLE")
      ->type_name("FILE");
  build->callback([target, force, ca_bundle, &context] {
    context.exit_code = build_template(*target, *force, *ca_bundle);
  });
}

void add_template_rm(CLI::App& templates, Context& context) {
  CLI::App* rm = templates.add_subcommand(
      "rm", "Remove a user template and its cached images, or with --images only the cached images of a template");
  auto name = std::make_shared<std::string>();
  auto only_images = std::make_shared<bool>(false);
  rm->add_option("template", *name, "Template name")->type_name("NAME")->required();
  rm->add_flag("--images", *only_images,
               "Remove only the cached images (of a built-in or user template); the next run rebuilds them");
  rm->callback([name, only_images, &context] { context.exit_code = remove_template(*name, *only_images); });
}

}  // namespace

void add_image_commands(CLI::App& app, Context& context) {
  CLI::App* kernel = app.add_subcommand("kernel", "Manage the guest kernel");
  kernel->require_subcommand(1);
  CLI::App* kernel_build = kernel->add_subcommand("build", "Build the guest kernel now (otherwise the first run does)");
  kernel_build->callback([&context] { context.exit_code = build_kernel(); });

  CLI::App* templates = app.add_subcommand("template", "Manage templates: root file system images for VMs");
  templates->require_subcommand(1);
  add_template_build(*templates, context);
  CLI::App* ls = templates->add_subcommand("ls", "List the built-in and user templates and whether their images are cached");
  auto json = std::make_shared<bool>(false);
  ls->add_flag("--json", *json, "Print a JSON array, one object per template");
  ls->callback([json, &context] { context.exit_code = list_templates(*json); });
  add_template_rm(*templates, context);
}

}  // namespace zwrm::cli
