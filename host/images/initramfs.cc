#include "host/images/initramfs.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdio>

#include "host/sys/files.h"

namespace zwrm::images {

namespace {

struct Entry {
  const char* name;
  mode_t mode;
  unsigned rdev_major = 0;
  unsigned rdev_minor = 0;
};

void pad_to_four(std::string& out) {
  while (out.size() % 4 != 0) out.push_back('\0');
}

void append_entry(std::string& out, unsigned inode, const char* name, mode_t mode, const std::string& data,
                  unsigned rdev_major, unsigned rdev_minor) {
  const std::size_t name_size = std::string_view(name).size() + 1;
  char header[160];
  std::snprintf(header, sizeof header, "070701%08X%08X%08X%08X%08X%08X%08zX%08X%08X%08X%08X%08zX%08X", inode,
                static_cast<unsigned>(mode), 0u, 0u, S_ISDIR(mode) ? 2u : 1u, 0u, data.size(), 0u, 0u, rdev_major,
                rdev_minor, name_size, 0u);
  out.append(header, 110);
  out.append(name, name_size);
  pad_to_four(out);
  out.append(data);
  pad_to_four(out);
}

}  // namespace

std::string build_initramfs_archive(const std::string& init_binary) {
  // Mount points the guest init uses before it switches root; /dev/console
  // must exist so the kernel can give init its stdin, stdout and stderr.
  static const Entry kEntries[] = {
      {"dev", S_IFDIR | 0755},     {"dev/console", S_IFCHR | 0600, 5, 1},
      {"proc", S_IFDIR | 0755},    {"sys", S_IFDIR | 0755},
      {"lower", S_IFDIR | 0755},   {"rw", S_IFDIR | 0755},
      {"newroot", S_IFDIR | 0755},
  };
  std::string out;
  unsigned inode = 1;
  for (const Entry& entry : kEntries) {
    append_entry(out, inode++, entry.name, entry.mode, "", entry.rdev_major, entry.rdev_minor);
  }
  append_entry(out, inode++, "init", S_IFREG | 0755, init_binary, 0, 0);
  append_entry(out, 0, "TRAILER!!!", 0, "", 0, 0);
  return out;
}

Result<Initramfs> ensure_initramfs(const sys::Paths& paths) {
  auto binary = sys::read_file(paths.init);
  if (!binary) {
    return fail("guest init not found at " + paths.init + "; build zwrm (cmake --build) or set ZWRM_INIT",
                binary.error().errno_value);
  }
  Initramfs initramfs;
  initramfs.init_digest = sys::sha256_hex(*binary);
  const std::string directory = paths.cache + "/initramfs";
  initramfs.path = directory + "/" + initramfs.init_digest.substr(0, 16) + ".cpio";
  if (sys::path_exists(initramfs.path)) return initramfs;

  if (auto made = sys::make_directories(directory, 0700); !made) return tl::unexpected(made.error());
  if (auto written = sys::write_file_atomic(initramfs.path, build_initramfs_archive(*binary), 0644); !written) {
    return tl::unexpected(written.error());
  }
  return initramfs;
}

}  // namespace zwrm::images
