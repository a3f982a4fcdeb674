// `zwrm cp`: copies one file between the host and an agent's volume.
//
// The copy runs in a run of the agent like any command: its bytes cross the
// control channel as the stdin or stdout of `cat` in the guest, under the
// agent's user (or root with --root). The host never mounts the volume,
// whose content the guest wrote. Each copy is recorded as a file.copy_in or
// file.copy_out audit event with the run's id, both paths, the size and the
// SHA-256 of the bytes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/prepare.h"
#include "cli/run_command.h"
#include "common/printable.h"
#include "common/unique_fd.h"
#include "host/supervisor/exit_codes.h"
#include "host/sys/files.h"
#include "state/audit.h"
#include "state/names.h"

namespace zwrm::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kWorkspace = "/workspace";

// One side of a copy: a host path, or PROJECT:PATH in an agent's guest.
struct Location {
  std::string project;  // empty for a host path
  std::string path;
};

// Splits PROJECT:PATH. Text whose part before the first ':' is not a
// project name is a host path, so `./a:b` names a host file.
Location parse_location(const std::string& text) {
  const std::size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0) return {{}, text};
  const std::string project = text.substr(0, colon);
  if (!state::validate_project_name(project)) return {{}, text};
  return {project, text.substr(colon + 1)};
}

// Returns the absolute, normalised guest path: relative paths are under
// /workspace.
std::string guest_path(const std::string& path) {
  const fs::path absolute = path.starts_with('/') ? fs::path(path) : fs::path(kWorkspace) / path;
  return absolute.lexically_normal().string();
}

Result<std::string> fd_digest(int fd) { return sys::sha256_file("/proc/self/fd/" + std::to_string(fd)); }

Status record_copy(const std::string& type, const std::string& project, const std::string& run_id, json data) {
  auto session = open_session();
  if (!session) return tl::unexpected(session.error());
  auto appended = state::append_event(*session->db, {project, run_id, state::EventSource::kHost, type, std::move(data)});
  if (!appended) return tl::unexpected(appended.error());
  return {};
}

// Runs options' command with the given descriptors as its stdin and stdout,
// then puts the process's own back. Returns the exit code and the run id.
int run_with(RunOptions& options, int stdin_fd, int stdout_fd, std::string& run_id) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto request = prepare_run(options, session->paths, *session->db);
  if (!request) return report_error(request.error());
  const UniqueFd saved_stdin(::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 10));
  const UniqueFd saved_stdout(::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 10));
  if (!saved_stdin || !saved_stdout || ::dup2(stdin_fd, STDIN_FILENO) != STDIN_FILENO ||
      ::dup2(stdout_fd, STDOUT_FILENO) != STDOUT_FILENO) {
    return report_error(fail_errno("cannot redirect the copy's data").value());
  }
  const int exit_code = run_client(*request, &run_id);
  ::dup2(saved_stdin.get(), STDIN_FILENO);
  ::dup2(saved_stdout.get(), STDOUT_FILENO);
  return exit_code;
}

int copy_in(RunOptions& options, const std::string& host, const std::string& guest) {
  if (guest == kWorkspace || !guest.starts_with(std::string(kWorkspace) + "/")) {
    return report_error({"invalid destination " + printable(guest) +
                         ": only files under /workspace outlive the run; copy to a path there"});
  }
  const UniqueFd source(::open(host.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!source) return report_error(fail_errno("cannot open " + printable(host)).value());
  struct stat info {};
  if (::fstat(source.get(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return report_error({printable(host) + " is not a regular file; zwrm cp copies one file"});
  }
  auto digest = fd_digest(source.get());
  if (!digest) return report_error(digest.error());

  const std::string mode = std::to_string((info.st_mode >> 6) & 7) + std::to_string((info.st_mode >> 3) & 7) +
                           std::to_string(info.st_mode & 7);
  // "$1" is the path and "$2" its mode, as arguments, so no part of the path
  // is ever read as shell syntax.
  options.command = {"sh", "-c", "mkdir -p \"${1%/*}\" && cat > \"$1\" && chmod \"$2\" \"$1\"", "sh", guest, mode};
  std::string run_id;
  const int exit_code = run_with(options, source.get(), STDOUT_FILENO, run_id);
  if (exit_code != 0) {
    std::fprintf(stderr, "zwrm: error: copying %s into the guest failed (exit code %d)\n", printable(host).c_str(),
                 exit_code);
    return exit_code;
  }
  auto recorded = record_copy("file.copy_in", options.project, run_id,
                              {{"guest_path", guest}, {"host_path", fs::absolute(host).string()},
                               {"bytes", info.st_size}, {"sha256", *digest}});
  return recorded ? 0 : report_error(recorded.error());
}

int copy_out(RunOptions& options, const std::string& guest, std::string host) {
  std::error_code error;
  if (fs::is_directory(host, error)) host = (fs::path(host) / fs::path(guest).filename()).string();
  // The bytes land in a temporary file beside the destination, renamed into
  // place only when the whole copy succeeded, so a failed copy leaves an
  // existing file as it was.
  std::string temporary = host + ".zwrm-XXXXXX";
  const UniqueFd target(::mkostemp(temporary.data(), O_CLOEXEC));
  if (!target) return report_error(fail_errno("cannot create a file beside " + printable(host)).value());
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(target.get(), 0666 & ~mask);

  // The guest's cat reads the file, not stdin, so the user's terminal is
  // left alone.
  const UniqueFd no_input(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  std::string run_id;
  const int exit_code = run_with(options, no_input.get(), target.get(), run_id);
  auto digest = exit_code == 0 ? fd_digest(target.get()) : Result<std::string>(std::string());
  struct stat info {};
  if (exit_code != 0 || !digest || ::fsync(target.get()) != 0 || ::fstat(target.get(), &info) != 0 ||
      ::rename(temporary.c_str(), host.c_str()) != 0) {
    const int saved_errno = errno;
    ::unlink(temporary.c_str());
    if (exit_code != 0) {
      std::fprintf(stderr, "zwrm: error: copying %s out of the guest failed (exit code %d); %s is unchanged\n",
                   printable(guest).c_str(), exit_code, printable(host).c_str());
      return exit_code;
    }
    if (!digest) return report_error(digest.error());
    return report_error(fail_errno("cannot write " + printable(host), saved_errno).value());
  }
  auto recorded = record_copy("file.copy_out", options.project, run_id,
                              {{"guest_path", guest}, {"host_path", fs::absolute(host).string()},
                               {"bytes", info.st_size}, {"sha256", *digest}});
  return recorded ? 0 : report_error(recorded.error());
}

}  // namespace

void add_copy_commands(CLI::App& app, Context& context) {
  auto options = std::make_shared<RunOptions>();
  auto source = std::make_shared<std::string>();
  auto destination = std::make_shared<std::string>();
  CLI::App* cp = app.add_subcommand(
      "cp", "Copy a file into an agent's /workspace or out of its guest, in a run of the agent");
  add_run_options(*cp, *options);
  cp->add_option("source", *source, "A host file, or AGENT:PATH (relative paths are under /workspace)")
      ->required()
      ->type_name("SOURCE");
  cp->add_option("destination", *destination, "A host file or directory, or AGENT:PATH under /workspace")
      ->required()
      ->type_name("DESTINATION");
  cp->callback([cp, options, source, destination, &context] {
    if (auto valid = check_no_empty_values(*cp); !valid) {
      context.exit_code = report_error(valid.error());
      return;
    }
    const Location from = parse_location(*source);
    const Location to = parse_location(*destination);
    if (from.project.empty() == to.project.empty()) {
      context.exit_code = report_error(
          {"zwrm cp needs exactly one side as AGENT:PATH, such as zwrm cp notes.txt my-project:notes.txt"});
      return;
    }
    options->tty = false;
    if (!to.project.empty()) {
      const std::string path = guest_path(to.path);
      options->project = to.project;
      context.exit_code = copy_in(*options, from.path, path);
    } else {
      const std::string path = guest_path(from.path);
      options->project = from.project;
      options->command = {"sh", "-c", "exec cat < \"$1\"", "sh", path};
      context.exit_code = copy_out(*options, path, to.path);
    }
  });
}

}  // namespace zwrm::cli
