// Secrets: per-agent values (API keys, tokens) that a run receives as
// environment variables of its processes. Each value is encrypted at rest
// with AES-256-GCM under a 32-byte host key that is kept in its own file,
// outside ZWRM_HOME, so a copy of the state directory alone reveals no value.
//
// A value never appears in an error message, a log line or an event: every
// message names the agent and the secret, never the value. Only reveal_all
// returns plaintext, for the supervisor right before it starts a process.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "state/database.h"

namespace zwrm::state {

// Size of the host key file in bytes (an AES-256 key).
inline constexpr std::size_t kSecretKeyBytes = 32;
// Maximum length of a secret value in bytes.
// A process's command line, environment and secrets travel in one 64 KiB
// exec request, so one secret may take at most half of it.
inline constexpr std::size_t kMaxSecretValueBytes = 32 * 1024;
// Maximum length of a secret name.
inline constexpr std::size_t kMaxSecretNameLength = 128;

// Returns where the host key lives: $ZWRM_SECRET_KEY if set, else
// /etc/zwrm/secret.key for root, else $XDG_CONFIG_HOME/zwrm/secret.key
// (~/.config/zwrm/secret.key). The default is outside ZWRM_HOME so that a
// copy of the state directory alone does not reveal secrets.
std::string default_secret_key_path();

// Checks that name can be an environment variable name: 1 to 128 characters
// of [A-Za-z0-9_], not starting with a digit. Anything else is rejected with
// a message that quotes the name through printable(), except that only the
// part before an '=' is quoted, because what follows is likely a value.
Status validate_secret_name(std::string_view name);

struct SecretInfo {
  std::string name;
  std::int64_t set_at_ms = 0;  // Unix epoch milliseconds of the last set
};

// Lists the names of an agent's secrets with the time each was set, sorted
// by name. Needs no key and reads no value. Fails when the agent does not
// exist.
Result<std::vector<SecretInfo>> list_secrets(Database& db, const std::string& agent);

// Deletes one secret. Needs no key. Returns false when the agent has no
// secret of that name, and fails when the agent does not exist.
Result<bool> remove_secret(Database& db, const std::string& agent, const std::string& name);

class SecretStore {
 public:
  // Opens the store with the host key at key_path, which must be absolute.
  // When the file does not exist, creates a random key (getrandom) with
  // mode 0600, creating missing directories with mode 0700, unless the
  // database already contains secrets: they were encrypted with a key that is
  // now missing, and a new key would hide that. Rejects a key file that is a
  // symbolic link or not a regular file, is not owned by the current user,
  // has a mode other than 0600, or is not exactly 32 bytes; the error says
  // which check failed and what to do. Never prints the key.
  static Result<SecretStore> open(Database& db, const std::string& key_path = default_secret_key_path());

  SecretStore(SecretStore&& other) noexcept;
  SecretStore& operator=(SecretStore&& other) noexcept;
  SecretStore(const SecretStore&) = delete;
  SecretStore& operator=(const SecretStore&) = delete;
  ~SecretStore();  // wipes the key from memory

  const std::string& key_path() const { return key_path_; }

  // Encrypts value with AES-256-GCM under a fresh 12-byte random nonce and
  // stores it, replacing any value of that name. The associated data is
  // agent + '\0' + name, so a ciphertext copied to another agent or name
  // fails to decrypt. Fails when the agent does not exist, the name is
  // invalid, or value is empty, longer than 32 KiB, or contains a NUL byte
  // (an environment variable cannot hold one). A single statement, so it
  // can run inside the caller's transaction.
  Status set(const std::string& agent, const std::string& name, std::string_view value);

  // Same as remove_secret.
  Result<bool> remove(const std::string& agent, const std::string& name);

  // Same as list_secrets.
  Result<std::vector<SecretInfo>> list(const std::string& agent);

  // Decrypts every secret of the agent, sorted by name: for the supervisor
  // only, right before it starts a process. A row that fails to decrypt
  // (altered, moved, or stored under another key) fails the whole call with
  // an error that names the secret, never its value. The caller owns the
  // plaintext and should wipe it with OPENSSL_cleanse once delivered.
  Result<std::vector<std::pair<std::string, std::string>>> reveal_all(const std::string& agent);

 private:
  SecretStore(Database& db, std::string key_path) : db_(&db), key_path_(std::move(key_path)) {}

  Database* db_;
  std::string key_path_;
  std::array<unsigned char, kSecretKeyBytes> key_{};
};

}  // namespace zwrm::state
