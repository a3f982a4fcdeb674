#include "state/secrets.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "state/agents.h"

namespace zwrm::state {
namespace {

namespace fs = std::filesystem;

// A value distinctive enough that finding it anywhere means it leaked.
constexpr const char* kValue = "plaintext-Z7q9-correct-horse-battery";

std::string read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream content;
  content << file.rdbuf();
  return content.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << bytes;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

unsigned file_mode(const std::string& path) {
  struct stat status {};
  if (::lstat(path.c_str(), &status) != 0) return 0;
  return status.st_mode & 07777;
}

class SecretsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/zwrm-secrets-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    key_path_ = dir_ + "/keys/secret.key";
    auto db = Database::open(dir_ + "/zwrm.db");
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
    add_agent("alpha");
    add_agent("beta");
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(dir_);
  }

  void add_agent(const std::string& name) {
    Agent agent;
    agent.name = name;
    agent.template_name = "minimal";
    agent.volume_path = dir_ + "/volumes/" + name + ".ext4";
    agent.volume_bytes = 1 << 20;
    auto inserted = insert_agent(*db_, agent);
    ASSERT_TRUE(inserted) << inserted.error().message;
  }

  SecretStore open_store(const std::string& key_path) {
    auto store = SecretStore::open(*db_, key_path);
    EXPECT_TRUE(store) << store.error().message;
    // value() throws on an error, which fails the test instead of crashing.
    return std::move(store).value();
  }
  SecretStore open_store() { return open_store(key_path_); }

  void run_sql(const char* sql) {
    auto done = db_->execute(sql);
    ASSERT_TRUE(done) << done.error().message;
  }

  // Opens a store on a key file the test wrote itself.
  Result<SecretStore> open_with_key_bytes(const std::string& bytes, mode_t mode) {
    const std::string path = dir_ + "/written.key";
    write_bytes(path, bytes);
    ::chmod(path.c_str(), mode);
    return SecretStore::open(*db_, path);
  }

  std::string dir_;
  std::string key_path_;
  std::unique_ptr<Database> db_;
};

TEST_F(SecretsTest, RoundTrip) {
  SecretStore store = open_store();
  ASSERT_TRUE(store.set("alpha", "TOKEN", kValue));
  ASSERT_TRUE(store.set("alpha", "API_KEY", "second\nline with spaces"));
  ASSERT_TRUE(store.set("beta", "TOKEN", "beta's value"));

  auto revealed = store.reveal_all("alpha");
  ASSERT_TRUE(revealed) << revealed.error().message;
  ASSERT_EQ(revealed->size(), 2u);
  EXPECT_EQ((*revealed)[0].first, "API_KEY");
  EXPECT_EQ((*revealed)[0].second, "second\nline with spaces");
  EXPECT_EQ((*revealed)[1].first, "TOKEN");
  EXPECT_EQ((*revealed)[1].second, kValue);

  auto other = store.reveal_all("beta");
  ASSERT_TRUE(other) << other.error().message;
  ASSERT_EQ(other->size(), 1u);
  EXPECT_EQ(other->front().second, "beta's value");
}

TEST_F(SecretsTest, SetReplacesValue) {
  SecretStore store = open_store();
  ASSERT_TRUE(store.set("alpha", "TOKEN", "old"));
  ASSERT_TRUE(store.set("alpha", "TOKEN", "new"));
  auto revealed = store.reveal_all("alpha");
  ASSERT_TRUE(revealed) << revealed.error().message;
  ASSERT_EQ(revealed->size(), 1u);
  EXPECT_EQ(revealed->front().second, "new");
}

TEST_F(SecretsTest, ReopenedStoreDecrypts) {
  ASSERT_TRUE(open_store().set("alpha", "TOKEN", kValue));
  auto revealed = open_store().reveal_all("alpha");
  ASSERT_TRUE(revealed) << revealed.error().message;
  ASSERT_EQ(revealed->size(), 1u);
  EXPECT_EQ(revealed->front().second, kValue);
}

TEST_F(SecretsTest, ListShowsNamesAndTimesOnly) {
  SecretStore store = open_store();
  const std::int64_t before = now_unix_ms();
  ASSERT_TRUE(store.set("alpha", "ZED", kValue));
  ASSERT_TRUE(store.set("alpha", "ALPHA_1", kValue));
  const std::int64_t after = now_unix_ms();

  auto listed = store.list("alpha");
  ASSERT_TRUE(listed) << listed.error().message;
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].name, "ALPHA_1");
  EXPECT_EQ((*listed)[1].name, "ZED");
  for (const SecretInfo& info : *listed) {
    EXPECT_GE(info.set_at_ms, before);
    EXPECT_LE(info.set_at_ms, after);
  }
  auto without_key = list_secrets(*db_, "alpha");
  ASSERT_TRUE(without_key) << without_key.error().message;
  EXPECT_EQ(without_key->size(), 2u);
  auto empty = store.list("beta");
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_TRUE(empty->empty());
}

TEST_F(SecretsTest, DatabaseFilesHoldNoPlaintext) {
  SecretStore store = open_store();
  ASSERT_TRUE(store.set("alpha", "FINDABLE_NAME", kValue));
  const std::string database = db_->path();

  // Before a checkpoint the new pages are in the write-ahead log.
  const std::string wal = read_bytes(database + "-wal");
  EXPECT_TRUE(contains(wal + read_bytes(database), "FINDABLE_NAME")) << "the search does not see the stored rows";
  EXPECT_FALSE(contains(wal, kValue));
  EXPECT_FALSE(contains(read_bytes(database), kValue));

  run_sql("PRAGMA wal_checkpoint(TRUNCATE)");
  const std::string checkpointed = read_bytes(database);
  EXPECT_TRUE(contains(checkpointed, "FINDABLE_NAME"));
  EXPECT_FALSE(contains(checkpointed, kValue));
  EXPECT_FALSE(contains(read_bytes(database + "-wal"), kValue));
}

TEST_F(SecretsTest, CiphertextCopiedToOtherNameFails) {
  SecretStore store = open_store();
  ASSERT_TRUE(store.set("alpha", "TOKEN", kValue));
  run_sql(
      "INSERT INTO secrets (agent, name, nonce, ciphertext, set_at) "
      "SELECT agent, 'STOLEN', nonce, ciphertext, set_at FROM secrets WHERE name = 'TOKEN'");

  auto revealed = store.reveal_all("alpha");
  ASSERT_FALSE(revealed);
  EXPECT_TRUE(contains(revealed.error().message, "'STOLEN'")) << revealed.error().message;
  EXPECT_FALSE(contains(revealed.error().message, kValue));
}

TEST_F(SecretsTest, CiphertextCopiedToOtherAgentFails) {
  SecretStore store = open_store();
  ASSERT_TRUE(store.set("alpha", "TOKEN", kValue));
  run_sql(
      "INSERT INTO secrets (agent, name, nonce, ciphertext, set_at) "
      "SELECT 'beta', name, nonce, ciphertext, set_at FROM secrets WHERE agent = 'alpha'");

  auto revealed = store.reveal_all("beta");
  ASSERT_FALSE(revealed);
  EXPECT_TRUE(contains(revealed.error().message, "'TOKEN' of agent 'beta'")) << revealed.error().message;
  EXPECT_FALSE(contains(revealed.error().message, kValue));
  EXPECT_TRUE(store.reveal_all("alpha"));
}

TEST_F(SecretsTest, FlippedCiphertextByteFails) {
  SecretStore store = open_store();
  ASSERT_TRUE(store.set("alpha", "A_FIRST", "an intact value"));
  ASSERT_TRUE(store.set("alpha", "TOKEN", kValue));
  std::string ciphertext;
  {
    auto query = db_->prepare("SELECT ciphertext FROM secrets WHERE agent = 'alpha' AND name = 'TOKEN'");
    ASSERT_TRUE(query);
    ASSERT_TRUE(*query->step());
    ciphertext = query->blob(0);
  }
  ASSERT_FALSE(ciphertext.empty());
  ciphertext[ciphertext.size() / 2] ^= 0x01;
  {
    auto update = db_->prepare("UPDATE secrets SET ciphertext = ? WHERE agent = 'alpha' AND name = 'TOKEN'");
    ASSERT_TRUE(update);
    update->bind_blob(1, ciphertext);
    ASSERT_TRUE(update->run());
  }

  auto revealed = store.reveal_all("alpha");
  ASSERT_FALSE(revealed);
  const std::string& message = revealed.error().message;
  EXPECT_TRUE(contains(message, "cannot decrypt secret 'TOKEN' of agent 'alpha'")) << message;
  EXPECT_TRUE(contains(message, "zwrm secret set alpha TOKEN")) << message;
  EXPECT_FALSE(contains(message, kValue));
  EXPECT_FALSE(contains(message, "an intact value"));
}

TEST_F(SecretsTest, TruncatedNonceFails) {
  SecretStore store = open_store();
  ASSERT_TRUE(store.set("alpha", "TOKEN", kValue));
  run_sql("UPDATE secrets SET nonce = substr(nonce, 1, 4)");
  auto revealed = store.reveal_all("alpha");
  ASSERT_FALSE(revealed);
  EXPECT_TRUE(contains(revealed.error().message, "'TOKEN'")) << revealed.error().message;
  EXPECT_TRUE(contains(revealed.error().message, "wrong size")) << revealed.error().message;
}

TEST_F(SecretsTest, KeyCreatedOwnerOnly) {
  open_store();
  EXPECT_EQ(file_mode(key_path_), 0600u);
  EXPECT_EQ(file_mode(dir_ + "/keys"), 0700u);
  EXPECT_EQ(fs::file_size(key_path_), kSecretKeyBytes);
  struct stat status {};
  ASSERT_EQ(::lstat(key_path_.c_str(), &status), 0);
  EXPECT_TRUE(S_ISREG(status.st_mode));
  EXPECT_EQ(status.st_uid, ::geteuid());
  // Only the key itself: the temporary file it was written to is gone.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ + "/keys"), fs::directory_iterator()), 1);
}

TEST_F(SecretsTest, KeyCreatedDespiteUmask) {
  const mode_t previous = ::umask(0277);
  open_store();
  ::umask(previous);
  EXPECT_EQ(file_mode(key_path_), 0600u);
}

TEST_F(SecretsTest, KeyNotReplacedOnReopen) {
  open_store();
  const std::string first = read_bytes(key_path_);
  open_store();
  EXPECT_EQ(read_bytes(key_path_), first);
}

TEST_F(SecretsTest, KeyReadableByOthersRejected) {
  auto store = open_with_key_bytes(std::string(kSecretKeyBytes, 'k'), 0644);
  ASSERT_FALSE(store);
  EXPECT_TRUE(contains(store.error().message, "mode 0644")) << store.error().message;
  EXPECT_TRUE(contains(store.error().message, "chmod 600")) << store.error().message;
}

TEST_F(SecretsTest, KeySymlinkRejected) {
  open_store();
  const std::string link = dir_ + "/link.key";
  ASSERT_EQ(::symlink(key_path_.c_str(), link.c_str()), 0);
  auto store = SecretStore::open(*db_, link);
  ASSERT_FALSE(store);
  EXPECT_TRUE(contains(store.error().message, "symbolic link")) << store.error().message;
}

TEST_F(SecretsTest, KeyOfWrongSizeRejected) {
  for (std::size_t size : {std::size_t{0}, kSecretKeyBytes - 1, kSecretKeyBytes + 1}) {
    auto store = open_with_key_bytes(std::string(size, 'k'), 0600);
    ASSERT_FALSE(store) << size;
    EXPECT_TRUE(contains(store.error().message, std::to_string(size) + " bytes long")) << store.error().message;
  }
}

TEST_F(SecretsTest, KeyDirectoryRejected) {
  const std::string path = dir_ + "/a-directory";
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
  auto store = SecretStore::open(*db_, path);
  ASSERT_FALSE(store);
  EXPECT_TRUE(contains(store.error().message, "not a regular file")) << store.error().message;
}

TEST_F(SecretsTest, KeyOfOtherUserRejected) {
  if (::geteuid() != 0) GTEST_SKIP() << "changing a file's owner needs root";
  const std::string path = dir_ + "/other.key";
  write_bytes(path, std::string(kSecretKeyBytes, 'k'));
  ::chmod(path.c_str(), 0600);
  ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
  auto store = SecretStore::open(*db_, path);
  ASSERT_FALSE(store);
  EXPECT_TRUE(contains(store.error().message, "owned by uid 65534")) << store.error().message;
}

TEST_F(SecretsTest, RelativeKeyPathRejected) {
  auto store = SecretStore::open(*db_, "keys/secret.key");
  ASSERT_FALSE(store);
  EXPECT_TRUE(contains(store.error().message, "not absolute")) << store.error().message;
}

TEST_F(SecretsTest, WrongKeyFailsToDecrypt) {
  ASSERT_TRUE(open_store().set("alpha", "TOKEN", kValue));
  std::string other_key = read_bytes(key_path_);
  other_key[0] ^= 0x01;
  auto other = open_with_key_bytes(other_key, 0600);
  ASSERT_TRUE(other) << other.error().message;
  auto revealed = other->reveal_all("alpha");
  ASSERT_FALSE(revealed);
  EXPECT_TRUE(contains(revealed.error().message, "cannot decrypt secret 'TOKEN'")) << revealed.error().message;
  EXPECT_TRUE(contains(revealed.error().message, dir_ + "/written.key")) << revealed.error().message;
  EXPECT_FALSE(contains(revealed.error().message, kValue));
}

TEST_F(SecretsTest, MissingKeyWithStoredSecretsRejected) {
  ASSERT_TRUE(open_store().set("alpha", "TOKEN", kValue));
  ASSERT_TRUE(fs::remove(key_path_));
  auto store = SecretStore::open(*db_, key_path_);
  ASSERT_FALSE(store);
  EXPECT_TRUE(contains(store.error().message, "is missing")) << store.error().message;
  EXPECT_TRUE(contains(store.error().message, "1 secret ")) << store.error().message;
  EXPECT_FALSE(fs::exists(key_path_));
  // Listing and removing need no key, so the user can still clean up.
  auto listed = list_secrets(*db_, "alpha");
  ASSERT_TRUE(listed) << listed.error().message;
  EXPECT_EQ(listed->size(), 1u);
  auto removed = remove_secret(*db_, "alpha", "TOKEN");
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_TRUE(*removed);
  EXPECT_TRUE(SecretStore::open(*db_, key_path_));
}

TEST_F(SecretsTest, UnknownAgentRejected) {
  SecretStore store = open_store();
  auto set = store.set("nobody", "TOKEN", kValue);
  ASSERT_FALSE(set);
  EXPECT_TRUE(contains(set.error().message, "no agent named 'nobody'")) << set.error().message;
  EXPECT_TRUE(contains(set.error().message, "zwrm agent create nobody")) << set.error().message;
  EXPECT_FALSE(contains(set.error().message, kValue));
  EXPECT_FALSE(store.list("nobody"));
  EXPECT_FALSE(store.remove("nobody", "TOKEN"));
  EXPECT_FALSE(store.reveal_all("nobody"));
}

TEST_F(SecretsTest, RemoveDeletesOneSecret) {
  SecretStore store = open_store();
  ASSERT_TRUE(store.set("alpha", "TOKEN", kValue));
  ASSERT_TRUE(store.set("alpha", "OTHER", kValue));
  auto removed = store.remove("alpha", "TOKEN");
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_TRUE(*removed);
  auto again = store.remove("alpha", "TOKEN");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_FALSE(*again);
  auto listed = store.list("alpha");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().name, "OTHER");
}

TEST_F(SecretsTest, InvalidValuesRejected) {
  SecretStore store = open_store();
  const std::string with_nul = std::string(kValue) + '\0' + "tail";
  const std::string too_long = kValue + std::string(kMaxSecretValueBytes, 'x');
  for (const std::string& value : {std::string(), with_nul, too_long}) {
    auto set = store.set("alpha", "TOKEN", value);
    ASSERT_FALSE(set) << value.size();
    EXPECT_TRUE(contains(set.error().message, "'TOKEN'")) << set.error().message;
    EXPECT_FALSE(contains(set.error().message, kValue)) << set.error().message;
  }
  auto listed = store.list("alpha");
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty());

  const std::string longest(kMaxSecretValueBytes, 'x');
  ASSERT_TRUE(store.set("alpha", "TOKEN", longest));
  auto revealed = store.reveal_all("alpha");
  ASSERT_TRUE(revealed) << revealed.error().message;
  EXPECT_EQ(revealed->front().second, longest);
}

TEST_F(SecretsTest, SetRejectsInvalidName) {
  SecretStore store = open_store();
  EXPECT_FALSE(store.set("alpha", "A=B", kValue));
  auto listed = store.list("alpha");
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty());
}

TEST(SecretNameTest, ValidNames) {
  for (const char* name : {"A", "_", "api_key", "OPENAI_API_KEY", "X9", "_1"}) {
    auto valid = validate_secret_name(name);
    EXPECT_TRUE(valid) << name << ": " << valid.error().message;
  }
  EXPECT_TRUE(validate_secret_name(std::string(kMaxSecretNameLength, 'A')));
}

TEST(SecretNameTest, InvalidNames) {
  struct Case {
    std::string name;
    std::string expected;  // part of the message
  };
  const Case cases[] = {
      {"A=B", "'A=...': it contains '='"},
      {"TOKEN=sk-live-123", "'TOKEN=...': it contains '='"},
      {"1A", "'1A': it starts with a digit"},
      {"", "'': it is empty"},
      {std::string(kMaxSecretNameLength + 1, 'A'), "it is 129 characters long"},
      {"A-B", "it contains '-'"},
      {"A B", "it contains ' '"},
      {"A\x1b[2J", "'A\\x1b[2J': it contains '\\x1b'"},
      {"A\nB", "'A\\x0aB'"},
      {"\xc3\xa9", "'\\xc3\\xa9'"},
  };
  for (const Case& c : cases) {
    auto valid = validate_secret_name(c.name);
    ASSERT_FALSE(valid) << c.name;
    EXPECT_TRUE(contains(valid.error().message, c.expected)) << valid.error().message;
    EXPECT_TRUE(contains(valid.error().message, "environment variable")) << valid.error().message;
    EXPECT_FALSE(contains(valid.error().message, "sk-live-123")) << valid.error().message;
    for (char byte : valid.error().message) {
      EXPECT_GE(static_cast<unsigned char>(byte), 0x20) << "unescaped byte in: " << valid.error().message;
      EXPECT_LT(static_cast<unsigned char>(byte), 0x7f) << "unescaped byte in: " << valid.error().message;
    }
  }
}

TEST_F(SecretsTest, DeletingAgentDeletesSecrets) {
  SecretStore store = open_store();
  ASSERT_TRUE(store.set("alpha", "TOKEN", kValue));
  ASSERT_TRUE(store.set("beta", "TOKEN", kValue));
  auto deleted = delete_agent(*db_, "alpha");
  ASSERT_TRUE(deleted) << deleted.error().message;
  ASSERT_TRUE(*deleted);

  auto query = db_->prepare("SELECT count(*) FROM secrets WHERE agent = 'alpha'");
  ASSERT_TRUE(query);
  ASSERT_TRUE(*query->step());
  EXPECT_EQ(query->integer(0), 0);
  auto remaining = store.list("beta");
  ASSERT_TRUE(remaining);
  EXPECT_EQ(remaining->size(), 1u);
}

TEST(SecretKeyPathTest, EnvironmentOverridesDefault) {
  const char* saved = std::getenv("ZWRM_SECRET_KEY");
  const std::string previous = saved != nullptr ? saved : "";
  ::setenv("ZWRM_SECRET_KEY", "/somewhere/key", 1);
  EXPECT_EQ(default_secret_key_path(), "/somewhere/key");

  ::unsetenv("ZWRM_SECRET_KEY");
  const std::string fallback = default_secret_key_path();
  if (::geteuid() == 0) {
    EXPECT_EQ(fallback, "/etc/zwrm/secret.key");
  } else {
    EXPECT_TRUE(fallback.ends_with("/zwrm/secret.key")) << fallback;
  }
  if (saved != nullptr) ::setenv("ZWRM_SECRET_KEY", previous.c_str(), 1);
}

}  // namespace
}  // namespace zwrm::state
