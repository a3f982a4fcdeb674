// libFuzzer target for the parsers of /proc/self/mountinfo and
// /proc/self/cgroup. The kernel writes both, but mount points and cgroup
// paths contain names that any process allowed to mount or create cgroups
// chooses. The input is the mountinfo text, a NUL byte, then the cgroup
// text. Any input must give a layout or an Error; a crash, a sanitizer
// report or a hang fails the fuzz run.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "host/cgroup/layout.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t separator = input.find('\0');
  const std::string_view mountinfo = input.substr(0, separator);
  const std::string_view proc_cgroup =
      separator == std::string_view::npos ? std::string_view() : input.substr(separator + 1);

  auto layout = zwrm::cgroup::detect_layout(mountinfo, proc_cgroup);
  if (layout) {
    std::vector<std::string> directories;
    for (const auto& hierarchy : layout->hierarchies) directories.push_back(hierarchy.current + "/zwrm/run");
    (void)zwrm::cgroup::brace_paths(directories);
  }
  return 0;
}
