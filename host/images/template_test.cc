#include "host/images/template.h"

#include <gtest/gtest.h>

#include "host/sys/files.h"

namespace zwrm::images {
namespace {

constexpr std::string_view kDebianTemplate = R"(name = "tools"
description = "Debian with git"
base = "debian"
suite = "trixie"
packages = ["git", "python3", "g++", "libc6-dev"]
command = ["/bin/bash", "-l"]

[env]
LANG = "C.UTF-8"
EDITOR = "vi"
)";

// Returns the error message for text, or a note that parsing succeeded.
std::string parse_error(std::string_view text) {
  Result<TemplateDefinition> definition = parse_template_text(text, "templates/x.toml");
  return definition ? "parsed without error" : definition.error().message;
}

TEST(TemplateParse, ValidDebianDefinition) {
  Result<TemplateDefinition> definition = parse_template_text(kDebianTemplate, "templates/tools.toml");
  ASSERT_TRUE(definition) << definition.error().message;
  EXPECT_EQ(definition->name, "tools");
  EXPECT_EQ(definition->description, "Debian with git");
  EXPECT_EQ(definition->base, "debian");
  EXPECT_EQ(definition->suite, "trixie");
  EXPECT_EQ(definition->packages, (std::vector<std::string>{"git", "python3", "g++", "libc6-dev"}));
  EXPECT_EQ(definition->command, (std::vector<std::string>{"/bin/bash", "-l"}));
  using Env = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(definition->env, (Env{{"LANG", "C.UTF-8"}, {"EDITOR", "vi"}}));
  EXPECT_EQ(definition->source_path, "templates/tools.toml");
  EXPECT_EQ(definition->source_text, kDebianTemplate);
}

TEST(TemplateParse, DebianSuiteDefaultsToBookworm) {
  Result<TemplateDefinition> definition =
      parse_template_text("name = \"d\"\nbase = \"debian\"\ncommand = [\"/bin/bash\"]\n", "d.toml");
  ASSERT_TRUE(definition) << definition.error().message;
  EXPECT_EQ(definition->suite, "bookworm");
  EXPECT_TRUE(definition->packages.empty());
  EXPECT_TRUE(definition->env.empty());
}

TEST(TemplateParse, ValidBusyboxDefinition) {
  Result<TemplateDefinition> definition =
      parse_template_text("name = \"mini-1\"\nbase = \"busybox\"\ncommand = [\"/bin/sh\", \"-l\"]\n", "m.toml");
  ASSERT_TRUE(definition) << definition.error().message;
  EXPECT_EQ(definition->base, "busybox");
  EXPECT_EQ(definition->suite, "");
  EXPECT_EQ(definition->command.size(), 2u);
}

TEST(TemplateParse, InvalidTomlNamesLine) {
  const std::string message = parse_error("name = \"x\"\nbase = \"busybox\"\ncommand = [\"/bin/sh\"\n");
  EXPECT_EQ(message.rfind("templates/x.toml:3: invalid TOML: ", 0), 0u) << message;
  EXPECT_NE(message.find("fix the syntax"), std::string::npos) << message;
}

TEST(TemplateParse, UnknownKeySuggestsNearest) {
  const std::string message =
      parse_error("name = \"x\"\nbase = \"debian\"\ncommand = [\"/bin/sh\"]\n\n\n\npakages = [\"git\"]\n");
  EXPECT_EQ(message, "templates/x.toml:7: unknown key 'pakages'; did you mean 'packages'?");
}

TEST(TemplateParse, UnknownKeyListsKnownKeys) {
  const std::string message = parse_error("name = \"x\"\nbase = \"debian\"\ncommand = [\"/bin/sh\"]\nvolumes = 3\n");
  EXPECT_EQ(message.rfind("templates/x.toml:4: unknown key 'volumes'; remove it", 0), 0u) << message;
  EXPECT_NE(message.find("name, description, base, suite, packages, command and [env]"), std::string::npos);
}

TEST(TemplateParse, UnknownTableIsUnknownKey) {
  const std::string message =
      parse_error("name = \"x\"\nbase = \"debian\"\ncommand = [\"/bin/sh\"]\n[limits]\nmemory = 1\n");
  EXPECT_EQ(message.rfind("templates/x.toml:4: unknown key 'limits'", 0), 0u) << message;
}

TEST(TemplateParse, MissingNameNamesFile) {
  const std::string message = parse_error("base = \"busybox\"\ncommand = [\"/bin/sh\"]\n");
  EXPECT_EQ(message, "templates/x.toml:1: missing key 'name'; add a line such as name = \"my-template\"");
}

TEST(TemplateParse, MissingBaseAndCommand) {
  EXPECT_EQ(parse_error("name = \"x\"\ncommand = [\"/bin/sh\"]\n").rfind("templates/x.toml:1: missing key 'base'", 0),
            0u);
  EXPECT_EQ(parse_error("name = \"x\"\nbase = \"busybox\"\n").rfind("templates/x.toml:1: missing key 'command'", 0),
            0u);
}

TEST(TemplateParse, InvalidNames) {
  for (const char* name : {"Upper", "-leading", "has_underscore", "has space", "", "a23456789012345678901234567890123"}) {
    const std::string message =
        parse_error("base = \"busybox\"\ncommand = [\"/bin/sh\"]\nname = \"" + std::string(name) + "\"\n");
    EXPECT_EQ(message.rfind("templates/x.toml:3: invalid template name '" + std::string(name) + "'", 0), 0u)
        << message;
  }
  EXPECT_EQ(parse_error("base = \"busybox\"\ncommand = [\"/bin/sh\"]\nname = \"a2345678901234567890123456789012\"\n"),
            "parsed without error");
}

TEST(TemplateParse, NameMustBeString) {
  const std::string message = parse_error("base = \"busybox\"\ncommand = [\"/bin/sh\"]\nname = 7\n");
  EXPECT_EQ(message, "templates/x.toml:3: 'name' must be a string, not an integer; put the value in double quotes");
}

TEST(TemplateParse, InvalidBase) {
  const std::string message = parse_error("name = \"x\"\nbase = \"alpine\"\ncommand = [\"/bin/sh\"]\n");
  EXPECT_EQ(message, "templates/x.toml:2: invalid base 'alpine'; use \"busybox\" or \"debian\"");
}

TEST(TemplateParse, InvalidPackageNameNamesItsLine) {
  const std::string message =
      parse_error("name = \"x\"\nbase = \"debian\"\ncommand = [\"/bin/sh\"]\npackages = [\n  \"git\",\n  \"Bad_Name\",\n]\n");
  EXPECT_EQ(message.rfind("templates/x.toml:6: invalid Debian package name 'Bad_Name'", 0), 0u) << message;
}

TEST(TemplateParse, PackageNamesFollowDebianPolicy) {
  for (const char* package : {"a", "-dash", ".dot", "git;rm", "git curl", "pkg=1.0", "pkg:amd64"}) {
    const std::string message = parse_error("name = \"x\"\nbase = \"debian\"\ncommand = [\"/bin/sh\"]\npackages = [\"" +
                                            std::string(package) + "\"]\n");
    EXPECT_EQ(message.rfind("templates/x.toml:4: invalid Debian package name", 0), 0u) << package << ": " << message;
  }
}

TEST(TemplateParse, DuplicatePackage) {
  const std::string message =
      parse_error("name = \"x\"\nbase = \"debian\"\ncommand = [\"/bin/sh\"]\npackages = [\"git\", \"git\"]\n");
  EXPECT_EQ(message, "templates/x.toml:4: package 'git' is listed twice; remove one");
}

TEST(TemplateParse, PackagesNeedDebianBase) {
  const std::string message =
      parse_error("name = \"x\"\nbase = \"busybox\"\ncommand = [\"/bin/sh\"]\npackages = [\"git\"]\n");
  EXPECT_EQ(message.rfind("templates/x.toml:4: 'packages' applies only to base \"debian\"", 0), 0u) << message;
}

TEST(TemplateParse, SuiteNeedsDebianBase) {
  const std::string message = parse_error("name = \"x\"\nbase = \"busybox\"\nsuite = \"bookworm\"\ncommand = [\"/bin/sh\"]\n");
  EXPECT_EQ(message.rfind("templates/x.toml:3: 'suite' applies only to base \"debian\"", 0), 0u) << message;
}

TEST(TemplateParse, CommandMustBeArrayOfStrings) {
  const std::string base = "name = \"x\"\nbase = \"busybox\"\n";
  const std::string as_string = parse_error(base + "command = \"/bin/sh -l\"\n");
  EXPECT_EQ(as_string.rfind("templates/x.toml:3: 'command' must be an array of strings such as [\"/bin/sh\", \"-l\"], "
                            "not a string",
                            0),
            0u)
      << as_string;
  const std::string with_integer = parse_error(base + "command = [\n  \"/bin/sleep\",\n  5,\n]\n");
  EXPECT_EQ(with_integer.rfind("templates/x.toml:5: 'command' must be an array of strings", 0), 0u) << with_integer;
  EXPECT_NE(with_integer.find("one element is an integer"), std::string::npos) << with_integer;
}

TEST(TemplateParse, CommandMustNotBeEmpty) {
  const std::string base = "name = \"x\"\nbase = \"busybox\"\n";
  EXPECT_EQ(parse_error(base + "command = []\n").rfind("templates/x.toml:3: 'command' is empty", 0), 0u);
  EXPECT_EQ(parse_error(base + "command = [\"\"]\n").rfind("templates/x.toml:3: the program in 'command'", 0), 0u);
}

TEST(TemplateParse, NulCharacterRejected) {
  const std::string message = parse_error("name = \"x\"\nbase = \"busybox\"\ncommand = [\"/bin/sh\", \"a\\u0000b\"]\n");
  EXPECT_EQ(message.rfind("templates/x.toml:3: 'command' contains a NUL character", 0), 0u) << message;
}

TEST(TemplateParse, InvalidEnvKey) {
  const std::string base = "name = \"x\"\nbase = \"busybox\"\ncommand = [\"/bin/sh\"]\n[env]\nGOOD = \"1\"\n";
  for (const char* key : {"\"BAD-NAME\"", "\"1ST\"", "\"A B\"", "\"\""}) {
    const std::string message = parse_error(base + key + " = \"v\"\n");
    EXPECT_EQ(message.rfind("templates/x.toml:6: invalid environment variable name", 0), 0u) << key << ": " << message;
  }
}

TEST(TemplateParse, EnvValueMustBeString) {
  const std::string message =
      parse_error("name = \"x\"\nbase = \"busybox\"\ncommand = [\"/bin/sh\"]\n[env]\nCOUNT = 3\n");
  EXPECT_EQ(message, "templates/x.toml:5: 'COUNT' must be a string, not an integer; put the value in double quotes");
}

TEST(TemplateParse, EnvMustBeTable) {
  const std::string message = parse_error("name = \"x\"\nbase = \"busybox\"\ncommand = [\"/bin/sh\"]\nenv = \"A=1\"\n");
  EXPECT_EQ(message.rfind("templates/x.toml:4: 'env' must be a table of strings", 0), 0u) << message;
}

TEST(TemplateParse, OversizedTextRejected) {
  const std::string text = "description = \"" + std::string(kMaxTemplateFileBytes, 'a') + "\"\n";
  EXPECT_EQ(parse_error(text).rfind("templates/x.toml:1: template definition is ", 0), 0u);
}

TEST(TemplateParse, ErrorsAreOneLine) {
  for (const char* text : {"name = \"x\"\n[[", "pakages = 1\n", "name = \"A\"\nbase = \"debian\"\ncommand = [\"x\"]\n"}) {
    EXPECT_EQ(parse_error(text).find('\n'), std::string::npos) << text;
  }
}

class ShippedTemplates : public ::testing::Test {
 protected:
  sys::Paths paths_{.data = std::string(ZWRM_SOURCE_DIR)};
};

TEST_F(ShippedTemplates, BothParse) {
  EXPECT_EQ(list_templates(paths_), (std::vector<std::string>{"debian", "minimal"}));

  Result<TemplateDefinition> minimal = find_template(paths_, "minimal");
  ASSERT_TRUE(minimal) << minimal.error().message;
  EXPECT_EQ(minimal->base, "busybox");
  EXPECT_EQ(minimal->command, (std::vector<std::string>{"/bin/sh", "-l"}));
  EXPECT_FALSE(minimal->description.empty());

  Result<TemplateDefinition> debian = find_template(paths_, "debian");
  ASSERT_TRUE(debian) << debian.error().message;
  EXPECT_EQ(debian->base, "debian");
  EXPECT_EQ(debian->suite, "bookworm");
  EXPECT_EQ(debian->command, (std::vector<std::string>{"/bin/bash", "-l"}));
  for (const char* package : {"bash", "coreutils", "procps", "git", "curl", "ca-certificates", "python3"}) {
    EXPECT_NE(std::find(debian->packages.begin(), debian->packages.end(), package), debian->packages.end())
        << package;
  }
  EXPECT_FALSE(debian->description.empty());
}

TEST_F(ShippedTemplates, UnknownNameListsAvailable) {
  Result<TemplateDefinition> missing = find_template(paths_, "claud");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "unknown template 'claud'; use one of: debian, minimal");
  EXPECT_EQ(missing.error().errno_value, ENOENT);
}

TEST_F(ShippedTemplates, PathLikeNameRejected) {
  Result<TemplateDefinition> escaped = find_template(paths_, "../templates/minimal");
  ASSERT_FALSE(escaped);
  EXPECT_EQ(escaped.error().message.rfind("invalid template name '../templates/minimal'", 0), 0u);
}

TEST(TemplateFile, LoadNamesPathInErrors) {
  char pattern[] = "/tmp/zwrm-template-test.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string directory = pattern;
  ASSERT_TRUE(sys::write_file_atomic(directory + "/bad.toml", "name = \"bad\"\nbase = \"busybox\"\ncommand = 1\n"));

  Result<TemplateDefinition> bad = load_template_file(directory + "/bad.toml");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message.rfind(directory + "/bad.toml:3: 'command' must be an array of strings", 0), 0u)
      << bad.error().message;

  Result<TemplateDefinition> missing = load_template_file(directory + "/missing.toml");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().errno_value, ENOENT);
  EXPECT_NE(missing.error().message.find(directory + "/missing.toml"), std::string::npos);
  ASSERT_TRUE(sys::remove_tree(directory));
}

TEST(TemplateFile, NameMustMatchFileName) {
  char pattern[] = "/tmp/zwrm-template-test.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string directory = pattern;
  ASSERT_TRUE(sys::make_directories(directory + "/templates"));
  ASSERT_TRUE(sys::write_file_atomic(directory + "/templates/one.toml",
                                     "name = \"two\"\nbase = \"busybox\"\ncommand = [\"/bin/sh\"]\n"));
  const sys::Paths paths{.data = directory};

  Result<TemplateDefinition> mismatched = find_template(paths, "one");
  ASSERT_FALSE(mismatched);
  EXPECT_NE(mismatched.error().message.find("defines template 'two', not 'one'"), std::string::npos)
      << mismatched.error().message;
  ASSERT_TRUE(sys::remove_tree(directory));
}

}  // namespace
}  // namespace zwrm::images
