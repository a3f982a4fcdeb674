#include "host/jail/root_plan.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace zwrm::jail {

namespace {

namespace fs = std::filesystem;

// Top-level names that hold the dynamic loader and libraries. On a merged
// /usr host (Debian 12) they are symbolic links into /usr and are copied as
// links; otherwise they are bound read-only.
constexpr const char* kLibraryDirs[] = {"/bin", "/lib", "/lib32", "/lib64", "/libx32", "/sbin"};

void add_parents(std::vector<RootOp>& ops, const std::string& root, const fs::path& inside) {
  fs::path partial;
  for (const fs::path& part : inside.parent_path().relative_path()) {
    partial /= part;
    ops.push_back({RootOp::kDirectory, {}, root + "/" + partial.string(), -1, true, "a parent directory"});
  }
}

}  // namespace

std::vector<RootOp> plan_root(const Options& options) {
  std::vector<RootOp> ops;
  const std::string& root = options.root;
  ops.push_back({RootOp::kBindDir, "/usr", root + "/usr", -1, true, "the VMM binary, its libraries and firmware"});
  for (const char* name : kLibraryDirs) {
    struct stat info {};
    if (::lstat(name, &info) != 0) continue;
    if (S_ISLNK(info.st_mode)) {
      std::error_code error;
      const fs::path target = fs::read_symlink(name, error);
      if (!error) ops.push_back({RootOp::kSymlink, target.string(), root + name, -1, true, "a library link"});
    } else if (S_ISDIR(info.st_mode)) {
      ops.push_back({RootOp::kBindDir, name, root + name, -1, true, "a library directory"});
    }
  }
  if (::access("/etc/ld.so.cache", R_OK) == 0) {
    ops.push_back({RootOp::kDirectory, {}, root + "/etc", -1, true, "the loader's cache"});
    ops.push_back({RootOp::kBindFile, "/etc/ld.so.cache", root + "/etc/ld.so.cache", -1, true, "the loader's cache"});
  }

  const fs::path binary_dir = fs::path(options.argv.front()).parent_path();
  if (binary_dir.lexically_relative("/usr").string().starts_with("..")) {
    add_parents(ops, root, binary_dir / "x");
    ops.push_back({RootOp::kBindDir, binary_dir.string(), root + binary_dir.string(), -1, true, "the VMM binary"});
  }

  ops.push_back({RootOp::kDirectory, {}, root + "/dev", -1, true, "device nodes"});
  for (const std::string& device : options.devices) {
    add_parents(ops, root, device);
    ops.push_back({RootOp::kBindFile, device, root + device, -1, false, "a device node"});
  }
  ops.push_back({RootOp::kDirectory, {}, root + "/vmm", -1, true, "the VMM's files"});
  for (const File& file : options.files) {
    ops.push_back({RootOp::kAttachFile, "descriptor " + std::to_string(file.fd), root + "/vmm/" + file.name,
                   file.fd, true, "the VMM's " + file.name});
  }
  return ops;
}

}  // namespace zwrm::jail
