#include "host/images/template_image.h"

#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

#include "host/sys/files.h"
#include "host/sys/process.h"

namespace zwrm::images {
namespace {

constexpr std::string_view kBusyboxTemplate = R"(name = "test-mini"
description = "busybox image for tests"
base = "busybox"
command = ["/bin/sh", "-l"]
)";

// Runs one debugfs request against an image without mounting it and
// returns what it printed.
std::string debugfs(const std::string& image, const std::string& request) {
  Result<sys::ProcessResult> result = sys::run_process({"debugfs", "-R", request, image});
  if (!result) return "debugfs did not start: " + result.error().message;
  return result->output;
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

struct stat stat_or_zero(const std::string& path) {
  struct stat info {};
  ::lstat(path.c_str(), &info);
  return info;
}

class TemplateImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/zwrm-image-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    directory_ = pattern;
    paths_.cache = directory_ + "/cache";
    Result<TemplateDefinition> definition = parse_template_text(kBusyboxTemplate, "test-mini.toml");
    ASSERT_TRUE(definition) << definition.error().message;
    definition_ = *definition;
    options_.progress = [this](std::string_view line) { progress_.emplace_back(line); };
  }
  void TearDown() override { ASSERT_TRUE(sys::remove_tree(directory_)); }

  Result<TemplateImage> build() { return ensure_template_image(paths_, definition_, options_); }

  bool progress_mentions(std::string_view part) const {
    for (const std::string& line : progress_) {
      if (contains(line, part)) return true;
    }
    return false;
  }

  std::string directory_;
  sys::Paths paths_;
  TemplateDefinition definition_;
  ImageBuildOptions options_;
  std::vector<std::string> progress_;
};

TEST_F(TemplateImageTest, BusyboxImageHasShellAndApplets) {
  Result<TemplateImage> image = build();
  ASSERT_TRUE(image) << image.error().message;
  EXPECT_EQ(image->path.rfind(paths_.cache + "/templates/test-mini-" + image->key.substr(0, 16) + "/rootfs.ext4", 0),
            0u);
  EXPECT_GE(image->size_bytes, 32u * 1024 * 1024);
  EXPECT_EQ(image->digest, sys::sha256_file(image->path).value());
  EXPECT_EQ(image->key.size(), 64u);

  const std::string busybox = debugfs(image->path, "stat /bin/busybox");
  EXPECT_TRUE(contains(busybox, "Type: regular")) << busybox;
  EXPECT_TRUE(contains(busybox, "User:     0   Group:     0")) << busybox;
  for (const char* applet : {"/bin/sh", "/bin/ls", "/usr/bin/env"}) {
    const std::string link = debugfs(image->path, std::string("stat ") + applet);
    EXPECT_TRUE(contains(link, "Type: symlink")) << applet << ": " << link;
    EXPECT_TRUE(contains(link, "\"/bin/busybox\"")) << applet << ": " << link;
  }
}

TEST_F(TemplateImageTest, BusyboxImageFollowsGuestConventions) {
  Result<TemplateImage> image = build();
  ASSERT_TRUE(image) << image.error().message;

  const std::string passwd = debugfs(image->path, "cat /etc/passwd");
  EXPECT_TRUE(contains(passwd, "root:x:0:0:root:/root:/bin/sh\n")) << passwd;
  EXPECT_TRUE(contains(passwd, "agent:x:1000:1000:agent:/home/agent:/bin/sh\n")) << passwd;
  EXPECT_TRUE(contains(debugfs(image->path, "cat /etc/group"), "agent:x:1000:\n"));
  const std::string hosts = debugfs(image->path, "cat /etc/hosts");
  EXPECT_TRUE(contains(hosts, "127.0.0.1\tlocalhost")) << hosts;
  EXPECT_TRUE(contains(hosts, "::1\tlocalhost")) << hosts;
  EXPECT_TRUE(contains(debugfs(image->path, "stat /etc/hostname"), "Size: 0"));

  const std::string home = debugfs(image->path, "stat /home/agent");
  EXPECT_TRUE(contains(home, "Type: directory")) << home;
  EXPECT_TRUE(contains(home, "Mode:  0755")) << home;
  EXPECT_TRUE(contains(home, "User:  1000   Group:  1000")) << home;

  const std::vector<std::pair<std::string, std::string>> directories = {
      {"/workspace", "0755"}, {"/tmp", "01777"}, {"/root", "0700"}, {"/proc", "0555"},
      {"/sys", "0555"},       {"/dev", "0755"},  {"/run", "0755"},  {"/", "0755"}};
  for (const auto& [path, mode] : directories) {
    const std::string info = debugfs(image->path, "stat " + path);
    EXPECT_TRUE(contains(info, "Type: directory")) << path << ": " << info;
    EXPECT_TRUE(contains(info, "Mode:  " + mode)) << path << ": " << info;
    EXPECT_TRUE(contains(info, "User:     0   Group:     0")) << path << ": " << info;
  }
}

TEST_F(TemplateImageTest, SecondCallIsCacheHit) {
  Result<TemplateImage> first = build();
  ASSERT_TRUE(first) << first.error().message;
  const struct stat before = stat_or_zero(first->path);
  progress_.clear();

  Result<TemplateImage> second = build();
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->path, first->path);
  EXPECT_EQ(second->digest, first->digest);
  EXPECT_EQ(second->key, first->key);
  const struct stat after = stat_or_zero(second->path);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  EXPECT_TRUE(progress_.empty()) << progress_.front();
}

TEST_F(TemplateImageTest, ForceRebuilds) {
  Result<TemplateImage> first = build();
  ASSERT_TRUE(first) << first.error().message;
  const ino_t first_inode = stat_or_zero(first->path).st_ino;
  progress_.clear();

  options_.force = true;
  Result<TemplateImage> forced = build();
  ASSERT_TRUE(forced) << forced.error().message;
  EXPECT_TRUE(progress_mentions("building template image test-mini"));
  EXPECT_EQ(forced->path, first->path);
  EXPECT_EQ(forced->key, first->key);
  EXPECT_NE(stat_or_zero(forced->path).st_ino, first_inode);
  EXPECT_EQ(forced->digest, sys::sha256_file(forced->path).value());

  options_.force = false;
  Result<TemplateImage> verified = verify_template_image(paths_, definition_, options_);
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_EQ(verified->digest, forced->digest);
}

TEST_F(TemplateImageTest, ChangedDefinitionChangesKey) {
  Result<TemplateImage> first = build();
  ASSERT_TRUE(first) << first.error().message;

  std::string text(kBusyboxTemplate);
  text.replace(text.find("busybox image"), 7, "another");
  Result<TemplateDefinition> changed = parse_template_text(text, "test-mini.toml");
  ASSERT_TRUE(changed) << changed.error().message;
  definition_ = *changed;
  Result<TemplateImage> second = build();
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_NE(second->key, first->key);
  EXPECT_NE(second->path, first->path);
  EXPECT_TRUE(sys::path_exists(first->path));
}

TEST_F(TemplateImageTest, CaBundleIsInstalledAndKeyed) {
  const std::string bundle = directory_ + "/extra.pem";
  const std::string pem = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n";
  ASSERT_TRUE(sys::write_file_atomic(bundle, pem));
  const std::string plain_key = template_image_key(definition_, options_).value();

  options_.ca_bundle = bundle;
  Result<TemplateImage> image = build();
  ASSERT_TRUE(image) << image.error().message;
  EXPECT_NE(image->key, plain_key);
  EXPECT_TRUE(contains(debugfs(image->path, "cat /etc/ssl/certs/ca-certificates.crt"), pem));
}

TEST_F(TemplateImageTest, CaBundleWithoutCertificateRejected) {
  const std::string bundle = directory_ + "/not-pem.txt";
  ASSERT_TRUE(sys::write_file_atomic(bundle, "hello\n"));
  options_.ca_bundle = bundle;
  Result<TemplateImage> image = build();
  ASSERT_FALSE(image);
  EXPECT_TRUE(contains(image.error().message, "contains no PEM certificate")) << image.error().message;
}

TEST_F(TemplateImageTest, VerifyBeforeBuildFails) {
  Result<TemplateImage> image = verify_template_image(paths_, definition_, options_);
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().errno_value, ENOENT);
  EXPECT_TRUE(contains(image.error().message, "`zwrm template build test-mini`")) << image.error().message;
}

TEST_F(TemplateImageTest, VerifyRejectsModifiedImage) {
  Result<TemplateImage> built = build();
  ASSERT_TRUE(built) << built.error().message;
  ASSERT_TRUE(verify_template_image(paths_, definition_, options_));

  // Same size, new content: only the mtime shows the change.
  ASSERT_EQ(::chmod(built->path.c_str(), 0644), 0);
  {
    FILE* file = std::fopen(built->path.c_str(), "r+");
    ASSERT_NE(file, nullptr);
    std::fputs("x", file);
    std::fclose(file);
  }
  Result<TemplateImage> modified = verify_template_image(paths_, definition_, options_);
  ASSERT_FALSE(modified);
  EXPECT_TRUE(contains(modified.error().message, "changed since it was built")) << modified.error().message;
  EXPECT_TRUE(contains(modified.error().message, "`zwrm template build test-mini --force`"))
      << modified.error().message;
}

TEST_F(TemplateImageTest, VerifyRejectsInvalidManifest) {
  Result<TemplateImage> built = build();
  ASSERT_TRUE(built) << built.error().message;
  const std::string manifest = built->path.substr(0, built->path.rfind('/')) + "/manifest.json";
  ASSERT_TRUE(sys::write_file_atomic(manifest, "{\"key\": \"" + built->key + "\", \"size_bytes\": \"big\"}"));

  Result<TemplateImage> invalid = verify_template_image(paths_, definition_, options_);
  ASSERT_FALSE(invalid);
  EXPECT_TRUE(contains(invalid.error().message, "manifest.json is invalid")) << invalid.error().message;
  EXPECT_TRUE(contains(invalid.error().message, "--force")) << invalid.error().message;
}

TEST_F(TemplateImageTest, VerifyRejectsSymlinkedImage) {
  Result<TemplateImage> built = build();
  ASSERT_TRUE(built) << built.error().message;
  const std::string moved = directory_ + "/moved.ext4";
  ASSERT_EQ(::rename(built->path.c_str(), moved.c_str()), 0);
  ASSERT_EQ(::symlink(moved.c_str(), built->path.c_str()), 0);

  Result<TemplateImage> linked = verify_template_image(paths_, definition_, options_);
  ASSERT_FALSE(linked);
  EXPECT_TRUE(contains(linked.error().message, "changed since it was built")) << linked.error().message;

  // ensure_template_image reports the changed entry instead of replacing
  // it; a forced build replaces it.
  Result<TemplateImage> reported = build();
  ASSERT_FALSE(reported);
  EXPECT_TRUE(contains(reported.error().message, "--force")) << reported.error().message;
  ImageBuildOptions forced = options_;
  forced.force = true;
  Result<TemplateImage> rebuilt = ensure_template_image(paths_, definition_, forced);
  ASSERT_TRUE(rebuilt) << rebuilt.error().message;
  EXPECT_TRUE(S_ISREG(stat_or_zero(rebuilt->path).st_mode));
  EXPECT_TRUE(verify_template_image(paths_, definition_, options_));
}

TEST_F(TemplateImageTest, ParallelCallsShareOneBuild) {
  Result<TemplateImage> results[2];
  std::thread first([&] { results[0] = ensure_template_image(paths_, definition_, {}); });
  std::thread second([&] { results[1] = ensure_template_image(paths_, definition_, {}); });
  first.join();
  second.join();

  ASSERT_TRUE(results[0]) << results[0].error().message;
  ASSERT_TRUE(results[1]) << results[1].error().message;
  EXPECT_EQ(results[0]->path, results[1]->path);
  EXPECT_EQ(results[0]->digest, results[1]->digest);
  EXPECT_EQ(results[0]->digest, sys::sha256_file(results[0]->path).value());
}

}  // namespace
}  // namespace zwrm::images
