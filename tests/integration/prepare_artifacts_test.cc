// Setup tests (ctest fixtures) that build the artifacts every integration
// test needs into the shared cache, so the tests themselves only boot VMs.
// Each step is a no-op when the cache already has the artifact.
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

constexpr Milliseconds kBuildTimeout = 20min;

TEST(PrepareArtifacts, KernelAndMinimalTemplate) {
  TestHome home;
  const Outcome kernel = home.zwrm({"kernel", "build"}, {.timeout = kBuildTimeout});
  ASSERT_EQ(kernel.exit_code, 0) << kernel;

  const Outcome image = home.zwrm({"template", "build", "minimal"}, {.timeout = kBuildTimeout});
  ASSERT_EQ(image.exit_code, 0) << image;

  // One boot writes the initramfs of this build's guest init and the KVM
  // probe verdict, so parallel tests neither race to create them nor see
  // the one-time "KVM is not usable" notice.
  const Outcome boot = home.zwrm({"run", "--memory", "256M", "--", "true"});
  ASSERT_EQ(boot.exit_code, 0) << boot;
}

TEST(PrepareArtifacts, DebianTemplate) {
  TestHome home;
  const Outcome image = home.zwrm({"template", "build", "debian"}, {.timeout = kBuildTimeout});
  ASSERT_EQ(image.exit_code, 0) << image;
}

// Claude Code and the Codex CLI come from the npm registry. Each image took
// 1 to 3 minutes to build on a 2-core machine, and the limits allow for a
// slower mirror or registry.
TEST(PrepareArtifacts, AgentTemplates) {
  TestHome home;
  for (const char* name : {"claude", "codex"}) {
    const Outcome image = home.zwrm({"template", "build", name}, {.timeout = 14min});
    ASSERT_EQ(image.exit_code, 0) << image;
  }
}

}  // namespace
}  // namespace zwrm::integration
