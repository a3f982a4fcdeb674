// Staging a template's root tree and turning it into an ext4 image, for
// template_image.cc. Internal to zwrm_images.
//
// Nothing here mounts anything: mmdebstrap (in its root mode) or the busybox
// stager writes a directory tree, the guest conventions are added to it, and
// mkfs.ext4 -d copies the tree into an image file.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"
#include "host/images/template.h"
#include "host/images/template_image.h"

namespace zwrm::images {

// The bytes an image is built from, read once so that the cache key and the
// image agree even when a host file changes during the build.
struct BuildInputs {
  std::string key;
  std::string busybox;       // the busybox binary, for base "busybox"
  std::string busybox_path;  // where the busybox binary was read from
  std::string ca_bundle;     // PEM content, empty for none
};

// Logs line and passes it to options.progress.
void report_progress(const ImageBuildOptions& options, const std::string& line);

// Creates the root tree at <build_directory>/root for definition's base and
// adds the guest conventions: accounts root and agent (uid and gid 1000),
// /home/agent, /workspace, /tmp, /etc/hosts, the CA bundle. Debian roots
// need root and the network; they also get the definition's npm packages
// and run commands (see template_build_script.h), and mmdebstrap's whole
// output goes to log_path, whose last lines a failure shows as progress.
// Files in build_directory may be left behind on failure; the caller
// removes the directory.
Status stage_root_tree(const std::string& build_directory, const TemplateDefinition& definition,
                       const BuildInputs& inputs, const ImageBuildOptions& options, const std::string& log_path);

// Writes an ext4 image of the staged tree at root to image, sized to the
// tree plus headroom (at least 32 MiB), owned by root except /home/agent
// even when the builder is not root.
Status make_ext4_image(const std::string& root, const std::string& image, const ImageBuildOptions& options);

}  // namespace zwrm::images
