#include "host/images/kernel.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "common/unique_fd.h"
#include "host/images/cache_lock.h"
#include "host/sys/files.h"
#include "host/sys/process.h"

namespace zwrm::images {

namespace {

constexpr const char* kDefaultSource = "/usr/src/linux-source-6.1.tar.xz";

std::string kernel_source() {
  const char* source = std::getenv("ZWRM_KERNEL_SOURCE");
  return source != nullptr && *source != '\0' ? source : kDefaultSource;
}

// Hashing the 130 MiB tarball takes about a second, so its digest is
// remembered beside the cache, keyed by what stat() says about the file.
Result<std::string> source_digest(const std::string& cache_dir, const std::string& source) {
  struct stat info {};
  if (::stat(source.c_str(), &info) != 0) {
    return fail_errno("kernel source " + source + " is missing; install the linux-source-6.1 package");
  }
  const std::string stamp = source + ":" + std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino) + ":" +
                            std::to_string(info.st_size) + ":" + std::to_string(info.st_mtim.tv_sec) + "." +
                            std::to_string(info.st_mtim.tv_nsec);
  const std::string memo = cache_dir + "/source-" + sys::sha256_hex(stamp).substr(0, 16);
  if (auto remembered = sys::read_file(memo); remembered && remembered->size() == 64) return *remembered;

  auto digest = sys::sha256_file(source);
  if (!digest) return digest;
  (void)sys::write_file_atomic(memo, *digest);
  return digest;
}

Kernel kernel_at(const std::string& directory, const std::string& key) {
  return Kernel{directory + "/bzImage", directory + "/vmlinux", key, ""};
}

}  // namespace

Result<Kernel> ensure_kernel(const sys::Paths& paths, const Progress& progress) {
  const std::string fragment = paths.data + "/kernel/microvm.config";
  const std::string script = paths.data + "/kernel/build-kernel.sh";
  auto fragment_text = sys::read_file(fragment);
  if (!fragment_text) return fail(fragment_text.error().message + "; reinstall zwrm or set ZWRM_DATA_DIR");
  auto script_text = sys::read_file(script);
  if (!script_text) return fail(script_text.error().message + "; reinstall zwrm or set ZWRM_DATA_DIR");

  const std::string cache_dir = paths.cache + "/kernels";
  if (auto made = sys::make_directories(cache_dir, 0700); !made) return tl::unexpected(made.error());
  const std::string source = kernel_source();
  auto digest = source_digest(cache_dir, source);
  if (!digest) return tl::unexpected(digest.error());

  const std::string key = sys::sha256_hex(*digest + "\n" + *fragment_text + "\n" + *script_text).substr(0, 16);
  const std::string directory = cache_dir + "/" + key;
  Kernel kernel = kernel_at(directory, key);

  auto lock = CacheLock::acquire(directory + ".lock");
  if (!lock) return tl::unexpected(lock.error());
  if (!sys::path_exists(directory + "/bzImage")) {
    if (progress) progress("building the guest kernel (first use only; about 4 minutes on 2 cores)");
    const std::string staging = directory + ".building";
    (void)sys::remove_tree(staging);
    sys::ProcessOptions options;
    options.on_line = [&](std::string_view line) {
      if (progress && line.rfind("kernel: ", 0) == 0) progress(line);
    };
    const unsigned jobs = std::max(1u, std::thread::hardware_concurrency());
    auto built = sys::run_process({"bash", script, source, fragment, staging, std::to_string(jobs)}, options);
    if (!built) return tl::unexpected(built.error());
    if (!built->succeeded()) {
      return fail("guest kernel build " + built->describe() + "; full log in " + staging + "/build.log");
    }
    if (::rename(staging.c_str(), directory.c_str()) != 0) return fail_errno("cannot move the kernel into " + directory);
  }

  auto image_digest = sys::read_file(directory + "/bzImage.sha256");
  if (!image_digest) {
    auto computed = sys::sha256_file(kernel.bzimage);
    if (!computed) return tl::unexpected(computed.error());
    (void)sys::write_file_atomic(directory + "/bzImage.sha256", *computed);
    image_digest = *computed;
  }
  kernel.digest = *image_digest;
  return kernel;
}

}  // namespace zwrm::images
