#include "cli/prepare.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "cli/terminal.h"
#include "common/printable.h"
#include "host/images/initramfs.h"
#include "host/images/kernel.h"
#include "host/images/template.h"
#include "host/images/template_image.h"
#include "host/images/volume.h"
#include "host/sys/files.h"
#include "host/sys/units.h"
#include "host/jail/jail.h"
#include "host/vmm/accel.h"
#include "state/agents.h"
#include "state/audit.h"
#include "state/names.h"
#include "state/policy.h"
#include "host/supervisor/published_ports.h"

namespace zwrm::cli {

namespace {

Status validate_env(const std::vector<std::string>& env) {
  for (const std::string& entry : env) {
    const std::size_t equals = entry.find('=');
    const std::string key = entry.substr(0, equals);
    bool valid = equals != std::string::npos && !key.empty() && !std::isdigit(static_cast<unsigned char>(key[0]));
    for (char c : key) valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!valid) {
      return fail("invalid environment entry '" + printable(entry) +
                  "'; use KEY=VALUE with a KEY of letters, digits and '_' that does not start with a digit");
    }
  }
  return {};
}

// Volumes are sparse, so one larger than the free space is allowed. The guest
// would see write errors once the host's disk fills up, so print a note.
void warn_if_volume_exceeds_free_space(const sys::Paths& paths, const std::string& project, std::uint64_t size) {
  if (sys::path_exists(images::volume_path(paths, project))) return;
  struct statvfs info {};
  if (::statvfs(paths.volumes.c_str(), &info) != 0) return;
  const std::uint64_t free_bytes = static_cast<std::uint64_t>(info.f_bavail) * info.f_frsize;
  if (size <= free_bytes) return;
  report_progress("note: the new volume (" + sys::format_size(size) + ", sparse) is larger than the " +
                  sys::format_size(free_bytes) + " free in " + paths.volumes +
                  "; writes in the guest fail once the host's disk is full");
}

// Picks the template for this run: the agent's, unless the user named
// another one.
Result<std::string> resolve_template(const RunOptions& options, const std::optional<state::Agent>& agent) {
  if (!agent) return options.template_name.empty() ? std::string("minimal") : options.template_name;
  if (options.template_name.empty() || options.template_name == agent->template_name) return agent->template_name;
  if (options.template_must_match) {
    return fail("agent " + agent->name + " uses template " + agent->template_name + ", not " +
                printable(options.template_name) + "; run `zwrm agent " + agent->template_name + " " + agent->name +
                "`, or change it with `zwrm agent set " + agent->name + " --template " +
                printable(options.template_name) + "`");
  }
  return options.template_name;
}

Status record_new_agent(state::Database& db, const state::Agent& agent, bool volume_created) {
  auto inserted = state::insert_agent(db, agent);
  if (!inserted) return tl::unexpected(inserted.error());
  if (!*inserted) return {};  // another zwrm created it meanwhile: keep theirs
  auto appended = state::append_event(db, {agent.name, "", state::EventSource::kHost, "agent.create",
                                           agent_event_data(agent, volume_created)});
  if (!appended) return tl::unexpected(appended.error());
  return {};
}

}  // namespace

void report_progress(std::string_view line) {
  std::fprintf(stderr, "zwrm: %.*s\n", static_cast<int>(line.size()), line.data());
}

nlohmann::json agent_event_data(const state::Agent& agent, bool volume_created) {
  return {{"template", agent.template_name},
          {"cpus", agent.cpus},
          {"memory_mib", agent.memory_mib},
          {"timeout_ms", agent.timeout_ms ? nlohmann::json(*agent.timeout_ms) : nlohmann::json(nullptr)},
          {"idle_timeout_ms", agent.idle_timeout_ms ? nlohmann::json(*agent.idle_timeout_ms) : nlohmann::json(nullptr)},
          {"volume", agent.volume_path},
          {"volume_bytes", agent.volume_bytes},
          {"volume_created", volume_created},
          {"egress_rate", agent.egress_rate.value_or(kDefaultEgressRate)},
          {"ingress_rate", agent.ingress_rate.value_or(kDefaultIngressRate)},
          {"egress_quota", agent.egress_quota.value_or(kDefaultEgressQuota)},
          {"max_connections", agent.max_connections.value_or(kDefaultMaxConnections)}};
}

Status seed_agent_policy(const sys::Paths& paths, state::Database& db, const state::Agent& agent) {
  auto definition = images::find_template(paths, agent.template_name);
  if (!definition) return {};
  auto seeded = state::seed_policy(db, agent.name, definition->policy_allow);
  if (!seeded) return tl::unexpected(seeded.error());
  if (*seeded && !definition->policy_allow.empty()) {
    auto appended = state::append_event(db, {agent.name, "", state::EventSource::kHost, "policy.seed",
                                             {{"template", definition->name}, {"rules", definition->policy_allow}}});
    if (!appended) return tl::unexpected(appended.error());
  }
  return {};
}

Result<state::Agent> new_agent_settings(const sys::Paths& paths, const std::string& name,
                                        const images::TemplateDefinition& definition) {
  state::Agent agent;
  agent.name = name;
  agent.template_name = definition.name;
  agent.volume_path = images::volume_path(paths, name);
  agent.volume_bytes = images::kDefaultVolumeSize;
  const images::TemplateDefaults& defaults = definition.defaults;
  if (defaults.cpus) agent.cpus = std::min(*defaults.cpus, std::max(1u, std::thread::hardware_concurrency()));
  if (defaults.memory_bytes) agent.memory_mib = *defaults.memory_bytes >> 20;
  if (defaults.disk_bytes) agent.volume_bytes = *defaults.disk_bytes;
  if (defaults.timeout) agent.timeout_ms = defaults.timeout->count();
  if (defaults.idle_timeout) agent.idle_timeout_ms = defaults.idle_timeout->count();
  return agent;
}

Result<supervisor::RunRequest> prepare_run(const RunOptions& options, const sys::Paths& paths, state::Database& db) {
  supervisor::RunRequest request;
  if (auto valid = state::validate_project_name(options.project); !valid) return tl::unexpected(valid.error());
  request.project = options.project;

  auto existing = state::find_agent(db, options.project);
  if (!existing) return tl::unexpected(existing.error());
  auto template_name = resolve_template(options, *existing);
  if (!template_name) return tl::unexpected(template_name.error());
  auto definition = images::find_template(paths, *template_name);
  if (!definition) return tl::unexpected(definition.error());
  request.template_name = definition->name;
  request.argv = options.command.empty() ? definition->command : options.command;
  if (request.argv.empty() || request.argv[0].empty()) return fail("no command given; put it after `--`");

  // The agent as stored (or as it will be created), then this run's
  // overrides on a copy.
  state::Agent agent;
  if (*existing) {
    agent = **existing;
  } else {
    auto created = new_agent_settings(paths, options.project, *definition);
    if (!created) return tl::unexpected(created.error());
    agent = std::move(*created);
  }
  state::Agent run_settings = agent;
  if (auto applied = apply_settings(options.overrides, run_settings, /*allow_none=*/false); !applied) {
    return tl::unexpected(applied.error());
  }
  std::uint64_t disk_bytes = 0;  // 0: the existing volume as it is
  if (!options.overrides.disk.empty()) {
    auto disk = parse_disk_bytes(options.overrides.disk);
    if (!disk) return tl::unexpected(disk.error());
    disk_bytes = *disk;
  }
  if (!*existing) {
    if (disk_bytes == 0) disk_bytes = agent.volume_bytes;
    agent.volume_bytes = disk_bytes;
  }
  request.cpus = run_settings.cpus;
  request.memory_mib = run_settings.memory_mib;
  request.timeout_ms = run_settings.timeout_ms;
  request.idle_timeout_ms = run_settings.idle_timeout_ms;
  request.egress_rate = static_cast<std::uint64_t>(run_settings.egress_rate.value_or(kDefaultEgressRate));
  request.ingress_rate = static_cast<std::uint64_t>(run_settings.ingress_rate.value_or(kDefaultIngressRate));
  request.egress_quota = static_cast<std::uint64_t>(run_settings.egress_quota.value_or(kDefaultEgressQuota));
  request.max_connections = static_cast<unsigned>(run_settings.max_connections.value_or(kDefaultMaxConnections));
  for (const std::string& text : options.publish) {
    auto mapping = supervisor::parse_port_mapping(text);
    if (!mapping) return tl::unexpected(mapping.error());
    request.publish.push_back(supervisor::format_port_mapping(*mapping));
  }

  // Environment, lowest precedence first: template, agent, this run.
  if (auto valid = validate_env(options.env); !valid) return tl::unexpected(valid.error());
  for (const auto& [key, value] : definition->env) request.env.push_back(key + "=" + value);
  auto stored_env = state::agent_env(db, options.project);
  if (!stored_env) return tl::unexpected(stored_env.error());
  for (const auto& [key, value] : *stored_env) request.env.push_back(key + "=" + value);
  request.env.insert(request.env.end(), options.env.begin(), options.env.end());

  auto requested_accel = vmm::parse_accel(options.accel);
  if (!requested_accel) return tl::unexpected(requested_accel.error());
  request.root = options.root;
  request.allow_no_limits = options.allow_no_limits;
  auto jail_mode = jail::parse_mode(options.jail);
  if (!jail_mode) return tl::unexpected(jail_mode.error());
  request.jail = jail::mode_name(*jail_mode);
  request.tty = options.tty;
  request.detach = options.detach;
  if (request.detach && !request.timeout_ms) {
    return fail("a detached run needs a deadline, so it cannot run forever unseen; give --timeout, or set the "
                "agent's with `zwrm agent set " + options.project + " --timeout D`");
  }
  if (options.tty) {
    auto size = window_size(STDIN_FILENO).value_or(WindowSize{24, 80});
    request.rows = size.rows;
    request.cols = size.cols;
    const char* term = std::getenv("TERM");
    request.env.insert(request.env.begin(), std::string("TERM=") + (term != nullptr && *term ? term : "xterm-256color"));
  }

  // The run request travels as JSON, whose strings are UTF-8.
  for (std::size_t i = 0; i < request.argv.size(); ++i) {
    if (!is_valid_utf8(request.argv[i])) {
      return fail("argument " + std::to_string(i + 1) + " of the command ('" + printable(request.argv[i]) +
                  "') is not valid UTF-8; zwrm passes commands to the guest as UTF-8 text");
    }
  }
  for (const std::string& entry : request.env) {
    if (!is_valid_utf8(entry)) {
      const std::string key = entry.substr(0, entry.find('='));
      return fail("environment variable " + printable(key) + " is not valid UTF-8; set it again with -e or `zwrm env set " +
                  request.project + " " + printable(key) + "=VALUE`");
    }
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
  // an unusable --accel kvm leaves no volume or agent behind.
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

  if (!*existing) warn_if_volume_exceeds_free_space(paths, request.project, disk_bytes);
  auto volume = images::ensure_volume(paths, request.project, disk_bytes);
  if (!volume) return tl::unexpected(volume.error());
  request.volume = volume->path;
  if (!*existing) {
    agent.volume_path = volume->path;
    agent.volume_bytes = volume->size_bytes;
    if (auto recorded = record_new_agent(db, agent, volume->created); !recorded) return tl::unexpected(recorded.error());
  }
  if (auto seeded = seed_agent_policy(paths, db, agent); !seeded) return tl::unexpected(seeded.error());
  return request;
}

}  // namespace zwrm::cli
