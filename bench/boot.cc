// bench/boot: how much time zwrm adds to booting a microVM.
//
// Alternates, round by round, three ways to boot a VM and end it. The first
// is `zwrm run -- true` with the VMM in its jail (the default): CLI,
// supervisor, state, the jail, the guest init mounting the template and
// volume, one exec and the shutdown. The second is the same with
// `--jail off`, so the difference is what the jail adds to start-up. The
// third is a raw QEMU boot of the same kernel and initramfs, whose init
// powers off at once (the probe boot). It prints min, median and max of
// each and their ratios. Alternating spreads background load over all.
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
  const std::vector<std::string> jailed = {zwrm, "run", "--project", "bench", "--", "true"};
  const std::vector<std::string> unjailed = {zwrm, "run", "--project", "bench", "--jail", "off", "--", "true"};

  vmm::VmConfig raw;
  raw.kernel = kernel->bzimage;
  raw.initramfs = initramfs->path;
  raw.cmdline = "zwrm.probe";
  raw.memory_mib = 512;
  raw.accel = accel->accel;
  const std::vector<std::string> raw_boot = vmm->command_line(raw);

  // One untimed run of each creates the volume and warms the page cache.
  for (const auto* command : {&jailed, &unjailed, &raw_boot}) time_command(*command);
  std::vector<double> jailed_times;
  std::vector<double> unjailed_times;
  std::vector<double> raw_times;
  for (int round = 0; round < rounds; ++round) {
    jailed_times.push_back(time_command(jailed));
    unjailed_times.push_back(time_command(unjailed));
    raw_times.push_back(time_command(raw_boot));
  }
  (void)sys::remove_tree(scratch);

  const Summary j = summarize(jailed_times);
  const Summary u = summarize(unjailed_times);
  const Summary r = summarize(raw_times);
  std::printf("bench/boot: %d rounds, alternating; accel %s (%s)\n", rounds, vmm::accel_name(accel->accel),
              accel->reason.c_str());
  std::printf("%-30s %9s %9s %9s\n", "", "min", "median", "max");
  std::printf("%-30s %8.3fs %8.3fs %8.3fs\n", "zwrm run -- true (jailed)", j.min, j.median, j.max);
  std::printf("%-30s %8.3fs %8.3fs %8.3fs\n", "zwrm run --jail off -- true", u.min, u.median, u.max);
  std::printf("%-30s %8.3fs %8.3fs %8.3fs\n", "raw QEMU boot to exit", r.min, r.median, r.max);
  std::printf("%-30s %8.3fs %8.3fs %8.3fs\n", "jail's cost (jailed - off)", j.min - u.min, j.median - u.median,
              j.max - u.max);
  std::printf("%-30s %9.2f %9.2f %9.2f\n", "ratio jailed / off", j.min / u.min, j.median / u.median, j.max / u.max);
  std::printf("%-30s %9.2f %9.2f %9.2f\n", "ratio jailed / raw", j.min / r.min, j.median / r.median, j.max / r.max);
  return 0;
}
