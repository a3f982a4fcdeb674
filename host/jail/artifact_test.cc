#include "host/jail/artifact.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace zwrm::jail {
namespace {

namespace fs = std::filesystem;

class ArtifactTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/zwrm-artifact-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    file_ = dir_ + "/volume.ext4";
    std::ofstream(file_) << "volume";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Returns the error of opening path, or "" when it opened.
  static std::string rejection(const std::string& path, Access access = Access::kReadOnly) {
    auto opened = open_artifact(path, access);
    return opened ? std::string() : opened.error().message;
  }

  std::string dir_;
  std::string file_;
};

TEST_F(ArtifactTest, PlainFileOpensWithRequestedAccess) {
  auto opened = open_artifact(file_, Access::kReadWrite);
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_EQ(::fcntl(opened->get(), F_GETFL) & O_ACCMODE, O_RDWR);
  EXPECT_NE(::fcntl(opened->get(), F_GETFD) & FD_CLOEXEC, 0);
  ASSERT_EQ(::write(opened->get(), "V", 1), 1);

  auto read_only = open_artifact(file_, Access::kReadOnly);
  ASSERT_TRUE(read_only) << read_only.error().message;
  EXPECT_EQ(::write(read_only->get(), "V", 1), -1);
}

TEST_F(ArtifactTest, SymbolicLinkRejected) {
  const std::string victim = dir_ + "/victim";
  std::ofstream(victim) << "host file";
  const std::string link = dir_ + "/link.ext4";
  fs::create_symlink(victim, link);
  const std::string error = rejection(link, Access::kReadWrite);
  EXPECT_NE(error.find(link), std::string::npos) << error;
  EXPECT_NE(error.find("symbolic link"), std::string::npos) << error;
}

TEST_F(ArtifactTest, SecondHardLinkRejected) {
  fs::create_hard_link(file_, dir_ + "/other-name");
  const std::string error = rejection(file_);
  EXPECT_NE(error.find("2 hard links"), std::string::npos) << error;
}

TEST_F(ArtifactTest, DirectoryAndDeviceRejected) {
  EXPECT_NE(rejection(dir_).find("not a regular file"), std::string::npos);
  EXPECT_NE(rejection("/dev/null").find("not a regular file"), std::string::npos);
}

TEST_F(ArtifactTest, WorldWritableRejected) {
  ASSERT_EQ(::chmod(file_.c_str(), 0666), 0);
  EXPECT_NE(rejection(file_).find("writable by every user"), std::string::npos);
}

TEST_F(ArtifactTest, ForeignGroupWritableRejected) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file another group";
  ASSERT_EQ(::chown(file_.c_str(), 0, 12345), 0);
  ASSERT_EQ(::chmod(file_.c_str(), 0664), 0);
  EXPECT_NE(rejection(file_).find("writable by group 12345"), std::string::npos);
  ASSERT_EQ(::chmod(file_.c_str(), 0644), 0);
  EXPECT_EQ(rejection(file_), "");
}

TEST_F(ArtifactTest, FifoRejectedWithoutBlocking) {
  const std::string fifo = dir_ + "/fifo.ext4";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(rejection(fifo).find("not a regular file"), std::string::npos);
  EXPECT_NE(rejection(fifo, Access::kReadWrite).find("not a regular file"), std::string::npos);
}

TEST_F(ArtifactTest, OtherOwnerRejected) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file another owner";
  ASSERT_EQ(::chown(file_.c_str(), 12345, 12345), 0);
  const std::string error = rejection(file_);
  EXPECT_NE(error.find("owned by uid 12345"), std::string::npos) << error;
}

TEST_F(ArtifactTest, MissingFileNamesPath) {
  const std::string error = rejection(dir_ + "/missing.ext4");
  EXPECT_NE(error.find("missing.ext4"), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
}

}  // namespace
}  // namespace zwrm::jail
