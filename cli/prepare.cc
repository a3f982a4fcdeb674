#include "cli/prepare.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "cli/terminal.h"
#include "host/images/initramfs.h"
#include "host/images/kernel.h"
#include "host/images/template.h"
#include "host/images/template_image.h"
#include "host/images/volume.h"
#include "host/sys/files.h"
#include "host/sys/units.h"
#include "host/vmm/accel.h"
#include "state/audit.h"
#include "state/names.h"
#include "state/agents.h"

namespace zwrm::cli {

namespace {

// Guests below this cannot hold the kernel, the init and a shell with room
// to work; the template's own needs may be higher.
constexpr std::uint64_t kMinimumMemory = 64ull << 20;
constexpr unsigned kMaximumCpus = 64;

Result<unsigned> parse_cpus(const std::string& text) {
  const unsigned host_cpus = std::max(1u, std::thread::hardware_concurrency());
  const unsigned limit = std::min(host_cpus, kMaximumCpus);
  // Digits only: strtoul alone would also take " 1", "+1" and "-1".
  const bool digits = !text.empty() && text.size() <= 4 && text.find_first_not_of("0123456789") == std::string::npos;
  const unsigned long value = digits ? std::stoul(text) : 0;
  if (value < 1 || value > limit) {
    return fail("invalid --cpus '" + state::printable(text) + "'; use a whole number from 1 to " +
                std::to_string(limit) + " (this host has " + std::to_string(host_cpus) + " CPUs)");
  }
  return static_cast<unsigned>(value);
}

Result<std::uint64_t> parse_memory_mib(const std::string& text) {
  auto bytes = sys::parse_size(text);
  if (!bytes) return fail("invalid --memory: " + bytes.error().message);
  const std::uint64_t host_memory =
      static_cast<std::uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(::sysconf(_SC_PAGE_SIZE));
  if (*bytes < kMinimumMemory || *bytes > host_memory) {
    return fail("invalid --memory '" + state::printable(text) + "'; use from " + sys::format_size(kMinimumMemory) +
                " up to the host's " + sys::format_size(host_memory) + " with a unit, such as 512M or 2G");
  }
  return *bytes >> 20;
}

Status validate_env(const std::vector<std::string>& env) {
  for (const std::string& entry : env) {
    const std::size_t equals = entry.find('=');
    const std::string key = entry.substr(0, equals);
    bool valid = equals != std::string::npos && !key.empty() && !std::isdigit(static_cast<unsigned char>(key[0]));
    for (char c : key) valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!valid) {
      return fail("invalid environment entry '" + state::printable(entry) +
                  "'; use KEY=VALUE with a KEY of letters, digits and '_' that does not start with a digit");
    }
  }
  return {};
}

Status record_project(const sys::Paths& paths, const std::string& project, const std::string& template_name,
                      const images::Volume& volume) {
  auto db = state::Database::open(paths.database);
  if (!db) return tl::unexpected(db.error());
  state::Agent agent;
  agent.name = project;
  agent.template_name = template_name;
  agent.volume_path = volume.path;
  agent.volume_bytes = volume.size_bytes;
  auto inserted = state::insert_agent(**db, agent);
  if (!inserted) return tl::unexpected(inserted.error());
  if (*inserted) {
    auto appended = state::append_event(**db, {project, "", state::EventSource::kHost, "agent.create",
                                               {{"template", template_name},
                                                {"volume", volume.path},
                                                {"volume_bytes", volume.size_bytes},
                                                {"volume_created", volume.created}}});
    if (!appended) return tl::unexpected(appended.error());
  }
  return {};
}

// Volumes are sparse, so one larger than the free space is allowed, but the
// guest would see write errors once the host's disk fills up: say so.
void warn_if_volume_exceeds_free_space(const sys::Paths& paths, const std::string& project, std::uint64_t size) {
  if (sys::path_exists(images::volume_path(paths, project))) return;
  if (size == 0) size = images::kDefaultVolumeSize;
  struct statvfs info {};
  if (::statvfs(paths.volumes.c_str(), &info) != 0) return;
  const std::uint64_t free_bytes = static_cast<std::uint64_t>(info.f_bavail) * info.f_frsize;
  if (size <= free_bytes) return;
  report_progress("note: the new volume (" + sys::format_size(size) + ", sparse) is larger than the " +
                  sys::format_size(free_bytes) + " free in " + paths.volumes +
                  "; writes in the guest fail once the host's disk is full");
}

}  // namespace

void report_progress(std::string_view line) {
  std::fprintf(stderr, "zwrm: %.*s\n", static_cast<int>(line.size()), line.data());
}

Result<supervisor::RunRequest> prepare_run(const RunOptions& options, const sys::Paths& paths) {
  supervisor::RunRequest request;
  if (auto valid = state::validate_project_name(options.project); !valid) return tl::unexpected(valid.error());
  request.project = options.project;

  auto definition = images::find_template(paths, options.template_name);
  if (!definition) return tl::unexpected(definition.error());
  request.template_name = definition->name;
  request.argv = options.command.empty() ? definition->command : options.command;
  if (request.argv.empty() || request.argv[0].empty()) return fail("no command given; put it after `--`");

  if (auto valid = validate_env(options.env); !valid) return tl::unexpected(valid.error());
  for (const auto& [key, value] : definition->env) request.env.push_back(key + "=" + value);
  request.env.insert(request.env.end(), options.env.begin(), options.env.end());

  auto cpus = parse_cpus(options.cpus);
  if (!cpus) return tl::unexpected(cpus.error());
  request.cpus = *cpus;
  auto memory = parse_memory_mib(options.memory);
  if (!memory) return tl::unexpected(memory.error());
  request.memory_mib = *memory;
  std::uint64_t disk_bytes = 0;
  if (!options.disk.empty()) {
    auto disk = sys::parse_size(options.disk);
    if (!disk) return fail("invalid --disk: " + disk.error().message);
    if (*disk < images::kMinimumVolumeSize) {
      return fail("invalid --disk '" + state::printable(options.disk) + "': disk too small; use at least " +
                  sys::format_size(images::kMinimumVolumeSize));
    }
    disk_bytes = *disk;
  }
  if (!options.timeout.empty()) {
    auto timeout = sys::parse_duration(options.timeout);
    if (!timeout) return fail("invalid --timeout: " + timeout.error().message);
    if (timeout->count() <= 0) return fail("invalid --timeout '" + options.timeout + "'; it must be longer than zero");
    request.timeout_ms = timeout->count();
  }
  auto requested_accel = vmm::parse_accel(options.accel);
  if (!requested_accel) return tl::unexpected(requested_accel.error());
  request.root = options.root;
  request.tty = options.tty;
  if (options.tty) {
    auto size = window_size(STDIN_FILENO).value_or(WindowSize{24, 80});
    request.rows = size.rows;
    request.cols = size.cols;
    const char* term = std::getenv("TERM");
    request.env.insert(request.env.begin(), std::string("TERM=") + (term != nullptr && *term ? term : "xterm-256color"));
  }

  // Checked before anything is built or created; the artifact paths added
  // below are short next to the 64 KiB limit.
  if (auto fits = supervisor::check_request_size(request); !fits) return tl::unexpected(fits.error());

  auto kernel = images::ensure_kernel(paths, report_progress);
  if (!kernel) return tl::unexpected(kernel.error());
  request.kernel = {kernel->bzimage, kernel->digest};
  auto initramfs = images::ensure_initramfs(paths);
  if (!initramfs) return tl::unexpected(initramfs.error());
  request.initramfs = {initramfs->path, initramfs->init_digest};

  // The accelerator is settled before anything persistent is created, so
  // an unusable --accel kvm leaves no volume or project behind.
  auto vmm = vmm::make_qemu_microvm();
  auto accel = vmm::choose_accel(*requested_accel, paths, *vmm, kernel->bzimage, initramfs->path);
  if (!accel) return tl::unexpected(accel.error());
  if (accel->newly_probed && accel->accel == vmm::Accel::kKvm) {
    report_progress("using KVM hardware virtualization: " + accel->reason);
  } else if (accel->newly_probed && *requested_accel == vmm::Accel::kAuto) {
    report_progress("KVM is not usable here: " + accel->reason +
                    ". Running VMs under TCG software emulation: each run still gets its own kernel, "
                    "but it is slower and a weaker isolation boundary than hardware virtualization.");
  }
  request.accel = vmm::accel_name(accel->accel);
  request.accel_reason = accel->reason;

  images::ImageBuildOptions build;
  build.progress = report_progress;
  build.ca_bundle = images::default_ca_bundle();
  auto image = images::ensure_template_image(paths, *definition, build);
  if (!image) return tl::unexpected(image.error());
  request.image = {image->path, image->digest};

  warn_if_volume_exceeds_free_space(paths, request.project, disk_bytes);
  auto volume = images::ensure_volume(paths, request.project, disk_bytes);
  if (!volume) return tl::unexpected(volume.error());
  request.volume = volume->path;
  if (auto recorded = record_project(paths, request.project, request.template_name, *volume); !recorded) {
    return tl::unexpected(recorded.error());
  }

  return request;
}

}  // namespace zwrm::cli
