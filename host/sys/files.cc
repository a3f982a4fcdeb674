#include "host/sys/files.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <cstdio>
#include <memory>

#include "common/unique_fd.h"

namespace zwrm::sys {

Result<std::string> read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("cannot open " + path);
  std::string content;
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t count = ::read(fd.get(), buffer, sizeof buffer);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return fail_errno("cannot read " + path);
    if (count == 0) break;
    content.append(buffer, static_cast<std::size_t>(count));
  }
  return content;
}

Status write_file_atomic(const std::string& path, std::string_view content, mode_t mode) {
  std::string temporary = path + ".tmp.XXXXXX";
  UniqueFd fd(::mkostemp(temporary.data(), O_CLOEXEC));
  if (!fd) return fail_errno("cannot create a temporary file beside " + path);
  std::size_t written = 0;
  while (written < content.size()) {
    const ssize_t count = ::write(fd.get(), content.data() + written, content.size() - written);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) {
      const int error = errno;
      ::unlink(temporary.c_str());
      return fail_errno("cannot write " + temporary, error);
    }
    written += static_cast<std::size_t>(count);
  }
  if (::fchmod(fd.get(), mode) != 0 || ::fsync(fd.get()) != 0 ||
      ::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    return fail_errno("cannot write " + path, error);
  }
  return {};
}

Status make_directories(const std::string& path, mode_t mode) {
  if (path.empty()) return {};
  std::string prefix;
  std::size_t position = 0;
  while (position != std::string::npos) {
    position = path.find('/', position + 1);
    prefix = path.substr(0, position);
    if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return fail_errno("cannot create directory " + prefix);
    }
  }
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return fail("cannot create directory " + path + ": a file of another type is in the way");
  }
  return {};
}

Status remove_tree(const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return {};
    return fail_errno("cannot remove " + path);
  }
  auto remove_one = [](const char* entry, const struct stat*, int, struct FTW*) -> int {
    return ::remove(entry) == 0 || errno == ENOENT ? 0 : -1;
  };
  if (::nftw(path.c_str(), remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
    return fail_errno("cannot remove " + path);
  }
  return {};
}

bool path_exists(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0;
}

namespace {

std::string to_hex(const unsigned char* data, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    hex.push_back(kDigits[data[i] >> 4]);
    hex.push_back(kDigits[data[i] & 0xf]);
  }
  return hex;
}

}  // namespace

Sha256::Sha256() : context_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
  ZWRM_CHECK(context_ && EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) == 1);
}

void Sha256::update(const void* data, std::size_t size) { EVP_DigestUpdate(context_.get(), data, size); }

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(context_.get(), digest, &size);
  return to_hex(digest, size);
}

Result<std::string> sha256_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("cannot open " + path);
  Sha256 digest;
  std::unique_ptr<char[]> buffer(new char[1 << 20]);
  for (;;) {
    const ssize_t count = ::read(fd.get(), buffer.get(), 1 << 20);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return fail_errno("cannot read " + path);
    if (count == 0) break;
    digest.update(buffer.get(), static_cast<std::size_t>(count));
  }
  return digest.hex_digest();
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  ZWRM_CHECK(EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr) == 1);
  return to_hex(digest, size);
}

std::string random_bytes(std::size_t n) {
  std::string bytes(n, '\0');
  std::size_t filled = 0;
  while (filled < n) {
    const ssize_t count = ::getrandom(bytes.data() + filled, n - filled, 0);
    if (count < 0 && errno == EINTR) continue;
    ZWRM_CHECK(count > 0);
    filled += static_cast<std::size_t>(count);
  }
  return bytes;
}

std::string random_hex(std::size_t n) {
  const std::string bytes = random_bytes((n + 1) / 2);
  return to_hex(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()).substr(0, n);
}

}  // namespace zwrm::sys
