// `zwrm kernel build`, `zwrm template build` and `zwrm template ls`.
#include <cstdio>

#include "cli/commands.h"
#include "cli/prepare.h"
#include "host/images/kernel.h"
#include "host/images/template.h"
#include "host/images/template_image.h"
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

int build_template(const std::string& name, bool force, const std::string& ca_bundle) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto definition = images::find_template(session->paths, name);
  if (!definition) return report_error(definition.error());
  images::ImageBuildOptions options;
  options.progress = report_progress;
  options.force = force;
  options.ca_bundle = ca_bundle.empty() ? images::default_ca_bundle() : ca_bundle;
  auto image = images::ensure_template_image(session->paths, *definition, options);
  if (!image) return report_error(image.error());
  std::printf("%s  %s  %s\n", definition->name.c_str(), sys::format_size(image->size_bytes).c_str(), image->path.c_str());
  return 0;
}

int list_templates() {
  auto session = open_session();
  if (!session) return report_error(session.error());
  std::printf("%-12s  %s\n", "TEMPLATE", "DESCRIPTION");
  for (const std::string& name : images::list_templates(session->paths)) {
    auto definition = images::find_template(session->paths, name);
    std::printf("%-12s  %s\n", name.c_str(), definition ? definition->description.c_str() : definition.error().message.c_str());
  }
  return 0;
}

}  // namespace

void add_image_commands(CLI::App& app, Context& context) {
  CLI::App* kernel = app.add_subcommand("kernel", "Manage the guest kernel");
  kernel->require_subcommand(1);
  CLI::App* kernel_build = kernel->add_subcommand("build", "Build the guest kernel now (otherwise the first run does)");
  kernel_build->callback([&context] { context.exit_code = build_kernel(); });

  CLI::App* templates = app.add_subcommand("template", "Manage templates: root file system images for VMs");
  templates->require_subcommand(1);
  CLI::App* build = templates->add_subcommand("build", "Build a template's image now (otherwise the first run does)");
  auto name = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  auto ca_bundle = std::make_shared<std::string>();
  build->add_option("template", *name, "Template name")->required();
  build->add_flag("--force", *force, "Rebuild even when a cached image exists");
  build->add_option("--ca-bundle", *ca_bundle,
                    "PEM file of CA certificates to trust inside the image, for TLS-inspecting gateways "
                    "(default: $ZWRM_CA_BUNDLE); runs use images built with $ZWRM_CA_BUNDLE");
  build->callback([name, force, ca_bundle, &context] { context.exit_code = build_template(*name, *force, *ca_bundle); });
  CLI::App* ls = templates->add_subcommand("ls", "List the available templates");
  ls->callback([&context] { context.exit_code = list_templates(); });
}

}  // namespace zwrm::cli
