// Building and caching template images: read-only ext4 guest root file
// systems made from a TemplateDefinition.
//
// An image is built without loop mounts. The root tree is staged in a
// directory (busybox applets, or mmdebstrap for Debian) and gets the guest
// conventions (user agent with uid 1000, /workspace, /home/agent). Then
// mkfs.ext4 -d copies the tree into the image file.
//
// Cache layout, under <paths.cache>/templates/:
//   <name>-<key16>/rootfs.ext4     the image
//   <name>-<key16>/manifest.json   digest, size, mtime, key, definition text
//   <name>-<key16>.lock            flock held while building
//   <name>-<key16>.build.log       output of the latest Debian build
// The key covers everything that goes into an image, so a changed
// definition, builder or input gets a new directory. A finished directory is
// renamed into place whole, so a reader sees a complete image or none.
//
// Security: the image is built on the host as root from Debian packages,
// npm packages and the host's busybox, never from guest-written data. npm
// install scripts and a template's run commands run as root in a chroot,
// which does not confine root, so building a template trusts its author
// and the npm packages it names. The guest gets the image read-only, as the
// lower layer of its overlay.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "host/images/template.h"
#include "host/sys/paths.h"

namespace zwrm::images {

// Changes whenever the builder would produce a different image from the same
// definition, so that cached images from older builders are not reused.
inline constexpr std::string_view kTemplateBuilderVersion = "1";

// The CA bundle of a Debian host, which update-ca-certificates writes.
inline constexpr std::string_view kHostCaBundle = "/etc/ssl/certs/ca-certificates.crt";

struct TemplateImage {
  std::string path;    // the rootfs.ext4 file
  std::string digest;  // hex SHA-256 of the image file at build time
  std::string key;     // hex SHA-256 cache key; the directory name uses its first 16 characters
  std::uint64_t size_bytes = 0;
};

struct ImageBuildOptions {
  // Receives one short line per build step; may be empty.
  std::function<void(std::string_view)> progress;
  // Rebuilds even when a cached image exists.
  bool force = false;
  // PEM file whose certificates guests should trust (for a TLS-inspecting
  // gateway); empty for none. Its content is part of the cache key.
  std::string ca_bundle;
  // PEM file that the npm and run steps of a Debian build trust, together
  // with ca_bundle: by default the host's own bundle, so that builds work
  // behind a TLS-inspecting gateway the host trusts. It is deleted from
  // the tree before the image is made and is not part of the cache key.
  // Empty, or a file that does not exist: none.
  std::string build_ca_bundle = std::string(kHostCaBundle);
};

// Returns the CA bundle every image build should trust: the file named by
// ZWRM_CA_BUNDLE, or empty. Set it on hosts behind a TLS-inspecting gateway
// (for example to /etc/ssl/certs/ca-certificates.crt) so that builds and
// guests trust the gateway.
std::string default_ca_bundle();

// Returns the cached image for definition, building it first when it is
// missing or options.force is set. A cached image that changed since its
// build is an error (rebuild with force), not silently replaced. Safe to call from several processes at
// once: one builds while the others wait on the lock and then use its image.
// Debian images need root (mmdebstrap's root mode) and network access to the
// mirror, which ZWRM_DEBIAN_MIRROR overrides (default
// http://deb.debian.org/debian).
Result<TemplateImage> ensure_template_image(const sys::Paths& paths, const TemplateDefinition& definition,
                                            const ImageBuildOptions& options);

// Checks cheaply that the cached image is still the one that was built: it
// is a regular file (not a symlink) whose size and mtime match the manifest.
// Does not hash the image and never builds. Fails when the image is missing
// or changed, saying to run `zwrm template build NAME --force`.
Result<TemplateImage> verify_template_image(const sys::Paths& paths, const TemplateDefinition& definition,
                                            const ImageBuildOptions& options);

// Computes the cache key: SHA-256 over the builder version, the definition
// text, the base's inputs (the busybox binary's digest for base "busybox")
// and the CA bundle's content. Fails when an input cannot be read.
Result<std::string> template_image_key(const TemplateDefinition& definition, const ImageBuildOptions& options);

}  // namespace zwrm::images
