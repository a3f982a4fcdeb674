#include "state/secrets.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/printable.h"
#include "common/unique_fd.h"

namespace zwrm::state {

namespace {

constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;

void wipe(std::string& text) {
  OPENSSL_cleanse(text.data(), text.size());
  text.clear();
}

std::string quoted(std::string_view text) { return "'" + printable(text) + "'"; }

std::string parent_directory(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

std::string environment_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::string(value) : std::string();
}

// Creates path and its missing parents with mode 0700. Existing directories
// keep their mode.
Status make_private_directories(const std::string& path) {
  if (path == "/") return {};
  struct stat status {};
  if (::stat(path.c_str(), &status) == 0) {
    if (S_ISDIR(status.st_mode)) return {};
    return fail("cannot create the directory of the secret key: " + path + " exists and is not a directory", ENOTDIR);
  }
  if (Status parent = make_private_directories(parent_directory(path)); !parent) return parent;
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail_errno("cannot create the directory " + path + " for the secret key");
  }
  return {};
}

tl::unexpected<Error> openssl_error(std::string_view operation) {
  char text[256] = "no detail";
  if (const unsigned long code = ERR_get_error(); code != 0) ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return fail(std::string(operation) + " failed in OpenSSL: " + text);
}

std::string associated_data(const std::string& agent, const std::string& name) {
  std::string data = agent;
  data.push_back('\0');
  data += name;
  return data;
}

using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

// Returns the ciphertext followed by the 16-byte GCM tag.
Result<std::string> encrypt(const std::array<unsigned char, kSecretKeyBytes>& key, const std::string& nonce,
                            const std::string& aad, std::string_view plaintext) {
  CipherContext context(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  if (!context) return openssl_error("creating a cipher context");
  const auto* nonce_bytes = reinterpret_cast<const unsigned char*>(nonce.data());
  std::string out(plaintext.size() + kTagBytes, '\0');
  auto* out_bytes = reinterpret_cast<unsigned char*>(out.data());
  int length = 0;
  int final_length = 0;
  const bool done =
      EVP_EncryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
      EVP_EncryptInit_ex(context.get(), nullptr, nullptr, key.data(), nonce_bytes) == 1 &&
      EVP_EncryptUpdate(context.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_EncryptUpdate(context.get(), out_bytes, &length, reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) == 1 &&
      EVP_EncryptFinal_ex(context.get(), out_bytes + length, &final_length) == 1 &&
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, out_bytes + plaintext.size()) == 1;
  if (!done) return openssl_error("AES-256-GCM encryption");
  return out;
}

// Decrypts sealed (ciphertext and tag) into plaintext, which the caller
// sizes to the ciphertext, so the value is written once in place and never
// copied. Returns false, with plaintext wiped, when the tag does not
// authenticate the ciphertext and associated data under this key and nonce.
bool decrypt(const std::array<unsigned char, kSecretKeyBytes>& key, const std::string& nonce, const std::string& aad,
             const std::string& sealed, std::string& plaintext) {
  CipherContext context(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  ZWRM_CHECK(sealed.size() >= kTagBytes && plaintext.size() == sealed.size() - kTagBytes);
  if (!context) return false;
  const std::size_t ciphertext_size = plaintext.size();
  const auto* sealed_bytes = reinterpret_cast<const unsigned char*>(sealed.data());
  auto* plain_bytes = reinterpret_cast<unsigned char*>(plaintext.data());
  // EVP_CTRL_GCM_SET_TAG takes a non-const pointer but only copies the tag.
  std::array<unsigned char, kTagBytes> tag{};
  std::copy_n(sealed_bytes + ciphertext_size, kTagBytes, tag.begin());
  int length = 0;
  int final_length = 0;
  const bool done =
      EVP_DecryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
      EVP_DecryptInit_ex(context.get(), nullptr, nullptr, key.data(),
                         reinterpret_cast<const unsigned char*>(nonce.data())) == 1 &&
      EVP_DecryptUpdate(context.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(context.get(), plain_bytes, &length, sealed_bytes, static_cast<int>(ciphertext_size)) == 1 &&
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(context.get(), plain_bytes + length, &final_length) == 1;
  ERR_clear_error();
  if (!done) wipe(plaintext);
  return done;
}

Result<bool> agent_exists(Database& db, const std::string& agent) {
  auto query = db.prepare("SELECT 1 FROM agents WHERE name = ?");
  if (!query) return tl::unexpected(query.error());
  query->bind(1, agent);
  return query->step();
}

tl::unexpected<Error> agent_not_found(const std::string& agent) {
  return fail("no agent named " + quoted(agent) + "; create it first with `zwrm agent create " + printable(agent) +
                  " --template TEMPLATE` or a first `zwrm agent TEMPLATE " + printable(agent) + "`",
              ENOENT);
}

Status require_agent(Database& db, const std::string& agent) {
  auto exists = agent_exists(db, agent);
  if (!exists) return tl::unexpected(exists.error());
  if (!*exists) return agent_not_found(agent);
  return {};
}

Result<std::int64_t> count_all_secrets(Database& db) {
  auto query = db.prepare("SELECT count(*) FROM secrets");
  if (!query) return tl::unexpected(query.error());
  if (auto row = query->step(); !row) return tl::unexpected(row.error());
  return query->integer(0);
}

// Checks the opened key file: a regular file of the current user, mode
// 0600, exactly kSecretKeyBytes long.
Status check_key_file(int fd, const std::string& path) {
  struct stat status {};
  if (::fstat(fd, &status) != 0) return fail_errno("cannot inspect the secret key " + path);
  if (!S_ISREG(status.st_mode)) {
    return fail("the secret key " + path + " is not a regular file; replace it with the key file itself", EINVAL);
  }
  if (status.st_uid != ::geteuid()) {
    return fail("the secret key " + path + " is owned by uid " + std::to_string(status.st_uid) +
                    ", not by the current user (uid " + std::to_string(::geteuid()) +
                    "); run zwrm as its owner, or set ZWRM_SECRET_KEY to your own key",
                EPERM);
  }
  const unsigned mode = status.st_mode & 07777;
  if (mode != 0600) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", mode);
    return fail("the secret key " + path + " has mode " + text + ", but only its owner may read it; run `chmod 600 " +
                    path + "`",
                EPERM);
  }
  if (status.st_size != static_cast<off_t>(kSecretKeyBytes)) {
    return fail("the secret key " + path + " is " + std::to_string(status.st_size) + " bytes long instead of " +
                    std::to_string(kSecretKeyBytes) + "; restore it from your backup",
                EINVAL);
  }
  return {};
}

// Reads the key at path into key. Fails with ENOENT when there is no file.
Status load_key(const std::string& path, std::array<unsigned char, kSecretKeyBytes>& key) {
  // O_NONBLOCK keeps a FIFO put in the key's place from blocking the open.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    if (errno == ELOOP) {
      return fail("the secret key " + path + " is a symbolic link; replace it with the key file itself", ELOOP);
    }
    return fail_errno("cannot open the secret key " + path);
  }
  if (Status checked = check_key_file(fd.get(), path); !checked) return checked;
  std::size_t filled = 0;
  while (filled < key.size()) {
    const ssize_t count = ::read(fd.get(), key.data() + filled, key.size() - filled);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return fail_errno("cannot read the secret key " + path);
    if (count == 0) return fail("the secret key " + path + " became shorter while zwrm read it", EIO);
    filled += static_cast<std::size_t>(count);
  }
  return {};
}

Status fill_random(unsigned char* bytes, std::size_t size) {
  std::size_t filled = 0;
  while (filled < size) {
    const ssize_t count = ::getrandom(bytes + filled, size - filled, 0);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return fail_errno("getrandom for a new secret key");
    filled += static_cast<std::size_t>(count);
  }
  return {};
}

Status write_all(int fd, const unsigned char* bytes, std::size_t size) {
  std::size_t written = 0;
  while (written < size) {
    const ssize_t count = ::write(fd, bytes + written, size - written);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return fail_errno("write");
    written += static_cast<std::size_t>(count);
  }
  return {};
}

// Writes a new random key to path. The key is written in full to a
// temporary file and linked into place, so no reader sees a partial key,
// and when another zwrm created the key first, its key is kept.
Status create_key(const std::string& path) {
  const std::string directory = parent_directory(path);
  if (Status made = make_private_directories(directory); !made) return made;

  std::array<unsigned char, 8> suffix{};
  if (Status filled = fill_random(suffix.data(), suffix.size()); !filled) return filled;
  char suffix_text[2 * suffix.size() + 1];
  for (std::size_t i = 0; i < suffix.size(); ++i) std::snprintf(suffix_text + 2 * i, 3, "%02x", suffix[i]);
  const std::string temporary = path + ".new-" + suffix_text;

  UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return fail_errno("cannot create the secret key " + temporary);
  std::array<unsigned char, kSecretKeyBytes> key{};
  Status written = fill_random(key.data(), key.size());
  if (written) written = write_all(fd.get(), key.data(), key.size());
  OPENSSL_cleanse(key.data(), key.size());
  // fchmod because the umask may have removed the owner's read bit.
  if (written && (::fchmod(fd.get(), 0600) != 0 || ::fsync(fd.get()) != 0)) written = fail_errno("fchmod or fsync");
  if (written && ::link(temporary.c_str(), path.c_str()) != 0 && errno != EEXIST) written = fail_errno("link");
  ::unlink(temporary.c_str());
  if (!written) return fail("cannot create the secret key " + path + ": " + written.error().message);

  UniqueFd directory_fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (directory_fd) ::fsync(directory_fd.get());
  return {};
}

}  // namespace

std::string default_secret_key_path() {
  if (std::string configured = environment_or_empty("ZWRM_SECRET_KEY"); !configured.empty()) return configured;
  if (::geteuid() == 0) return "/etc/zwrm/secret.key";
  std::string config_home = environment_or_empty("XDG_CONFIG_HOME");
  // The XDG Base Directory Specification requires ignoring a relative path.
  if (config_home.empty() || config_home.front() != '/') {
    std::string user_home = environment_or_empty("HOME");
    if (user_home.empty()) {
      if (const passwd* entry = ::getpwuid(::geteuid()); entry != nullptr) user_home = entry->pw_dir;
    }
    config_home = user_home + "/.config";
  }
  return config_home + "/zwrm/secret.key";
}

Status validate_secret_name(std::string_view name) {
  const std::string rule =
      "use 1 to 128 letters, digits and '_', not starting with a digit, as for an environment "
      "variable";
  // What follows '=' is most likely the value itself, so it is not quoted.
  if (const std::size_t equals = name.find('='); equals != std::string_view::npos) {
    return fail("invalid secret name " + quoted(std::string(name.substr(0, equals)) + "=...") +
                ": it contains '='; give only the environment variable's name here, and the value on stdin or at "
                "the prompt");
  }
  auto invalid = [&](const std::string& why) {
    return fail("invalid secret name " + quoted(name) + ": " + why + "; " + rule);
  };
  if (name.empty()) return invalid("it is empty");
  if (name.size() > kMaxSecretNameLength) return invalid("it is " + std::to_string(name.size()) + " characters long");
  if (name.front() >= '0' && name.front() <= '9') return invalid("it starts with a digit");
  for (unsigned char c : name) {
    const bool allowed = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!allowed) return invalid("it contains " + quoted(std::string_view(reinterpret_cast<const char*>(&c), 1)));
  }
  return {};
}

Result<std::vector<SecretInfo>> list_secrets(Database& db, const std::string& agent) {
  if (Status found = require_agent(db, agent); !found) return tl::unexpected(found.error());
  auto query = db.prepare("SELECT name, set_at FROM secrets WHERE agent = ? ORDER BY name");
  if (!query) return tl::unexpected(query.error());
  query->bind(1, agent);
  std::vector<SecretInfo> secrets;
  for (;;) {
    auto row = query->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return secrets;
    secrets.push_back({query->text(0), query->integer(1)});
  }
}

Result<bool> remove_secret(Database& db, const std::string& agent, const std::string& name) {
  if (Status found = require_agent(db, agent); !found) return tl::unexpected(found.error());
  auto remove = db.prepare("DELETE FROM secrets WHERE agent = ? AND name = ?");
  if (!remove) return tl::unexpected(remove.error());
  remove->bind(1, agent).bind(2, name);
  if (auto done = remove->run(); !done) return tl::unexpected(done.error());
  return sqlite3_changes(db.handle()) > 0;
}

Result<SecretStore> SecretStore::open(Database& db, const std::string& key_path) {
  if (key_path.empty() || key_path.front() != '/') {
    return fail("the secret key path " + quoted(key_path) + " is not absolute; set ZWRM_SECRET_KEY to an absolute path",
                EINVAL);
  }
  SecretStore store(db, key_path);
  Status loaded = load_key(key_path, store.key_);
  if (!loaded && loaded.error().errno_value == ENOENT) {
    auto stored = count_all_secrets(db);
    if (!stored) return tl::unexpected(stored.error());
    if (*stored > 0) {
      const std::string count = *stored == 1 ? "1 secret" : std::to_string(*stored) + " secrets";
      return fail("the secret key " + key_path + " is missing, but the database contains " + count +
                      " encrypted with it; restore the key from your backup (or point ZWRM_SECRET_KEY at it), "
                      "or remove those secrets with `zwrm secret rm`",
                  ENOENT);
    }
    if (Status created = create_key(key_path); !created) return tl::unexpected(created.error());
    loaded = load_key(key_path, store.key_);
  }
  if (!loaded) return tl::unexpected(loaded.error());
  return store;
}

SecretStore::SecretStore(SecretStore&& other) noexcept
    : db_(other.db_), key_path_(std::move(other.key_path_)), key_(other.key_) {
  OPENSSL_cleanse(other.key_.data(), other.key_.size());
}

SecretStore& SecretStore::operator=(SecretStore&& other) noexcept {
  if (this != &other) {
    db_ = other.db_;
    key_path_ = std::move(other.key_path_);
    key_ = other.key_;
    OPENSSL_cleanse(other.key_.data(), other.key_.size());
  }
  return *this;
}

SecretStore::~SecretStore() { OPENSSL_cleanse(key_.data(), key_.size()); }

Status SecretStore::set(const std::string& agent, const std::string& name, std::string_view value) {
  if (Status valid = validate_secret_name(name); !valid) return valid;
  const std::string label = "secret " + quoted(name) + " of agent " + quoted(agent);
  if (value.empty()) return fail("the value of " + label + " is empty; a secret needs a value", EINVAL);
  if (value.size() > kMaxSecretValueBytes) {
    return fail("the value of " + label + " is " + std::to_string(value.size()) + " bytes, more than the maximum " +
                    std::to_string(kMaxSecretValueBytes),
                E2BIG);
  }
  if (value.find('\0') != std::string_view::npos) {
    return fail("the value of " + label + " contains a NUL byte, which an environment variable cannot hold", EINVAL);
  }

  std::string nonce(kNonceBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), static_cast<int>(nonce.size())) != 1) {
    return openssl_error("generating a nonce for " + label);
  }
  auto sealed = encrypt(key_, nonce, associated_data(agent, name), value);
  if (!sealed) return tl::unexpected(with_context(sealed.error(), "cannot encrypt " + label));

  // One statement that inserts only when the agent exists, so a caller can
  // wrap it with its audit event in one transaction.
  auto upsert = db_->prepare(
      "INSERT INTO secrets (agent, name, nonce, ciphertext, set_at) "
      "SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM agents WHERE name = ?1) "
      "ON CONFLICT (agent, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, "
      "set_at = excluded.set_at");
  if (!upsert) return tl::unexpected(upsert.error());
  upsert->bind(1, agent).bind(2, name).bind_blob(3, nonce).bind_blob(4, *sealed).bind(5, now_unix_ms());
  if (auto done = upsert->run(); !done) return tl::unexpected(with_context(done.error(), "cannot store " + label));
  if (sqlite3_changes(db_->handle()) == 0) return agent_not_found(agent);
  return {};
}

Result<bool> SecretStore::remove(const std::string& agent, const std::string& name) {
  return remove_secret(*db_, agent, name);
}

Result<std::vector<SecretInfo>> SecretStore::list(const std::string& agent) { return list_secrets(*db_, agent); }

Result<std::vector<std::pair<std::string, std::string>>> SecretStore::reveal_all(const std::string& agent) {
  if (Status found = require_agent(*db_, agent); !found) return tl::unexpected(found.error());
  auto query = db_->prepare("SELECT name, nonce, ciphertext FROM secrets WHERE agent = ? ORDER BY name");
  if (!query) return tl::unexpected(query.error());
  query->bind(1, agent);
  struct Sealed {
    std::string name;
    std::string nonce;
    std::string ciphertext;
  };
  std::vector<Sealed> rows;
  for (;;) {
    auto row = query->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    rows.push_back({query->text(0), query->blob(1), query->blob(2)});
  }

  // Reserved up front and decrypted in place: a reallocation or a move of
  // a short string would leave copies of values in freed memory.
  std::vector<std::pair<std::string, std::string>> revealed;
  revealed.reserve(rows.size());
  for (const Sealed& row : rows) {
    const std::string label = "secret " + quoted(row.name) + " of agent " + quoted(agent);
    const std::string set_again = "`zwrm secret set " + printable(agent) + " " + printable(row.name) + "`";
    std::string problem;
    if (row.nonce.size() != kNonceBytes || row.ciphertext.size() < kTagBytes) {
      problem = "its stored nonce or ciphertext has the wrong size; set it again with " + set_again;
    } else {
      auto& [name, value] = revealed.emplace_back(row.name, std::string(row.ciphertext.size() - kTagBytes, '\0'));
      if (decrypt(key_, row.nonce, associated_data(agent, name), row.ciphertext, value)) continue;
      problem = "it was altered or moved, or encrypted under a key other than " + key_path_ +
                "; restore the key it was stored with, or set it again with " + set_again;
    }
    for (auto& [name, value] : revealed) wipe(value);
    return fail("cannot decrypt " + label + ": " + problem, EBADMSG);
  }
  return revealed;
}

}  // namespace zwrm::state
