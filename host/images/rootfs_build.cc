#include "host/images/rootfs_build.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <set>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/printable.h"
#include "common/unique_fd.h"
#include "host/images/template_build_script.h"
#include "host/sys/files.h"
#include "host/sys/process.h"
#include "host/sys/units.h"

namespace zwrm::images {

namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr std::uint64_t kMinImageBytes = 32 * kMiB;
constexpr std::uint64_t kBlockBytes = 4096;
constexpr std::uint64_t kInodeBytes = 256;
constexpr std::string_view kDefaultDebianMirror = "http://deb.debian.org/debian";
constexpr auto kDebianBuildTimeout = std::chrono::hours(1);
constexpr auto kHelperTimeout = std::chrono::minutes(10);
constexpr uid_t kAgentUid = 1000;

// The directories every guest root has, with the mode the guest init and
// the agent expect.
struct GuestDirectory {
  std::string_view path;
  mode_t mode;
  uid_t owner;  // the group id equals the user id
};
constexpr GuestDirectory kGuestDirectories[] = {
    {"proc", 0555, 0},                // mount point for procfs
    {"sys", 0555, 0},                 // mount point for sysfs
    {"dev", 0755, 0},                 // mount point for devtmpfs
    {"run", 0755, 0},                 // tmpfs for runtime files
    {"tmp", 01777, 0},                // shared scratch space, sticky
    {"root", 0700, 0},                // root's home, private
    {"home", 0755, 0},
    {"home/agent", 0755, kAgentUid},  // the unprivileged user's home
    {"workspace", 0755, 0},           // mount point for the agent's volume
};

constexpr std::string_view kHosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
constexpr std::string_view kResolvConf =
    "# zwrm guests have no DNS resolver: programs reach the network through HTTP_PROXY.\n";

// Every write below goes to a path inside the staging directory whose
// components were checked with lstat, so that a symlink in the tree (Debian
// packages ship many, some absolute) cannot redirect a write to the host.

std::string parent_of(std::string_view relative) {
  const std::size_t slash = relative.rfind('/');
  return slash == std::string_view::npos ? std::string() : std::string(relative.substr(0, slash));
}

// Creates root/relative and its missing parents (mode 0755) without
// following symlinks. Existing directories keep their mode.
Status create_tree_directories(const std::string& root, std::string_view relative) {
  std::string path = root;
  std::size_t start = 0;
  while (start < relative.size()) {
    std::size_t end = relative.find('/', start);
    if (end == std::string_view::npos) end = relative.size();
    path += "/";
    path += relative.substr(start, end - start);
    start = end + 1;

    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return fail_errno("cannot create directory " + path);
    struct stat info {};
    if (::lstat(path.c_str(), &info) != 0) return fail_errno("cannot inspect " + path);
    if (!S_ISDIR(info.st_mode)) {
      return fail("cannot create directory " + path + ": a symlink or file is in the way in the staged root");
    }
  }
  return {};
}

// Gives a staged directory its mode and owner. Without root the owner stays
// the builder's, and reset_owners_without_root fixes it in the image.
Status set_directory_attributes(const std::string& root, const GuestDirectory& directory) {
  const std::string path = root + "/" + std::string(directory.path);
  if (Status created = create_tree_directories(root, directory.path); !created) return created;
  if (::chmod(path.c_str(), directory.mode) != 0) return fail_errno("cannot set the mode of " + path);
  if (::geteuid() == 0 && ::lchown(path.c_str(), directory.owner, directory.owner) != 0) {
    return fail_errno("cannot set the owner of " + path);
  }
  return {};
}

Status write_tree_file(const std::string& root, std::string_view relative, std::string_view content,
                       mode_t mode = 0644) {
  if (Status parent = create_tree_directories(root, parent_of(relative)); !parent) return parent;
  // write_file_atomic renames over the final component, which replaces a
  // symlink there instead of following it.
  return sys::write_file_atomic(root + "/" + std::string(relative), content, mode);
}

Status add_guest_conventions(const std::string& root) {
  for (const GuestDirectory& directory : kGuestDirectories) {
    if (Status set = set_directory_attributes(root, directory); !set) return set;
  }
  if (Status hosts = write_tree_file(root, "etc/hosts", kHosts); !hosts) return hosts;
  if (Status hostname = write_tree_file(root, "etc/hostname", ""); !hostname) return hostname;
  return write_tree_file(root, "etc/resolv.conf", kResolvConf);
}

Status check_agent_account(const std::string& root) {
  Result<std::string> passwd = sys::read_file(root + "/etc/passwd");
  if (!passwd) return tl::unexpected(with_context(passwd.error(), "cannot check the guest's user accounts"));
  if (passwd->find("\nagent:x:1000:1000:") == std::string::npos) {
    return fail(root + "/etc/passwd has no user agent with uid 1000 and gid 1000; the useradd step of the build failed");
  }
  return {};
}

// Returns whether an applet path from `busybox --list-full` is a plain
// relative path such as usr/bin/env.
bool is_safe_applet_path(std::string_view path) {
  if (path.empty() || path.front() == '/' || path.back() == '/') return false;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view component = path.substr(start, end - start);
    if (component.empty() || component == "." || component == "..") return false;
    start = end + 1;
  }
  return true;
}

Status stage_busybox(const std::string& root, const BuildInputs& inputs, const ImageBuildOptions& options) {
  if (Status written = write_tree_file(root, "bin/busybox", inputs.busybox, 0755); !written) return written;

  // The staged copy lists its own applets, so the links match the binary in
  // the image even if the host's busybox changed since it was read.
  sys::ProcessOptions process;
  process.timeout = kHelperTimeout;
  Result<sys::ProcessResult> listed = sys::run_process({root + "/bin/busybox", "--list-full"}, process);
  if (!listed) return tl::unexpected(listed.error());
  if (!listed->succeeded()) return fail("busybox --list-full " + listed->describe());

  std::size_t links = 0;
  std::size_t start = 0;
  const std::string& output = listed->output;
  while (start < output.size()) {
    std::size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    const std::string applet = output.substr(start, end - start);
    start = end + 1;
    if (applet == "bin/busybox" || applet.empty()) continue;
    if (!is_safe_applet_path(applet)) return fail("busybox --list-full printed an unexpected path '" + applet + "'");

    if (Status parent = create_tree_directories(root, parent_of(applet)); !parent) return parent;
    const std::string link = root + "/" + applet;
    if (::symlink("/bin/busybox", link.c_str()) != 0 && errno != EEXIST) return fail_errno("cannot create " + link);
    ++links;
  }
  report_progress(options, "staged " + inputs.busybox_path + " with " + std::to_string(links) + " applet links");

  const std::string accounts_passwd =
      "root:x:0:0:root:/root:/bin/sh\n"
      "agent:x:1000:1000:agent:/home/agent:/bin/sh\n"
      "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
  const std::string accounts_group = "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n";
  if (Status passwd = write_tree_file(root, "etc/passwd", accounts_passwd); !passwd) return passwd;
  if (Status group = write_tree_file(root, "etc/group", accounts_group); !group) return group;
  if (inputs.ca_bundle.empty()) return {};
  return write_tree_file(root, "etc/ssl/certs/ca-certificates.crt", inputs.ca_bundle);
}

std::string debian_mirror() {
  const char* mirror = std::getenv("ZWRM_DEBIAN_MIRROR");
  return mirror != nullptr && *mirror != '\0' ? std::string(mirror) : std::string(kDefaultDebianMirror);
}

// Adds package to packages unless it is listed.
void add_package(std::vector<std::string>& packages, const std::string& package) {
  if (std::find(packages.begin(), packages.end(), package) == packages.end()) packages.push_back(package);
}

std::vector<std::string> mmdebstrap_command(const TemplateDefinition& definition, const std::string& root,
                                            bool with_ca_bundle) {
  std::vector<std::string> packages = definition.packages;
  // update-ca-certificates, which installs the extra CA, comes with this package.
  if (with_ca_bundle) add_package(packages, "ca-certificates");
  if (!definition.npm.empty()) {
    add_package(packages, "nodejs");
    add_package(packages, "npm");
  }

  std::vector<std::string> command = {"mmdebstrap", "--variant=minbase", "--mode=root"};
  if (!packages.empty()) {
    std::string include = "--include=";
    for (std::size_t i = 0; i < packages.size(); ++i) include += (i == 0 ? "" : ",") + packages[i];
    command.push_back(include);
  }
  // Manuals, info pages, translations and documentation other than the
  // copyright files are of no use to an agent. They took 62 of 275 MiB in
  // the built-in debian template. The rule stays in the image's dpkg configuration, so packages
  // installed later in the guest skip them too.
  for (const char* option : {"path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*",
                             "path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias",
                             "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright"}) {
    command.push_back(std::string("--dpkgopt=") + option);
  }
  // Hooks run under sh with the staged root as $1. Nothing from the
  // definition is put into them: package names travel in --include, and
  // the build script, whose values are quoted, is a file named by the
  // environment.
  command.push_back("--customize-hook=chroot \"$1\" useradd --create-home --uid 1000 --user-group "
                    "--shell /bin/bash agent");
  if (with_ca_bundle) {
    command.push_back("--customize-hook=cp \"$ZWRM_CA_BUNDLE\" \"$1/usr/local/share/ca-certificates/zwrm-extra.crt\""
                      " && chroot \"$1\" update-ca-certificates");
  }
  if (needs_build_script(definition)) command.push_back("--customize-hook=sh \"$ZWRM_BUILD_SCRIPT\" \"$1\"");
  command.push_back(definition.suite);
  command.push_back(root);
  command.push_back(debian_mirror());
  return command;
}

// Receives mmdebstrap's output: writes every line to the build log, shows
// mmdebstrap's messages and the build script's steps as progress lines, and
// keeps the last lines and the failed step for the error message.
class BuildOutput {
 public:
  BuildOutput(const ImageBuildOptions& options, int log_fd) : options_(options), log_fd_(log_fd) {}

  void add_line(std::string_view line) {
    write_to_log(line);
    if (line.starts_with(kStepMarker)) {
      report_progress(options_, std::string(line.substr(kStepMarker.size())));
      tail_.clear();
      return;
    }
    if (line.starts_with(kFailureMarker)) {
      failure_ = line.substr(kFailureMarker.size());
      failed_step_tail_ = tail_;
      return;
    }
    tail_.emplace_back(line);
    if (tail_.size() > kTailLines) tail_.pop_front();
    if (line.starts_with("I: ") || line.starts_with("W: ") || line.starts_with("E: ")) {
      // Hook lines go on with the whole shell command, so they are cut before it.
      report_progress(options_, "mmdebstrap: " + std::string(line.substr(0, line.find(" in shell: "))));
    }
  }

  // Shows the last lines of the failed step's output, or of all output when
  // no step failed, which hold the error of the program that failed.
  void report_tail() const {
    for (const std::string& line : failure_.empty() ? tail_ : failed_step_tail_) {
      report_progress(options_, "| " + printable(line));
    }
  }

  // The failed step and its exit status, as the build script named them.
  // Empty when no step failed.
  const std::string& failure() const { return failure_; }

 private:
  static constexpr std::size_t kTailLines = 15;

  void write_to_log(std::string_view line) {
    if (log_fd_ < 0) return;
    const std::string text = std::string(line) + "\n";
    // A log that cannot be written loses lines, never the build.
    if (::write(log_fd_, text.data(), text.size()) < 0) log_fd_ = -1;
  }

  const ImageBuildOptions& options_;
  int log_fd_;
  std::deque<std::string> tail_;  // since the latest step began
  std::deque<std::string> failed_step_tail_;
  std::string failure_;
};

// Writes the CA bundle the build steps trust: the host's bundle and the
// one for the image, if any. Returns whether there is one.
Result<bool> write_build_ca(const std::string& path, const BuildInputs& inputs, const ImageBuildOptions& options) {
  std::string bundle;
  if (!options.build_ca_bundle.empty() && sys::path_exists(options.build_ca_bundle)) {
    Result<std::string> host = sys::read_file(options.build_ca_bundle);
    if (!host) return tl::unexpected(with_context(host.error(), "cannot read the host's CA bundle"));
    bundle = std::move(*host) + "\n";
  }
  bundle += inputs.ca_bundle;
  if (bundle.empty()) return false;
  if (Status written = sys::write_file_atomic(path, bundle, 0644); !written) return tl::unexpected(written.error());
  return true;
}

// Writes the build script and its CA bundle into build_directory and adds
// the variables that name them to process. The caller deletes both files.
Status prepare_build_script(const std::string& build_directory, const TemplateDefinition& definition,
                            const BuildInputs& inputs, const ImageBuildOptions& options,
                            sys::ProcessOptions& process) {
  BuildScriptOptions script;
  script.extra_env = proxy_environment();
  Result<bool> with_ca = write_build_ca(build_directory + "/build-ca.crt", inputs, options);
  if (!with_ca) return tl::unexpected(with_ca.error());
  script.with_build_ca = *with_ca;
  if (*with_ca) process.extra_env.push_back(std::string(kBuildCaVariable) + "=" + build_directory + "/build-ca.crt");

  const std::string path = build_directory + "/build-script.sh";
  if (Status written = sys::write_file_atomic(path, build_script(definition, script), 0600); !written) return written;
  process.extra_env.push_back("ZWRM_BUILD_SCRIPT=" + path);
  return {};
}

Status describe_mmdebstrap_failure(const sys::ProcessResult& result, const BuildOutput& output,
                                   const std::string& mirror, const TemplateDefinition& definition,
                                   const std::string& log_path) {
  output.report_tail();
  const std::string log = "; the build log " + log_path + " has the whole output";
  if (!output.failure().empty()) return fail(printable(output.failure()) + " (its last output lines are above)" + log);
  return fail("mmdebstrap " + result.describe() + "; check that the mirror " + mirror +
              " is reachable (set ZWRM_DEBIAN_MIRROR to use another) and that the packages exist in " +
              definition.suite + log);
}

Status stage_debian(const std::string& build_directory, const std::string& root, const TemplateDefinition& definition,
                    const BuildInputs& inputs, const ImageBuildOptions& options, const std::string& log_path) {
  // NOTE: non-root builds would need mmdebstrap's unshare mode with
  // subordinate ids and a tarball, which this builder does not implement.
  if (::geteuid() != 0) {
    return fail("building the debian template image " + definition.name +
                " needs root for mmdebstrap; run it as root or use a busybox template");
  }
  UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!log) return fail_errno("cannot create the build log " + log_path);
  BuildOutput output(options, log.get());
  sys::ProcessOptions process;
  process.timeout = kDebianBuildTimeout;
  process.on_line = [&output](std::string_view line) { output.add_line(line); };

  const bool with_ca_bundle = !inputs.ca_bundle.empty();
  if (with_ca_bundle) {
    // The hook copies this file, which contains the bytes the cache key covers.
    const std::string bundle = build_directory + "/ca-bundle.crt";
    if (Status written = sys::write_file_atomic(bundle, inputs.ca_bundle); !written) return written;
    process.extra_env.push_back("ZWRM_CA_BUNDLE=" + bundle);
  }
  if (needs_build_script(definition)) {
    if (Status prepared = prepare_build_script(build_directory, definition, inputs, options, process); !prepared) {
      return prepared;
    }
  }

  const std::vector<std::string> command = mmdebstrap_command(definition, root, with_ca_bundle);
  report_progress(options, "running mmdebstrap for " + definition.suite + " from " + command.back());
  Result<sys::ProcessResult> result = sys::run_process(command, process);
  for (const char* file : {"/ca-bundle.crt", "/build-ca.crt", "/build-script.sh"}) {
    ::unlink((build_directory + file).c_str());
  }
  if (!result) return tl::unexpected(result.error());
  if (!result->succeeded()) return describe_mmdebstrap_failure(*result, output, command.back(), definition, log_path);
  // mmdebstrap's cleanup step has already removed the apt package lists and
  // the downloaded .deb files.
  return check_agent_account(root);
}

struct TreeSize {
  std::uint64_t bytes = 0;   // file data rounded up to whole blocks
  std::uint64_t inodes = 0;  // hard links counted once
};

Result<TreeSize> measure_tree(const std::string& root) {
  namespace fs = std::filesystem;
  TreeSize size;
  std::set<std::pair<dev_t, ino_t>> linked;
  std::error_code error;
  for (fs::recursive_directory_iterator it(root, error), end; !error && it != end; it.increment(error)) {
    struct stat info {};
    if (::lstat(it->path().c_str(), &info) != 0) return fail_errno("cannot inspect " + it->path().string());
    if (info.st_nlink > 1 && !S_ISDIR(info.st_mode) && !linked.emplace(info.st_dev, info.st_ino).second) continue;
    size.inodes += 1;
    const std::uint64_t data = S_ISREG(info.st_mode) || S_ISLNK(info.st_mode) || S_ISDIR(info.st_mode)
                                   ? static_cast<std::uint64_t>(info.st_size)
                                   : 0;
    size.bytes += (data + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
  }
  if (error) return fail("cannot measure the staged root " + root + ": " + error.message(), error.value());
  return size;
}

// Sizes the image for the tree plus headroom for metadata and block groups.
// The file system has no journal because the guest mounts it read-only.
std::uint64_t image_bytes_for(const TreeSize& tree) {
  const std::uint64_t wanted = tree.bytes + tree.bytes / 8 + tree.inodes * kInodeBytes * 2 + 8 * kMiB;
  return std::max(kMinImageBytes, (wanted + kMiB - 1) / kMiB * kMiB);
}

Status run_mkfs_ext4(const std::string& root, const std::string& image, const ImageBuildOptions& options) {
  Result<TreeSize> tree = measure_tree(root);
  if (!tree) return tl::unexpected(tree.error());
  std::uint64_t bytes = image_bytes_for(*tree);
  const std::uint64_t inodes = tree->inodes + tree->inodes / 4 + 1024;

  sys::ProcessOptions process;
  process.timeout = kHelperTimeout;
  // A second try with twice the size covers trees whose metadata the
  // estimate undercounts (many directories with long names, for example).
  for (int attempt = 0; attempt < 2; ++attempt, bytes *= 2) {
    report_progress(options, "creating ext4 image of " + sys::format_size(bytes) + " from " +
                        std::to_string(tree->inodes) + " files");
    Result<sys::ProcessResult> result = sys::run_process(
        {"mkfs.ext4", "-q", "-F", "-d", root, "-L", "zwrm-root", "-b", std::to_string(kBlockBytes), "-N",
         std::to_string(inodes), "-m", "0", "-O", "^has_journal", "-E", "root_owner=0:0", image,
         std::to_string(bytes / 1024) + "k"},
        process);
    if (!result) return tl::unexpected(result.error());
    if (result->succeeded()) return {};
    if (attempt == 1) return fail("mkfs.ext4 for " + image + " " + result->describe());
  }
  return {};
}

// Sets every inode's owner in the image to root, and /home/agent's to the
// agent, for builds by a user who could not chown the staged files.
Status reset_owners_without_root(const std::string& root, const std::string& image) {
  namespace fs = std::filesystem;
  std::string script;
  std::error_code error;
  for (fs::recursive_directory_iterator it(root, error), end; !error && it != end; it.increment(error)) {
    const std::string relative = "/" + fs::relative(it->path(), root).string();
    const std::string owner = relative == "/home/agent" ? std::to_string(kAgentUid) : "0";
    script += "set_inode_field \"" + relative + "\" uid " + owner + "\n";
    script += "set_inode_field \"" + relative + "\" gid " + owner + "\n";
  }
  if (error) return fail("cannot list the staged root " + root + ": " + error.message(), error.value());

  const std::string script_path = image + ".owners";
  if (Status written = sys::write_file_atomic(script_path, script); !written) return written;
  sys::ProcessOptions process;
  process.timeout = kHelperTimeout;
  Result<sys::ProcessResult> result = sys::run_process({"debugfs", "-w", "-f", script_path, image}, process);
  ::unlink(script_path.c_str());
  if (!result) return tl::unexpected(result.error());
  if (!result->succeeded()) return fail("debugfs could not set owners in " + image + ": " + result->describe());
  return {};
}

}  // namespace

void report_progress(const ImageBuildOptions& options, const std::string& line) {
  spdlog::info("{}", line);
  if (options.progress) options.progress(line);
}

Status stage_root_tree(const std::string& build_directory, const TemplateDefinition& definition,
                       const BuildInputs& inputs, const ImageBuildOptions& options, const std::string& log_path) {
  const std::string root = build_directory + "/root";
  if (definition.base == "busybox") {
    if (::mkdir(root.c_str(), 0755) != 0) return fail_errno("cannot create " + root);
    if (Status staged = stage_busybox(root, inputs, options); !staged) return staged;
  } else {
    if (Status staged = stage_debian(build_directory, root, definition, inputs, options, log_path); !staged) return staged;
  }
  return add_guest_conventions(root);
}

Status make_ext4_image(const std::string& root, const std::string& image, const ImageBuildOptions& options) {
  if (Status made = run_mkfs_ext4(root, image, options); !made) return made;
  if (::geteuid() == 0) return {};
  return reset_owners_without_root(root, image);
}

}  // namespace zwrm::images
