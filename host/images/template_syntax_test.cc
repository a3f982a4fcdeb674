#include "host/images/template_syntax.h"

#include <gtest/gtest.h>

namespace zwrm::images {
namespace {

TEST(NpmSpec, PackageNameDropsVersion) {
  EXPECT_EQ(npm_package_name("cowsay"), "cowsay");
  EXPECT_EQ(npm_package_name("cowsay@1.6.0"), "cowsay");
  EXPECT_EQ(npm_package_name("@openai/codex"), "@openai/codex");
  EXPECT_EQ(npm_package_name("@openai/codex@0.1.2"), "@openai/codex");
}

TEST(NpmSpec, ValidSpecHasNoReason) {
  EXPECT_EQ(check_npm_spec("@anthropic-ai/claude-code"), "");
  EXPECT_EQ(check_npm_spec("is-number@7.0.0"), "");
}

TEST(NpmSpec, OverlongNameRejected) {
  const std::string name(215, 'a');
  EXPECT_NE(check_npm_spec(name).find("longer than 214 characters"), std::string::npos);
  EXPECT_EQ(check_npm_spec(std::string(214, 'a')), "");
}

TEST(NpmSpec, OverlongVersionRejected) {
  EXPECT_NE(check_npm_spec("a@" + std::string(65, '1')).find("longer than 64 characters"), std::string::npos);
}

TEST(NpmSpec, ControlCharacterEscapedInReason) {
  const std::string reason = check_npm_spec("a\x1b[2Jb");
  EXPECT_NE(reason.find("'\\x1b'"), std::string::npos) << reason;
}

TEST(DebianNames, PackagesSuitesAndVariables) {
  EXPECT_TRUE(is_debian_package_name("g++"));
  EXPECT_TRUE(is_debian_package_name("libc6-dev"));
  EXPECT_FALSE(is_debian_package_name("x"));
  EXPECT_TRUE(is_debian_suite_name("bookworm-backports"));
  EXPECT_FALSE(is_debian_suite_name("Bookworm"));
  EXPECT_TRUE(is_shell_variable_name("_A1"));
  EXPECT_FALSE(is_shell_variable_name("1A"));
}

}  // namespace
}  // namespace zwrm::images
