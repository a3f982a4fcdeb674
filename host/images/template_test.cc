#include "host/images/template.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

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
  EXPECT_NE(message.find("name, description, base, suite, packages, npm, run, command, [env], [defaults] and [policy]"),
            std::string::npos)
      << message;
}

TEST(TemplateParse, UnknownTableIsUnknownKey) {
  const std::string message =
      parse_error("name = \"x\"\nbase = \"debian\"\ncommand = [\"/bin/sh\"]\n[limits]\nmemory = \"1G\"\n");
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

constexpr std::string_view kAgentTemplate = R"(name = "agent-1"
base = "debian"
packages = ["git"]
npm = ["@openai/codex", "is-number@7.0.0"]
run = [
  "ln -s /usr/bin/python3 /usr/local/bin/python",
  """
  echo one
  echo two
  """,
]
command = ["codex"]

[defaults]
cpus = 2
memory = "2G"
disk = "20G"
timeout = "8h"
idle_timeout = "30m"

[policy]
allow = ["api.openai.com", "*.example.com", "registry.npmjs.org:443", "10.0.0.0/8", "[2001:db8::1]:443"]
)";

// The start of a Debian definition that a test completes with one key.
constexpr std::string_view kDebianHead = "name = \"x\"\nbase = \"debian\"\ncommand = [\"/bin/sh\"]\n";

TEST(TemplateParse, AgentDefinitionWithEveryNewKey) {
  Result<TemplateDefinition> definition = parse_template_text(kAgentTemplate, "agent-1.toml");
  ASSERT_TRUE(definition) << definition.error().message;
  EXPECT_EQ(definition->npm, (std::vector<std::string>{"@openai/codex", "is-number@7.0.0"}));
  ASSERT_EQ(definition->run.size(), 2u);
  EXPECT_EQ(definition->run[0], "ln -s /usr/bin/python3 /usr/local/bin/python");
  EXPECT_EQ(definition->run[1], "  echo one\n  echo two\n  ");
  EXPECT_EQ(definition->defaults.cpus, 2u);
  EXPECT_EQ(definition->defaults.memory_bytes, 2ull << 30);
  EXPECT_EQ(definition->defaults.disk_bytes, 20ull << 30);
  EXPECT_EQ(definition->defaults.timeout, std::chrono::hours(8));
  EXPECT_EQ(definition->defaults.idle_timeout, std::chrono::minutes(30));
  EXPECT_EQ(definition->policy_allow, (std::vector<std::string>{"api.openai.com", "*.example.com",
                                                                 "registry.npmjs.org:443", "10.0.0.0/8",
                                                                 "[2001:db8::1/128]:443"}));
  EXPECT_EQ(definition->source, TemplateSource::kFile);
}

TEST(TemplateParse, NewKeysAreOptional) {
  Result<TemplateDefinition> definition = parse_template_text(kDebianHead, "x.toml");
  ASSERT_TRUE(definition) << definition.error().message;
  EXPECT_TRUE(definition->npm.empty());
  EXPECT_TRUE(definition->run.empty());
  EXPECT_FALSE(definition->defaults.cpus.has_value());
  EXPECT_FALSE(definition->defaults.memory_bytes.has_value());
  EXPECT_FALSE(definition->defaults.disk_bytes.has_value());
  EXPECT_FALSE(definition->defaults.timeout.has_value());
  EXPECT_FALSE(definition->defaults.idle_timeout.has_value());
  EXPECT_TRUE(definition->policy_allow.empty());
}

TEST(TemplateParse, NpmSpecsAccepted) {
  for (const char* spec : {"@anthropic-ai/claude-code", "@openai/codex@0.1.2", "cowsay", "is-number@7.0.0",
                           "lodash.merge", "left_pad", "typescript@^5.4", "react@~18.2.0", "pkg@latest",
                           "pkg@next", "pkg@1.x", "pkg@=1.0.0", "pkg@1.0.0-beta.1+build.5", "@types/node@20"}) {
    EXPECT_EQ(parse_error(std::string(kDebianHead) + "npm = [\"" + spec + "\"]\n"), "parsed without error") << spec;
  }
}

TEST(TemplateParse, NpmSpecsRejectedWithReason) {
  struct Case {
    const char* spec;
    const char* reason;
  };
  for (const Case& bad : {
           Case{"https://example.com/pkg.tgz", "it is a URL"},
           Case{"git+ssh://git@github.com/a/b.git", "it is a URL"},
           Case{"github:user/repo", "it names a source such as git:"},
           Case{"file:../pkg", "it names a source such as git:"},
           Case{"alias@npm:real", "it names a source such as git:"},
           Case{"./local", "it is a file path"},
           Case{"/abs/pkg", "it is a file path"},
           Case{"~/pkg", "it is a file path"},
           Case{"pkg.tgz", "it is a tarball"},
           Case{"user/repo", "it is a GitHub shorthand"},
           Case{"user/repo@1.0", "it is a GitHub shorthand"},
           Case{"pkg;rm -rf /", "it contains ';'"},
           Case{"pkg$(id)", "it contains '$'"},
           Case{"pkg`id`", "it contains '`'"},
           Case{"a b", "it contains a space"},
           Case{"pkg@>=1.0", "it contains '>'"},
           Case{"pkg@*", "it contains '*'"},
           Case{"pkg|x", "it contains '|'"},
           Case{"Upper", "npm package names are lowercase"},
           Case{"@scope", "a scoped package name needs a '/'"},
           Case{"@/name", "its scope is empty"},
           Case{"@scope/", "its name is empty"},
           Case{"@scope/a/b", "its name contains '/'"},
           Case{".hidden", "it is a file path"},
           Case{"_private", "must start with a lowercase letter or digit"},
           Case{"-flag", "must start with a lowercase letter or digit"},
           Case{"pkg@", "nothing follows its '@'"},
           Case{"", "it is empty"},
       }) {
    const std::string message = parse_error(std::string(kDebianHead) + "npm = [\"" + bad.spec + "\"]\n");
    EXPECT_EQ(message.rfind("templates/x.toml:4: invalid npm package '" + std::string(bad.spec) + "': ", 0), 0u)
        << bad.spec << ": " << message;
    EXPECT_NE(message.find(bad.reason), std::string::npos) << bad.spec << ": " << message;
  }
}

TEST(TemplateParse, NpmSpecNamesItsLine) {
  const std::string message = parse_error(std::string(kDebianHead) + "npm = [\n  \"cowsay\",\n  \"x y\",\n]\n");
  EXPECT_EQ(message.rfind("templates/x.toml:6: invalid npm package 'x y'", 0), 0u) << message;
}

TEST(TemplateParse, NpmPackageListedTwice) {
  const std::string message = parse_error(std::string(kDebianHead) + "npm = [\"cowsay\", \"cowsay@1.6.0\"]\n");
  EXPECT_EQ(message, "templates/x.toml:4: npm package 'cowsay' is listed twice; remove one");
}

TEST(TemplateParse, NpmMustBeArrayOfStrings) {
  const std::string message = parse_error(std::string(kDebianHead) + "npm = \"cowsay\"\n");
  EXPECT_EQ(message.rfind("templates/x.toml:4: 'npm' must be an array of strings such as", 0), 0u) << message;
}

TEST(TemplateParse, NpmAndRunNeedDebianBase) {
  const std::string busybox = "name = \"x\"\nbase = \"busybox\"\ncommand = [\"/bin/sh\"]\n";
  EXPECT_EQ(parse_error(busybox + "npm = [\"cowsay\"]\n"),
            "templates/x.toml:4: 'npm' applies only to base \"debian\"; remove it or set base = \"debian\"");
  EXPECT_EQ(parse_error(busybox + "run = [\"true\"]\n"),
            "templates/x.toml:4: 'run' applies only to base \"debian\"; remove it or set base = \"debian\"");
}

TEST(TemplateParse, RunCommandsKeepOrderAndText) {
  Result<TemplateDefinition> definition =
      parse_template_text(std::string(kDebianHead) + "run = [\"echo 'a b' > /x\", \"cd /tmp && make\"]\n", "x.toml");
  ASSERT_TRUE(definition) << definition.error().message;
  EXPECT_EQ(definition->run, (std::vector<std::string>{"echo 'a b' > /x", "cd /tmp && make"}));
}

TEST(TemplateParse, EmptyRunCommandRejected) {
  const std::string message = parse_error(std::string(kDebianHead) + "run = [\n  \"true\",\n  \"  \",\n]\n");
  EXPECT_EQ(message, "templates/x.toml:6: command 2 in 'run' is empty; remove it or give a shell command");
}

TEST(TemplateParse, RunCommandMustBeString) {
  const std::string message = parse_error(std::string(kDebianHead) + "run = [\"true\", 3]\n");
  EXPECT_EQ(message.rfind("templates/x.toml:4: 'run' must be an array of strings", 0), 0u) << message;
  EXPECT_NE(message.find("one element is an integer"), std::string::npos) << message;
}

TEST(TemplateParse, DefaultsWorkForBusybox) {
  Result<TemplateDefinition> definition = parse_template_text(
      "name = \"x\"\nbase = \"busybox\"\ncommand = [\"/bin/sh\"]\n[defaults]\nmemory = \"256M\"\n", "x.toml");
  ASSERT_TRUE(definition) << definition.error().message;
  EXPECT_EQ(definition->defaults.memory_bytes, 256ull << 20);
}

TEST(TemplateParse, DefaultsErrors) {
  struct Case {
    const char* line;
    const char* message;
  };
  const std::string head = std::string(kDebianHead) + "[defaults]\n";
  for (const Case& bad : {
           Case{"cpus = \"2\"", "templates/x.toml:5: 'cpus' in [defaults] must be an integer such as 2, not a "
                                "string; write the number without quotes"},
           Case{"cpus = 0", "templates/x.toml:5: invalid 'cpus' in [defaults] 0; use a number from 1 to 64"},
           Case{"cpus = 65", "templates/x.toml:5: invalid 'cpus' in [defaults] 65; use a number from 1 to 64"},
           Case{"cpus = 1.5", "templates/x.toml:5: 'cpus' in [defaults] must be an integer such as 2, not a "
                              "floating-point number; write the number without quotes"},
           Case{"memory = 2048", "templates/x.toml:5: 'memory' must be a string, not an integer; put the value in "
                                 "double quotes"},
           Case{"memory = \"2X\"", "templates/x.toml:5: invalid 'memory' in [defaults]: invalid size '2X'; use a "
                                   "number with a unit, such as 512M, 10G or 1T"},
           Case{"memory = \"1M\"", "templates/x.toml:5: invalid 'memory' in [defaults] '1M'; use at least 64 MiB, "
                                   "such as \"2G\""},
           Case{"disk = \"10\"", "templates/x.toml:5: invalid 'disk' in [defaults] '10'; use at least 64 MiB, such "
                                 "as \"2G\""},
           Case{"timeout = \"soon\"", "templates/x.toml:5: invalid 'timeout' in [defaults]: invalid duration "
                                      "'soon'; use a number with a unit, such as 30s, 5m, 1h30m or 2d"},
           Case{"idle_timeout = \"0s\"", "templates/x.toml:5: invalid 'idle_timeout' in [defaults] '0s'; it must "
                                         "be longer than zero, such as \"30m\"; leave it out for no deadline"},
           Case{"cpu = 2", "templates/x.toml:5: unknown key 'cpu' in [defaults]; did you mean 'cpus'?"},
           Case{"volumes = 2", "templates/x.toml:5: unknown key 'volumes' in [defaults]; remove it, because the "
                               "only keys in [defaults] are cpus, memory, disk, timeout and idle_timeout"},
       }) {
    EXPECT_EQ(parse_error(head + bad.line + "\n"), bad.message) << bad.line;
  }
}

TEST(TemplateParse, DefaultsMustBeTable) {
  const std::string message = parse_error(std::string(kDebianHead) + "defaults = \"2G\"\n");
  EXPECT_EQ(message.rfind("templates/x.toml:4: 'defaults' must be a table such as [defaults]", 0), 0u) << message;
}

TEST(TemplateParse, PolicyRulesAccepted) {
  for (const char* rule : {"api.anthropic.com", "localhost", "*.example.com", "*.example.com:8443",
                           "registry.npmjs.org:443", "10.0.0.1", "10.0.0.1:80", "10.0.0.0/8", "0.0.0.0/0",
                           "192.168.1.0/24", "[::1]", "[2001:db8::1]:443", "fd00::/8", "2001:db8::/32",
                           "a-b.c-d.example", "1password.com", "under_score.example.com"}) {
    EXPECT_EQ(parse_error(std::string(kDebianHead) + "[policy]\nallow = [\"" + rule + "\"]\n"),
              "parsed without error")
        << rule;
  }
}

// Rules are stored as `zwrm policy ls` prints them, so a template's rule
// and the same rule typed on the command line are one rule.
TEST(TemplateParse, PolicyRulesStoredCanonical) {
  struct Case {
    const char* written;
    const char* stored;
  };
  for (const Case& rule : {Case{"API.Example.com.", "api.example.com"}, Case{"example.com:443,80", "example.com"},
                           Case{"example.com:8443,443,8443", "example.com:443,8443"},
                           Case{"10.0.0.1", "10.0.0.1/32"}, Case{"[2001:db8::1]:443", "[2001:db8::1/128]:443"},
                           Case{"bücher.example", "xn--bcher-kva.example"}}) {
    Result<TemplateDefinition> definition = parse_template_text(
        std::string(kDebianHead) + "[policy]\nallow = [\"" + rule.written + "\"]\n", "x.toml");
    ASSERT_TRUE(definition) << definition.error().message;
    EXPECT_EQ(definition->policy_allow, std::vector<std::string>{rule.stored}) << rule.written;
  }
}

TEST(TemplateParse, PolicyRulesRejectedWithReason) {
  struct Case {
    const char* rule;
    const char* reason;
  };
  for (const Case& bad : {
           Case{"", "expected HOST, *.DOMAIN, or an address range"},
           Case{"https://api.example.com", "it is a URL"},
           Case{"*", "a wildcard must be followed by a domain"},
           Case{"*.com", "a wildcard on a top-level domain is too broad"},
           Case{"api.*.com", "'*' is allowed only as the whole first label"},
           Case{"*example.com", "'*' is allowed only as the whole first label"},
           Case{"bad..example.com", "it contains an empty label"},
           Case{"example.com:0", "port \"0\" is not a number from 1 to 65535"},
           Case{"example.com:65536", "port \"65536\" is not a number from 1 to 65535"},
           Case{"example.com:http", "port \"http\" is not a number from 1 to 65535"},
           Case{"example.com:", "a port number is missing"},
           Case{"10.0.0.256", "it ends in a number but is not a valid IPv4 address"},
           Case{"10.0.0", "another spelling of the IP address 10.0.0.0"},
           Case{"10.0.0.0/33", "the prefix length must be a number from 0 to 32"},
           Case{"10.0.0.0/", "the prefix length must be a number from 0 to 32"},
           Case{"10.0.0.1/8", "host bits are set below the /8 prefix, so write the range as 10.0.0.0/8"},
           Case{"fd00::1/8", "write the range as fd00::/8"},
           Case{"example.com/8", "expected HOST, *.DOMAIN, or an address range"},
           Case{"[2001:db8::zz]", "expected HOST, *.DOMAIN, or an address range"},
           Case{"[::1", "expected HOST, *.DOMAIN, or an address range"},
           Case{"[::1]443", "expected HOST, *.DOMAIN, or an address range"},
           Case{"a b", "invalid rule \"a b\""},
       }) {
    const std::string message = parse_error(std::string(kDebianHead) + "[policy]\nallow = [\"" + bad.rule + "\"]\n");
    EXPECT_EQ(message.rfind("templates/x.toml:5: invalid egress rule '" + std::string(bad.rule) + "' in [policy] "
                            "allow: ",
                            0),
              0u)
        << bad.rule << ": " << message;
    EXPECT_NE(message.find(bad.reason), std::string::npos) << bad.rule << ": " << message;
  }
}

TEST(TemplateParse, PolicyErrors) {
  const std::string head = std::string(kDebianHead) + "[policy]\n";
  EXPECT_EQ(parse_error(head + "allow = [\"a.example\", \"a.example\"]\n"),
            "templates/x.toml:5: egress rule 'a.example' is listed twice; remove one");
  EXPECT_EQ(parse_error(head + "alow = []\n"), "templates/x.toml:5: unknown key 'alow' in [policy]; did you mean 'allow'?");
  EXPECT_EQ(parse_error(head + "deny = [\"x.example\"]\n"),
            "templates/x.toml:5: unknown key 'deny' in [policy]; remove it, because the only keys in [policy] are allow");
  const std::string not_array = parse_error(head + "allow = \"api.example.com\"\n");
  EXPECT_EQ(not_array.rfind("templates/x.toml:5: 'allow' must be an array of strings", 0), 0u) << not_array;
  const std::string not_table = parse_error(std::string(kDebianHead) + "policy = [\"api.example.com\"]\n");
  EXPECT_EQ(not_table.rfind("templates/x.toml:4: 'policy' must be a table such as [policy]", 0), 0u) << not_table;
}

TEST(TemplateParse, PolicyRuleNamesItsLine) {
  const std::string message =
      parse_error(std::string(kDebianHead) + "[policy]\nallow = [\n  \"ok.example\",\n  \"bad rule\",\n]\n");
  EXPECT_EQ(message.rfind("templates/x.toml:7: invalid egress rule 'bad rule'", 0), 0u) << message;
}

TEST(TemplateParse, ReservedNamesRejected) {
  for (const char* name : {"create", "ls", "show", "set", "rm"}) {
    const std::string message =
        parse_error("base = \"busybox\"\ncommand = [\"/bin/sh\"]\nname = \"" + std::string(name) + "\"\n");
    EXPECT_EQ(message, "templates/x.toml:3: template name '" + std::string(name) +
                           "' is reserved for the command `zwrm agent " + name + "`; choose another name");
    EXPECT_TRUE(is_reserved_template_name(name)) << name;
  }
  EXPECT_FALSE(is_reserved_template_name("shell"));
  EXPECT_FALSE(is_reserved_template_name("lsx"));
}

TEST(TemplateParse, NewErrorsAreOneLine) {
  for (const std::string& tail : {std::string("npm = [\"a\\nb\"]\n"), std::string("[policy]\nallow = [\"a\\nb\"]\n"),
                                  std::string("[defaults]\nmemory = \"2\\nG\"\n")}) {
    const std::string message = parse_error(std::string(kDebianHead) + tail);
    EXPECT_NE(message, "parsed without error") << tail;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

class ShippedTemplates : public ::testing::Test {
 protected:
  sys::Paths paths_{.data = std::string(ZWRM_SOURCE_DIR)};
};

TEST_F(ShippedTemplates, AllParse) {
  EXPECT_EQ(list_templates(paths_), (std::vector<std::string>{"claude", "codex", "debian", "minimal", "shell"}));

  Result<TemplateDefinition> minimal = find_template(paths_, "minimal");
  ASSERT_TRUE(minimal) << minimal.error().message;
  EXPECT_EQ(minimal->base, "busybox");
  EXPECT_EQ(minimal->command, (std::vector<std::string>{"/bin/sh", "-l"}));
  EXPECT_FALSE(minimal->description.empty());
  EXPECT_EQ(minimal->source, TemplateSource::kBuiltIn);

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

TEST_F(ShippedTemplates, AgentTemplatesInstallTheirCli) {
  struct Expected {
    const char* name;
    const char* npm;
    const char* program;
    const char* api_host;
  };
  for (const Expected& expected : {Expected{"claude", "@anthropic-ai/claude-code", "claude", "api.anthropic.com:443"},
                                   Expected{"codex", "@openai/codex", "codex", "api.openai.com:443"}}) {
    Result<TemplateDefinition> agent = find_template(paths_, expected.name);
    ASSERT_TRUE(agent) << agent.error().message;
    EXPECT_EQ(agent->base, "debian") << expected.name;
    EXPECT_EQ(agent->npm, (std::vector<std::string>{expected.npm})) << expected.name;
    EXPECT_EQ(agent->command, (std::vector<std::string>{expected.program})) << expected.name;
    EXPECT_EQ(agent->defaults.cpus, 2u) << expected.name;
    EXPECT_EQ(agent->defaults.memory_bytes, 2ull << 30) << expected.name;
    EXPECT_EQ(agent->defaults.timeout, std::chrono::hours(8)) << expected.name;
    EXPECT_EQ(agent->defaults.idle_timeout, std::chrono::hours(1)) << expected.name;
    EXPECT_FALSE(agent->defaults.disk_bytes.has_value()) << expected.name;
    EXPECT_NE(std::find(agent->policy_allow.begin(), agent->policy_allow.end(), expected.api_host),
              agent->policy_allow.end())
        << expected.name;
    using Env = std::pair<std::string, std::string>;
    EXPECT_NE(std::find(agent->env.begin(), agent->env.end(), Env{"SHELL", "/bin/bash"}), agent->env.end())
        << expected.name;
  }
}

TEST_F(ShippedTemplates, ShellHasDebianPackages) {
  Result<TemplateDefinition> shell = find_template(paths_, "shell");
  Result<TemplateDefinition> debian = find_template(paths_, "debian");
  ASSERT_TRUE(shell) << shell.error().message;
  ASSERT_TRUE(debian) << debian.error().message;
  EXPECT_EQ(shell->packages, debian->packages);
  EXPECT_EQ(shell->command, (std::vector<std::string>{"/bin/bash", "-l"}));
  EXPECT_TRUE(shell->npm.empty());
  EXPECT_TRUE(shell->policy_allow.empty());
}

TEST_F(ShippedTemplates, UnknownNameListsAvailable) {
  Result<TemplateDefinition> missing = find_template(paths_, "claud");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message,
            "unknown template 'claud'; use one of: claude, codex, debian, minimal, shell, or build a template file "
            "with `zwrm template build FILE`");
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
