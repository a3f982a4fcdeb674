#include "host/images/template_image.h"

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/unique_fd.h"
#include "host/images/rootfs_build.h"
#include "host/images/template_cache.h"
#include "host/sys/files.h"
#include "host/sys/process.h"
#include "host/sys/units.h"

namespace zwrm::images {

namespace {

constexpr std::size_t kMaxCaBundleBytes = 4 * 1024 * 1024;
constexpr std::string_view kPemCertificateHeader = "-----BEGIN CERTIFICATE-----";

// Paths of one cache entry. All of them share the parent directory, so
// renames between them are atomic.
struct CacheEntry {
  std::string parent;     // <cache>/templates
  std::string stem;       // <name>-<key16>
  std::string directory;  // <parent>/<stem>
  std::string image;      // <directory>/rootfs.ext4
  std::string manifest;   // <directory>/manifest.json
  std::string lock;       // <parent>/<stem>.lock
  std::string log;        // <parent>/<stem>.build.log
};

CacheEntry cache_entry(const sys::Paths& paths, const TemplateDefinition& definition, const std::string& key) {
  CacheEntry entry;
  entry.parent = paths.cache + "/templates";
  entry.stem = definition.name + "-" + key.substr(0, 16);
  entry.directory = entry.parent + "/" + entry.stem;
  entry.image = entry.directory + "/rootfs.ext4";
  entry.manifest = entry.directory + "/manifest.json";
  entry.lock = entry.parent + "/" + entry.stem + ".lock";
  entry.log = entry.parent + "/" + entry.stem + ".build.log";
  return entry;
}

std::string rebuild_hint(const TemplateDefinition& definition) {
  return "rebuild it with `zwrm template build " + definition.name + " --force`";
}

// Returns whether an ELF executable requests a program interpreter
// (PT_INTERP), which a busybox image does not have.
Result<bool> is_dynamically_linked(std::string_view binary, const std::string& path) {
  Elf64_Ehdr header{};
  if (binary.size() < sizeof header || binary.substr(0, SELFMAG) != std::string_view(ELFMAG, SELFMAG) ||
      binary[EI_CLASS] != ELFCLASS64) {
    return fail(path + " is not a 64-bit ELF executable; install Debian's busybox-static");
  }
  std::memcpy(&header, binary.data(), sizeof header);
  for (std::size_t i = 0; i < header.e_phnum; ++i) {
    const std::size_t offset = header.e_phoff + i * header.e_phentsize;
    Elf64_Phdr program{};
    if (header.e_phentsize < sizeof program || offset + sizeof program > binary.size()) {
      return fail(path + " has a truncated program header table; reinstall busybox-static");
    }
    std::memcpy(&program, binary.data() + offset, sizeof program);
    if (program.p_type == PT_INTERP) return true;
  }
  return false;
}

Result<std::string> read_busybox(std::string& path) {
  path = sys::find_program("busybox");
  if (path.empty()) return fail("busybox not found in PATH; install it with `apt-get install busybox-static`", ENOENT);
  Result<std::string> binary = sys::read_file(path);
  if (!binary) return binary;

  Result<bool> dynamic = is_dynamically_linked(*binary, path);
  if (!dynamic) return tl::unexpected(dynamic.error());
  if (*dynamic) {
    return fail(path + " is dynamically linked, but a busybox template image has no C library; "
                       "install the static build with `apt-get install busybox-static`");
  }
  return binary;
}

Result<std::string> read_ca_bundle(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return fail_errno("cannot read CA bundle " + path);
  if (!S_ISREG(info.st_mode) || static_cast<std::uint64_t>(info.st_size) > kMaxCaBundleBytes) {
    return fail("CA bundle " + path + " is not a regular file of at most 4 MiB; give a PEM certificate file");
  }
  Result<std::string> content = sys::read_file(path);
  if (!content) return tl::unexpected(with_context(content.error(), "cannot read CA bundle"));
  if (content->find(kPemCertificateHeader) == std::string::npos) {
    return fail("CA bundle " + path + " contains no PEM certificate (no \"" + std::string(kPemCertificateHeader) +
                "\" line); give a PEM file");
  }
  return content;
}

// Appends a labelled, length-prefixed field so that no two different input
// sets produce the same byte string.
void add_key_field(std::string& material, std::string_view label, std::string_view value) {
  material += label;
  material += '\0';
  material += std::to_string(value.size());
  material += '\0';
  material += value;
}

Result<BuildInputs> read_build_inputs(const TemplateDefinition& definition, const ImageBuildOptions& options) {
  // Callers may fill a definition by hand, and the name becomes a path.
  if (!is_valid_template_name(definition.name) || (definition.base != "busybox" && definition.base != "debian")) {
    return fail("invalid template definition '" + definition.name + "' with base '" + definition.base +
                "'; load it with parse_template_text");
  }
  BuildInputs inputs;
  std::string material;
  add_key_field(material, "builder", kTemplateBuilderVersion);
  add_key_field(material, "definition", definition.source_text);

  if (definition.base == "busybox") {
    Result<std::string> binary = read_busybox(inputs.busybox_path);
    if (!binary) return tl::unexpected(binary.error());
    inputs.busybox = std::move(*binary);
    add_key_field(material, "busybox", sys::sha256_hex(inputs.busybox));
  }
  if (!options.ca_bundle.empty()) {
    Result<std::string> bundle = read_ca_bundle(options.ca_bundle);
    if (!bundle) return tl::unexpected(bundle.error());
    inputs.ca_bundle = std::move(*bundle);
    add_key_field(material, "ca-bundle", inputs.ca_bundle);
  }
  inputs.key = sys::sha256_hex(material);
  return inputs;
}

// Removes what interrupted builds of this entry left. Runs under the entry's
// lock, so no other process is using these directories.
void remove_abandoned_builds(const CacheEntry& entry) {
  namespace fs = std::filesystem;
  std::error_code error;
  for (const fs::directory_entry& child : fs::directory_iterator(entry.parent, error)) {
    const std::string name = child.path().filename().string();
    if (!name.starts_with(entry.stem + ".build-")) continue;
    if (Status removed = remove_build_directory(child.path().string()); !removed) {
      spdlog::warn("cannot remove an abandoned template build: {}", removed.error().message);
    }
  }
}

Result<UniqueFd> lock_entry(const CacheEntry& entry, const ImageBuildOptions& options) {
  UniqueFd fd(::open(entry.lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return fail_errno("cannot open lock file " + entry.lock);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return fd;
  if (errno != EWOULDBLOCK) return fail_errno("cannot lock " + entry.lock);

  report_progress(options, "waiting for another process that is building " + entry.stem);
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return fail_errno("cannot lock " + entry.lock);
  }
  return fd;
}

std::int64_t mtime_nanoseconds(const struct stat& info) {
  return static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
}

// Reads the manifest and checks the image against it without hashing it.
Result<TemplateImage> check_cached_image(const CacheEntry& entry, const TemplateDefinition& definition,
                                         const std::string& key) {
  if (!sys::path_exists(entry.manifest)) {
    return fail("the template image for " + definition.name + " is not built yet; build it with `zwrm template build " +
                    definition.name + "`",
                ENOENT);
  }
  Result<std::string> text = sys::read_file(entry.manifest);
  if (!text) return tl::unexpected(text.error());
  const nlohmann::json manifest = nlohmann::json::parse(*text, nullptr, false);
  const bool valid = manifest.is_object() && manifest.contains("key") && manifest["key"] == key &&
                     manifest.contains("size_bytes") && manifest["size_bytes"].is_number_unsigned() &&
                     manifest.contains("mtime_ns") && manifest["mtime_ns"].is_number_integer() &&
                     manifest.contains("digest") && manifest["digest"].is_string();
  if (!valid) {
    return fail("the manifest " + entry.manifest + " is invalid; " + rebuild_hint(definition));
  }

  struct stat info {};
  const bool present = ::lstat(entry.image.c_str(), &info) == 0;
  if (!present || !S_ISREG(info.st_mode) ||
      static_cast<std::uint64_t>(info.st_size) != manifest["size_bytes"].get<std::uint64_t>() ||
      mtime_nanoseconds(info) != manifest["mtime_ns"].get<std::int64_t>()) {
    return fail("the template image " + entry.image + " changed since it was built; " + rebuild_hint(definition));
  }
  return TemplateImage{entry.image, manifest["digest"].get<std::string>(), key,
                       static_cast<std::uint64_t>(info.st_size)};
}

Result<TemplateImage> write_manifest(const std::string& directory, const TemplateDefinition& definition,
                                     const std::string& key) {
  const std::string image = directory + "/rootfs.ext4";
  if (::chmod(image.c_str(), 0444) != 0) return fail_errno("cannot make " + image + " read-only");
  Result<std::string> digest = sys::sha256_file(image);
  if (!digest) return tl::unexpected(digest.error());
  struct stat info {};
  if (::lstat(image.c_str(), &info) != 0) return fail_errno("cannot inspect " + image);

  const nlohmann::json manifest = {
      {"name", definition.name},
      {"base", definition.base},
      {"key", key},
      {"builder_version", kTemplateBuilderVersion},
      {"digest", *digest},
      {"size_bytes", static_cast<std::uint64_t>(info.st_size)},
      {"mtime_ns", mtime_nanoseconds(info)},
      {"built_at", static_cast<std::int64_t>(std::time(nullptr))},
      {"definition_path", definition.source_path},
      {"definition", definition.source_text},
  };
  if (Status written = sys::write_file_atomic(directory + "/manifest.json", manifest.dump(2) + "\n"); !written) {
    return tl::unexpected(written.error());
  }
  return TemplateImage{image, *digest, key, static_cast<std::uint64_t>(info.st_size)};
}

// Moves a finished build directory into place. An existing entry is swapped
// out atomically, so a reader never finds the entry missing or half-built.
Status install_build(const CacheEntry& entry, const std::string& build_directory) {
  if (::rename(build_directory.c_str(), entry.directory.c_str()) == 0) return {};
  if (errno != ENOTEMPTY && errno != EEXIST) return fail_errno("cannot move the new image to " + entry.directory);
  if (::renameat2(AT_FDCWD, build_directory.c_str(), AT_FDCWD, entry.directory.c_str(), RENAME_EXCHANGE) != 0) {
    return fail_errno("cannot replace " + entry.directory);
  }
  // build_directory now contains the old image. A run that opened it keeps
  // its open file after the unlink.
  if (Status removed = sys::remove_tree(build_directory); !removed) {
    spdlog::warn("cannot remove the replaced template image: {}", removed.error().message);
  }
  return {};
}

Result<TemplateImage> build_in(const std::string& build_directory, const CacheEntry& entry,
                               const TemplateDefinition& definition, const BuildInputs& inputs,
                               const ImageBuildOptions& options) {
  if (Status staged = stage_root_tree(build_directory, definition, inputs, options, entry.log); !staged) {
    return tl::unexpected(staged.error());
  }
  const std::string root = build_directory + "/root";
  const std::string image = build_directory + "/rootfs.ext4";
  if (Status made = make_ext4_image(root, image, options); !made) return tl::unexpected(made.error());
  if (Status removed = remove_build_directory(root); !removed) return tl::unexpected(removed.error());
  return write_manifest(build_directory, definition, inputs.key);
}

Result<TemplateImage> build_and_install(const CacheEntry& entry, const TemplateDefinition& definition,
                                        const BuildInputs& inputs, const ImageBuildOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  std::string build_directory = entry.parent + "/" + entry.stem + ".build-XXXXXX";
  if (::mkdtemp(build_directory.data()) == nullptr) {
    return fail_errno("cannot create a build directory in " + entry.parent);
  }
  report_progress(options, "building template image " + definition.name + " (base " + definition.base + ") in " +
                      build_directory);

  Result<TemplateImage> image = build_in(build_directory, entry, definition, inputs, options);
  if (image) {
    if (Status installed = install_build(entry, build_directory); !installed) image = tl::unexpected(installed.error());
  }
  if (!image) {
    if (Status removed = remove_build_directory(build_directory); !removed) {
      spdlog::warn("cannot remove the failed template build: {}", removed.error().message);
    }
    return tl::unexpected(with_context(image.error(), "cannot build template image " + definition.name));
  }

  image->path = entry.image;
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  report_progress(options, "template image " + definition.name + " is ready: " + entry.image + " (" +
                      sys::format_size(image->size_bytes) + ", built in " + sys::format_duration(elapsed) + ")");
  return image;
}

}  // namespace

Result<std::string> template_image_key(const TemplateDefinition& definition, const ImageBuildOptions& options) {
  Result<BuildInputs> inputs = read_build_inputs(definition, options);
  if (!inputs) return tl::unexpected(inputs.error());
  return inputs->key;
}

std::string default_ca_bundle() {
  const char* bundle = std::getenv("ZWRM_CA_BUNDLE");
  return bundle != nullptr ? bundle : "";
}

Result<TemplateImage> verify_template_image(const sys::Paths& paths, const TemplateDefinition& definition,
                                            const ImageBuildOptions& options) {
  Result<BuildInputs> inputs = read_build_inputs(definition, options);
  if (!inputs) return tl::unexpected(inputs.error());
  return check_cached_image(cache_entry(paths, definition, inputs->key), definition, inputs->key);
}

Result<TemplateImage> ensure_template_image(const sys::Paths& paths, const TemplateDefinition& definition,
                                            const ImageBuildOptions& options) {
  Result<BuildInputs> inputs = read_build_inputs(definition, options);
  if (!inputs) return tl::unexpected(inputs.error());
  const CacheEntry entry = cache_entry(paths, definition, inputs->key);
  // A cached image that no longer matches its manifest was modified or
  // damaged after the build: report it rather than quietly replacing it,
  // because it is the root file system of every run of this template.
  if (!options.force) {
    Result<TemplateImage> cached = check_cached_image(entry, definition, inputs->key);
    if (cached || cached.error().errno_value != ENOENT) return cached;
  }

  if (Status made = sys::make_directories(entry.parent, 0700); !made) return tl::unexpected(made.error());
  Result<UniqueFd> lock = lock_entry(entry, options);
  if (!lock) return tl::unexpected(lock.error());
  // Another process may have finished the same image while this one waited.
  if (!options.force) {
    Result<TemplateImage> cached = check_cached_image(entry, definition, inputs->key);
    if (cached || cached.error().errno_value != ENOENT) return cached;
  }
  remove_abandoned_builds(entry);
  return build_and_install(entry, definition, *inputs, options);
}

}  // namespace zwrm::images
