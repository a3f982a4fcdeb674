#include "host/images/template_build_script.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "host/sys/files.h"
#include "host/sys/process.h"

namespace zwrm::images {
namespace {

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

TemplateDefinition definition_with(std::vector<std::string> npm, std::vector<std::string> run) {
  TemplateDefinition definition;
  definition.name = "t";
  definition.base = "debian";
  definition.npm = std::move(npm);
  definition.run = std::move(run);
  return definition;
}

TEST(ShellQuote, QuotesEveryCharacter) {
  EXPECT_EQ(shell_quote("plain"), "'plain'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote("$(id) `id` \"x\" \\n"), "'$(id) `id` \"x\" \\n'");
  EXPECT_EQ(shell_quote(""), "''");
}

TEST(SummarizeCommand, FirstLineCutAndEscaped) {
  EXPECT_EQ(summarize_command("make install"), "make install");
  EXPECT_EQ(summarize_command("\n  set -e\n  make\n"), "set -e ...");
  EXPECT_EQ(summarize_command("echo done\n"), "echo done");
  EXPECT_EQ(summarize_command(std::string(80, 'a')), std::string(72, 'a') + " ...");
  EXPECT_EQ(summarize_command("printf '\x1b[2J'"), "printf '\\x1b[2J'");
}

TEST(BuildScript, NeededOnlyForNpmOrRun) {
  EXPECT_FALSE(needs_build_script(definition_with({}, {})));
  EXPECT_TRUE(needs_build_script(definition_with({"cowsay"}, {})));
  EXPECT_TRUE(needs_build_script(definition_with({}, {"true"})));
}

TEST(BuildScript, NpmStepInstallsGloballyWithTemporaryCache) {
  const std::string script = build_script(definition_with({"@openai/codex", "cowsay@1.6.0"}, {}), {});
  EXPECT_TRUE(contains(script, "in_root npm install -g --no-fund --no-audit --no-update-notifier --cache "
                               "\"$work/npm-cache\" '@openai/codex' 'cowsay@1.6.0' || status=$?"))
      << script;
  EXPECT_TRUE(contains(script, "step 'npm install -g @openai/codex cowsay@1.6.0'")) << script;
  EXPECT_TRUE(contains(script, "trap 'rm -rf \"$root$work\" \"$root/root/.npm\"' EXIT")) << script;
  EXPECT_FALSE(contains(script, "ca.crt")) << script;
}

TEST(BuildScript, BuildCaNamedByToolVariables) {
  BuildScriptOptions options;
  options.with_build_ca = true;
  options.extra_env = {"https_proxy=http://proxy.example:3128"};
  const std::string script = build_script(definition_with({"cowsay"}, {}), options);
  for (const char* variable : {"npm_config_cafile", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "CURL_CA_BUNDLE",
                               "GIT_SSL_CAINFO", "PIP_CERT", "REQUESTS_CA_BUNDLE"}) {
    EXPECT_TRUE(contains(script, "'" + std::string(variable) + "=/tmp/zwrm-build/ca.crt'")) << variable;
  }
  EXPECT_TRUE(contains(script, "cp \"$ZWRM_BUILD_CA\" \"$root$work/ca.crt\"")) << script;
  EXPECT_TRUE(contains(script, "'https_proxy=http://proxy.example:3128'")) << script;
}

// Stages a root tree with the host's static busybox as sh, cat, sleep and
// env, enough for the script's run steps.
class BuildScriptRun : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "chroot and unshare need root";
    }
    const std::string busybox = sys::find_program("busybox");
    if (busybox.empty()) {
      GTEST_SKIP() << "busybox is not installed";
    }
    char pattern[] = "/tmp/zwrm-script-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    directory_ = pattern;
    root_ = directory_ + "/root";
    for (const char* path : {"/bin", "/usr/bin", "/tmp", "/root", "/dev"}) {
      ASSERT_TRUE(sys::make_directories(root_ + path));
    }
    // The shell opens /dev/null for background jobs.
    ASSERT_EQ(::mknod((root_ + "/dev/null").c_str(), S_IFCHR | 0666, ::makedev(1, 3)), 0);
    std::filesystem::copy_file(busybox, root_ + "/bin/busybox");
    for (const char* applet : {"/bin/sh", "/bin/cat", "/bin/sleep", "/usr/bin/env"}) {
      std::filesystem::create_symlink("/bin/busybox", root_ + applet);
    }
  }
  void TearDown() override {
    if (!directory_.empty()) {
      ASSERT_TRUE(sys::remove_tree(directory_));
    }
  }

  sys::ProcessResult run(const TemplateDefinition& definition, const BuildScriptOptions& options,
                         std::vector<std::string> extra_env = {}) {
    const std::string script = directory_ + "/build.sh";
    EXPECT_TRUE(sys::write_file_atomic(script, build_script(definition, options)));
    sys::ProcessOptions process;
    process.extra_env = std::move(extra_env);
    process.timeout = std::chrono::seconds(60);
    Result<sys::ProcessResult> result = sys::run_process({"sh", script, root_}, process);
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : sys::ProcessResult{};
  }

  std::string directory_;
  std::string root_;
};

TEST_F(BuildScriptRun, RunsCommandsInOrderUntilOneFails) {
  const sys::ProcessResult result =
      run(definition_with({}, {"echo \"it's here\" > /out", "exit 3", "echo never > /never"}), {});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_TRUE(contains(result.output, "zwrm-step: run 1 of 3: echo \"it's here\" > /out\n")) << result.output;
  EXPECT_TRUE(contains(result.output, "zwrm-step: run 2 of 3: exit 3\n")) << result.output;
  EXPECT_TRUE(contains(result.output, "zwrm-failed: run command 2 of 3 (exit 3) exited with status 3\n"))
      << result.output;
  EXPECT_FALSE(contains(result.output, "run 3 of 3")) << result.output;
  EXPECT_EQ(sys::read_file(root_ + "/out").value_or(""), "it's here\n");
  EXPECT_FALSE(sys::path_exists(root_ + "/never"));
  EXPECT_FALSE(sys::path_exists(root_ + "/tmp/zwrm-build"));
}

TEST_F(BuildScriptRun, StepsGetFixedEnvironmentAndBuildCa) {
  ASSERT_TRUE(sys::write_file_atomic(directory_ + "/ca.pem", "TEST CA\n"));
  BuildScriptOptions options;
  options.with_build_ca = true;
  options.extra_env = {"https_proxy=http://proxy.example:3128"};
  const sys::ProcessResult result =
      run(definition_with({}, {"env > /env", "cat \"$NODE_EXTRA_CA_CERTS\" > /ca-seen"}), options,
          {"ZWRM_BUILD_CA=" + directory_ + "/ca.pem", "ZWRM_TEST_HOST_ONLY=leaked"});
  ASSERT_EQ(result.exit_code, 0) << result.output;

  const std::string env = sys::read_file(root_ + "/env").value_or("");
  EXPECT_TRUE(contains(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")) << env;
  EXPECT_TRUE(contains(env, "HOME=/root\n")) << env;
  EXPECT_TRUE(contains(env, "DEBIAN_FRONTEND=noninteractive\n")) << env;
  EXPECT_TRUE(contains(env, "https_proxy=http://proxy.example:3128\n")) << env;
  EXPECT_TRUE(contains(env, "SSL_CERT_FILE=/tmp/zwrm-build/ca.crt\n")) << env;
  EXPECT_FALSE(contains(env, "ZWRM_TEST_HOST_ONLY")) << env;
  EXPECT_EQ(sys::read_file(root_ + "/ca-seen").value_or(""), "TEST CA\n");
  EXPECT_FALSE(sys::path_exists(root_ + "/tmp/zwrm-build"));
}

TEST_F(BuildScriptRun, BackgroundProcessesEndWithTheirStep) {
  const sys::ProcessResult result =
      run(definition_with({}, {"/bin/sleep 313 & sleep 0.1; kill -0 $! && echo alive > /alive"}), {});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  ASSERT_TRUE(sys::path_exists(root_ + "/alive"));
  // The step's PID namespace ends with the step, so its background sleep is
  // gone without anyone waiting for it.
  bool found = false;
  for (const auto& process : std::filesystem::directory_iterator("/proc")) {
    const std::string cmdline = sys::read_file(process.path().string() + "/cmdline").value_or("");
    if (cmdline == std::string("sleep\0" "313\0", 10)) found = true;
  }
  EXPECT_FALSE(found);
}

}  // namespace
}  // namespace zwrm::images
