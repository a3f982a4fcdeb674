#include "host/images/template_catalog.h"

#include <gtest/gtest.h>

#include "host/sys/files.h"

namespace zwrm::images {
namespace {

constexpr std::string_view kUserTemplate = "name = \"tools\"\nbase = \"busybox\"\ncommand = [\"/bin/sh\"]\n";

// A data directory with the built-in templates "alpha" and "beta" and an
// empty home for user templates.
class TemplateCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/zwrm-catalog-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    directory_ = pattern;
    paths_.data = directory_ + "/data";
    paths_.templates = directory_ + "/home/templates";
    ASSERT_TRUE(sys::make_directories(paths_.data + "/templates"));
    for (const char* name : {"alpha", "beta"}) {
      ASSERT_TRUE(sys::write_file_atomic(paths_.data + "/templates/" + name + ".toml",
                                         "name = \"" + std::string(name) +
                                             "\"\nbase = \"busybox\"\ncommand = [\"/bin/sh\"]\n"));
    }
  }
  void TearDown() override { ASSERT_TRUE(sys::remove_tree(directory_)); }

  // Parses text as a file the user named.
  TemplateDefinition user_file(std::string_view text) {
    Result<TemplateDefinition> definition = parse_template_text(text, directory_ + "/mine.toml");
    EXPECT_TRUE(definition) << definition.error().message;
    return definition ? *definition : TemplateDefinition{};
  }

  std::string directory_;
  sys::Paths paths_;
};

TEST_F(TemplateCatalogTest, SavedUserTemplateIsFoundByName) {
  TemplateDefinition definition = user_file(kUserTemplate);
  Result<bool> replaced = save_user_template(paths_, definition);
  ASSERT_TRUE(replaced) << replaced.error().message;
  EXPECT_FALSE(*replaced);
  EXPECT_EQ(definition.source, TemplateSource::kUser);
  EXPECT_EQ(definition.source_path, paths_.templates + "/tools.toml");
  EXPECT_EQ(sys::read_file(paths_.templates + "/tools.toml").value(), kUserTemplate);

  Result<TemplateDefinition> found = find_template(paths_, "tools");
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_EQ(found->source, TemplateSource::kUser);
  EXPECT_EQ(found->source_text, kUserTemplate);
  EXPECT_EQ(list_templates(paths_), (std::vector<std::string>{"alpha", "beta", "tools"}));
}

TEST_F(TemplateCatalogTest, SavingAgainReplaces) {
  TemplateDefinition first = user_file(kUserTemplate);
  ASSERT_TRUE(save_user_template(paths_, first));
  const std::string changed = std::string(kUserTemplate) + "description = \"changed\"\n";
  TemplateDefinition second = user_file(changed);
  Result<bool> replaced = save_user_template(paths_, second);
  ASSERT_TRUE(replaced) << replaced.error().message;
  EXPECT_TRUE(*replaced);
  EXPECT_EQ(find_template(paths_, "tools")->description, "changed");
}

TEST_F(TemplateCatalogTest, BuiltInNameRejectedAtItsLine) {
  TemplateDefinition definition =
      user_file("# mine\nbase = \"busybox\"\nname = \"beta\"\ncommand = [\"/bin/sh\"]\n");
  const std::string expected = directory_ + "/mine.toml:3: template name 'beta' belongs to a built-in template; "
                                            "choose another name";
  Status allowed = check_user_template_name(paths_, definition);
  ASSERT_FALSE(allowed);
  EXPECT_EQ(allowed.error().message, expected);
  Result<bool> saved = save_user_template(paths_, definition);
  ASSERT_FALSE(saved);
  EXPECT_EQ(saved.error().message, expected);
  EXPECT_FALSE(sys::path_exists(paths_.templates + "/beta.toml"));
}

TEST_F(TemplateCatalogTest, EntriesShowSourceAndShadowing) {
  TemplateDefinition definition = user_file(kUserTemplate);
  ASSERT_TRUE(save_user_template(paths_, definition));
  // A user file that a later built-in of the same name hides.
  ASSERT_TRUE(sys::write_file_atomic(paths_.templates + "/alpha.toml",
                                     "name = \"alpha\"\nbase = \"busybox\"\ncommand = [\"/bin/ls\"]\n"));

  const std::vector<TemplateEntry> entries = list_template_entries(paths_);
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].name, "alpha");
  EXPECT_EQ(entries[0].source, TemplateSource::kBuiltIn);
  EXPECT_FALSE(entries[0].shadowed);
  EXPECT_EQ(entries[1].name, "beta");
  EXPECT_EQ(entries[2].name, "alpha");
  EXPECT_EQ(entries[2].source, TemplateSource::kUser);
  EXPECT_TRUE(entries[2].shadowed);
  EXPECT_EQ(entries[3].name, "tools");
  EXPECT_FALSE(entries[3].shadowed);
  EXPECT_EQ(entries[3].path, paths_.templates + "/tools.toml");

  EXPECT_EQ(list_templates(paths_), (std::vector<std::string>{"alpha", "beta", "tools"}));
  EXPECT_EQ(find_template(paths_, "alpha")->source, TemplateSource::kBuiltIn);
  EXPECT_EQ(find_template(paths_, "alpha")->command, (std::vector<std::string>{"/bin/sh"}));
}

TEST_F(TemplateCatalogTest, RemoveUserTemplate) {
  TemplateDefinition definition = user_file(kUserTemplate);
  ASSERT_TRUE(save_user_template(paths_, definition));
  Result<bool> removed = remove_user_template(paths_, "tools");
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_TRUE(*removed);
  EXPECT_FALSE(find_template(paths_, "tools"));
  Result<bool> again = remove_user_template(paths_, "tools");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_FALSE(*again);
  EXPECT_FALSE(*remove_user_template(paths_, "../data/templates/alpha"));
  EXPECT_TRUE(sys::path_exists(paths_.data + "/templates/alpha.toml"));
}

TEST_F(TemplateCatalogTest, UserFileWithOtherNameRejected) {
  ASSERT_TRUE(sys::make_directories(paths_.templates));
  ASSERT_TRUE(sys::write_file_atomic(paths_.templates + "/one.toml", kUserTemplate));
  Result<TemplateDefinition> mismatched = find_template(paths_, "one");
  ASSERT_FALSE(mismatched);
  EXPECT_NE(mismatched.error().message.find("defines template 'tools', not 'one'"), std::string::npos)
      << mismatched.error().message;
}

TEST_F(TemplateCatalogTest, WithoutUserDirectoryOnlyBuiltIns) {
  paths_.templates.clear();
  EXPECT_EQ(list_templates(paths_), (std::vector<std::string>{"alpha", "beta"}));
  TemplateDefinition definition = user_file(kUserTemplate);
  EXPECT_FALSE(save_user_template(paths_, definition));
}

}  // namespace
}  // namespace zwrm::images
