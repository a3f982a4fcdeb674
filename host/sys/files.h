// File helpers for host code. None follows a symlink where that would let
// whoever controls the path redirect the operation: remove_tree does not
// descend into symlinked directories.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <sys/types.h>

#include <openssl/types.h>

#include "common/error.h"

namespace zwrm::sys {

Result<std::string> read_file(const std::string& path);
// Writes through a temporary file in the same directory and renames it into
// place, so readers see the old or the new content, never a mix.
Status write_file_atomic(const std::string& path, std::string_view content, mode_t mode = 0644);
// Creates path and missing parents with mode; existing directories are fine.
Status make_directories(const std::string& path, mode_t mode = 0755);
// Removes path and everything under it. Missing path is not an error.
Status remove_tree(const std::string& path);
bool path_exists(const std::string& path);

// Hex SHA-256 of a file's content or of a string.
Result<std::string> sha256_file(const std::string& path);
std::string sha256_hex(std::string_view data);

// A SHA-256 computed over data fed in pieces, for bytes that are streamed
// rather than held.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  // Returns the hex digest of everything fed so far; call it once, last.
  std::string hex_digest();

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> context_;
};

// Returns n random bytes from getrandom(2).
std::string random_bytes(std::size_t n);
// Returns n random lowercase hex characters.
std::string random_hex(std::size_t n);

}  // namespace zwrm::sys
