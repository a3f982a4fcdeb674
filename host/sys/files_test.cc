#include "host/sys/files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace zwrm::sys {
namespace {

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/zwrm-files-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { ASSERT_TRUE(remove_tree(dir_)); }
  std::string dir_;
};

TEST_F(FilesTest, WriteAtomicThenRead) {
  const std::string path = dir_ + "/a.txt";
  ASSERT_TRUE(write_file_atomic(path, "first", 0600));
  ASSERT_TRUE(write_file_atomic(path, "second", 0600));
  EXPECT_EQ(read_file(path).value(), "second");
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

TEST_F(FilesTest, ReadMissingNamesPath) {
  auto content = read_file(dir_ + "/missing");
  ASSERT_FALSE(content);
  EXPECT_NE(content.error().message.find(dir_ + "/missing"), std::string::npos);
  EXPECT_EQ(content.error().errno_value, ENOENT);
}

TEST_F(FilesTest, RemoveTreeDoesNotFollowSymlinks) {
  const std::string outside = dir_ + "/outside";
  ASSERT_TRUE(make_directories(outside));
  ASSERT_TRUE(write_file_atomic(outside + "/keep", "x"));
  ASSERT_TRUE(make_directories(dir_ + "/tree/sub"));
  ASSERT_EQ(::symlink(outside.c_str(), (dir_ + "/tree/sub/link").c_str()), 0);
  ASSERT_TRUE(remove_tree(dir_ + "/tree"));
  EXPECT_FALSE(path_exists(dir_ + "/tree"));
  EXPECT_TRUE(path_exists(outside + "/keep"));
}

TEST_F(FilesTest, Sha256OfKnownInput) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  ASSERT_TRUE(write_file_atomic(dir_ + "/abc", "abc"));
  EXPECT_EQ(sha256_file(dir_ + "/abc").value(), sha256_hex("abc"));
  Sha256 pieces;
  pieces.update("a", 1);
  pieces.update("bc", 2);
  EXPECT_EQ(pieces.hex_digest(), sha256_hex("abc"));
}

TEST_F(FilesTest, RandomHexHasRequestedLength) {
  const std::string a = random_hex(12);
  EXPECT_EQ(a.size(), 12u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, random_hex(12));
}

}  // namespace
}  // namespace zwrm::sys
