// bench/boot: how much time zwrm adds to booting a microVM.
//
// Alternates, round by round, two ways to boot a VM and end it. The first is
// `zwrm run -- true`: CLI, supervisor, state, the guest init mounting the
// template and volume, one exec and the shutdown. The second is a raw QEMU
// boot of the same kernel and initramfs, whose init powers off at once (the
// probe boot). It prints min, median and max of each and their ratio.
// Alternating spreads background load over both columns.
//
// usage: bench_boot [ROUNDS]   (default 10; needs the kernel and minimal
// template cached, as after ./setup.sh)
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "host/images/initramfs.h"
#include "host/images/kernel.h"
#include "host/sys/files.h"
#include "host/sys/paths.h"
#include "host/sys/process.h"
#include "host/vmm/accel.h"
#include "host/vmm/vmm.h"

namespace {

using namespace zwrm;
using Seconds = std::chrono::duration<double>;

double time_command(const std::vector<std::string>& argv) {
  const auto start = std::chrono::steady_clock::now();
  auto result = sys::run_process(argv);
  const double seconds = Seconds(std::chrono::steady_clock::now() - start).count();
  if (!result || !result->succeeded()) {
    std::fprintf(stderr, "bench/boot: %s failed: %s\n", argv[0].c_str(),
                 result ? result->describe().c_str() : result.error().message.c_str());
    std::exit(1);
  }
  return seconds;
}

struct Summary {
  double min, median, max;
};

Summary summarize(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  const double median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return {values.front(), median, values.back()};
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 10;
  if (rounds < 1) {
    std::fprintf(stderr, "usage: bench_boot [ROUNDS]  (ROUNDS >= 1)\n");
    return 2;
  }

  // zwrm runs get a scratch state directory but share the artifact cache.
  auto paths = sys::Paths::resolve();
  if (!paths) {
    std::fprintf(stderr, "bench/boot: %s\n", paths.error().message.c_str());
    return 1;
  }
  auto kernel = images::ensure_kernel(*paths, [](std::string_view line) {
    std::fprintf(stderr, "bench/boot: %.*s\n", static_cast<int>(line.size()), line.data());
  });
  auto initramfs = images::ensure_initramfs(*paths);
  if (!kernel || !initramfs) {
    std::fprintf(stderr, "bench/boot: %s\n", (!kernel ? kernel.error() : initramfs.error()).message.c_str());
    return 1;
  }
  auto vmm = vmm::make_qemu_microvm();
  auto accel = vmm::choose_accel(vmm::Accel::kAuto, *paths, *vmm, kernel->bzimage, initramfs->path);
  if (!accel) {
    std::fprintf(stderr, "bench/boot: %s\n", accel.error().message.c_str());
    return 1;
  }

  char scratch[] = "/tmp/zwrm-bench-boot.XXXXXX";
  if (::mkdtemp(scratch) == nullptr) return 1;
  ::setenv("ZWRM_CACHE_DIR", paths->cache.c_str(), 1);
  ::setenv("ZWRM_HOME", scratch, 1);
  const std::string zwrm = sys::executable_path().substr(0, sys::executable_path().rfind('/')) + "/zwrm";
  const std::vector<std::string> zwrm_run = {zwrm, "run", "--project", "bench", "--", "true"};

  vmm::VmConfig raw;
  raw.kernel = kernel->bzimage;
  raw.initramfs = initramfs->path;
  raw.cmdline = "zwrm.probe";
  raw.memory_mib = 512;
  raw.accel = accel->accel;
  const std::vector<std::string> raw_boot = vmm->command_line(raw);

  // One untimed run of each creates the volume and warms the page cache.
  time_command(zwrm_run);
  time_command(raw_boot);
  std::vector<double> zwrm_times;
  std::vector<double> raw_times;
  for (int round = 0; round < rounds; ++round) {
    zwrm_times.push_back(time_command(zwrm_run));
    raw_times.push_back(time_command(raw_boot));
  }
  (void)sys::remove_tree(scratch);

  const Summary z = summarize(zwrm_times);
  const Summary r = summarize(raw_times);
  std::printf("bench/boot: %d rounds, alternating; accel %s (%s)\n", rounds, vmm::accel_name(accel->accel),
              accel->reason.c_str());
  std::printf("%-24s %9s %9s %9s\n", "", "min", "median", "max");
  std::printf("%-24s %8.3fs %8.3fs %8.3fs\n", "zwrm run -- true", z.min, z.median, z.max);
  std::printf("%-24s %8.3fs %8.3fs %8.3fs\n", "raw QEMU boot to exit", r.min, r.median, r.max);
  std::printf("%-24s %9.2f %9.2f %9.2f\n", "ratio zwrm / raw", z.min / r.min, z.median / r.median, z.max / r.max);
  return 0;
}
