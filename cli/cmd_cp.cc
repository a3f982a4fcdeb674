// `zwrm cp`: copies one file between the host and an agent's volume.
//
// The copy runs in a run of the agent like any command: its bytes cross the
// control channel as the stdin or stdout of `cat` in the guest, under the
// agent's user (or root with --root). The host never mounts the volume,
// whose content the guest wrote. A pump thread moves the bytes between the
// host file and the run, so the SHA-256 and size recorded in the audit log
// (file.copy_in, file.copy_out) are those of the bytes that were copied.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/prepare.h"
#include "cli/run_command.h"
#include "common/printable.h"
#include "common/unique_fd.h"
#include "host/sys/files.h"
#include "state/agents.h"
#include "state/audit.h"
#include "state/names.h"

namespace zwrm::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kWorkspace = "/workspace";

// Writes the guest file under a hidden temporary name beside it and renames
// it into place only when all of it arrived, so a failed or stopped copy
// leaves the old file. "$1" is the path and "$2" the mode, passed as
// arguments, so no part of a path is read as shell syntax. A directory that
// resolves outside /workspace (through a link) is rejected.
constexpr const char* kCopyInScript = R"SH(dir=${1%/*}
mkdir -p "$dir" || exit 1
case $(readlink -f "$dir") in
  /workspace|/workspace/*) ;;
  *) echo "zwrm cp: $dir is outside /workspace" >&2; exit 1 ;;
esac
tmp="$dir/.${1##*/}.zwrm-copy"
trap 'rm -f "$tmp"' EXIT
trap 'exit 1' TERM INT HUP
cat > "$tmp" && chmod "$2" "$tmp" && mv -f "$tmp" "$1")SH";

// Sends a regular file only: a device or FIFO behind a link would never end.
constexpr const char* kCopyOutScript = R"SH([ -f "$1" ] || { echo "zwrm cp: $1 is not a regular file" >&2; exit 1; }
exec cat < "$1")SH";

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

// The bytes a pump moved, their digest, and why it stopped early, if it did.
struct Pumped {
  std::uint64_t bytes = 0;
  std::string sha256;
  int write_errno = 0;   // writing to the destination failed
  bool over_limit = false;
};

// Copies from `from` to `to` until end of file, hashing what it writes, and
// stops after `limit` bytes or at the first write error.
Pumped pump(int from, int to, std::uint64_t limit) {
  Pumped result;
  sys::Sha256 digest;
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t count = ::read(from, buffer, sizeof buffer);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) break;
    if (result.bytes + static_cast<std::uint64_t>(count) > limit) {
      result.over_limit = true;
      break;
    }
    for (ssize_t done = 0; done < count;) {
      const ssize_t written = ::write(to, buffer + done, static_cast<std::size_t>(count - done));
      if (written < 0 && errno == EINTR) continue;
      if (written < 0) {
        result.write_errno = errno;
        return result;
      }
      done += written;
    }
    digest.update(buffer, static_cast<std::size_t>(count));
    result.bytes += static_cast<std::uint64_t>(count);
  }
  result.sha256 = digest.hex_digest();
  return result;
}

// Returns the agent, which a copy never creates.
Result<state::Agent> existing_agent(const std::string& project) {
  auto session = open_session();
  if (!session) return tl::unexpected(session.error());
  auto agent = state::find_agent(*session->db, project);
  if (!agent) return tl::unexpected(agent.error());
  if (!*agent) return fail("no agent named " + project + "; `zwrm agent ls` lists them");
  return std::move(**agent);
}

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

Result<std::pair<UniqueFd, UniqueFd>> make_pipe() {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) return fail_errno("cannot create a pipe for the copy");
  return std::pair{UniqueFd(ends[0]), UniqueFd(ends[1])};
}

int copy_in(RunOptions& options, const std::string& host, const std::string& guest) {
  if (guest == kWorkspace || !guest.starts_with(std::string(kWorkspace) + "/")) {
    return report_error({"invalid destination " + printable(guest) +
                         ": only files under /workspace outlive the run; copy to a path there"});
  }
  // O_NONBLOCK: a FIFO there must not block before the check below.
  UniqueFd source(::open(host.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!source) return report_error(fail_errno("cannot open " + printable(host)).value());
  struct stat info {};
  if (::fstat(source.get(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return report_error({printable(host) + " is not a regular file; zwrm cp copies one file"});
  }
  ::fcntl(source.get(), F_SETFL, ::fcntl(source.get(), F_GETFL) & ~O_NONBLOCK);
  if (auto agent = existing_agent(options.project); !agent) return report_error(agent.error());

  const std::string mode = std::to_string((info.st_mode >> 6) & 7) + std::to_string((info.st_mode >> 3) & 7) +
                           std::to_string(info.st_mode & 7);
  options.command = {"sh", "-c", kCopyInScript, "sh", guest, mode};
  auto pipe = make_pipe();
  if (!pipe) return report_error(pipe.error());
  auto [read_end, write_end] = std::move(*pipe);
  Pumped pumped;
  std::thread pumping([&] {
    pumped = pump(source.get(), write_end.get(), UINT64_MAX);
    write_end.reset();  // end of stdin for the guest's cat
  });
  std::string run_id;
  const int exit_code = run_with(options, read_end.get(), STDOUT_FILENO, run_id);
  read_end.reset();  // a pump still writing gets EPIPE and stops
  pumping.join();

  json data = {{"guest_path", guest}, {"host_path", fs::absolute(host).string()}, {"bytes", pumped.bytes}};
  if (exit_code != 0) {
    data["result"] = "failed";
    data["exit_code"] = exit_code;
    (void)record_copy("file.copy_in", options.project, run_id, std::move(data));
    std::fprintf(stderr, "zwrm: error: copying %s into the guest failed (exit code %d); %s is unchanged\n",
                 printable(host).c_str(), exit_code, printable(guest).c_str());
    return exit_code;
  }
  data["sha256"] = pumped.sha256;
  auto recorded = record_copy("file.copy_in", options.project, run_id, std::move(data));
  return recorded ? 0 : report_error(recorded.error());
}

int copy_out(RunOptions& options, const std::string& guest, std::string host) {
  auto agent = existing_agent(options.project);
  if (!agent) return report_error(agent.error());
  std::error_code error;
  if (fs::is_directory(host, error)) host = (fs::path(host) / fs::path(guest).filename()).string();
  // The bytes land in a temporary file beside the destination, renamed into
  // place only when the whole copy succeeded, so a failed copy leaves an
  // existing file as it was. An existing file keeps its mode.
  std::string temporary = host + ".zwrm-XXXXXX";
  const UniqueFd target(::mkostemp(temporary.data(), O_CLOEXEC));
  if (!target) {
    return report_error(fail_errno("cannot create a temporary file for " + printable(host)).value());
  }
  struct stat existing {};
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(target.get(), ::stat(host.c_str(), &existing) == 0 ? existing.st_mode & 07777 : 0666 & ~mask);

  // No file in the volume is larger than the volume, so a guest that sends
  // more is stopped there.
  struct stat volume {};
  const std::uint64_t limit =
      ::stat(agent->volume_path.c_str(), &volume) == 0 ? static_cast<std::uint64_t>(volume.st_size) : UINT64_MAX;
  options.command = {"sh", "-c", kCopyOutScript, "sh", guest};
  auto pipe = make_pipe();
  if (!pipe) return report_error(pipe.error());
  auto [read_end, write_end] = std::move(*pipe);
  Pumped pumped;
  std::thread pumping([&] {
    pumped = pump(read_end.get(), target.get(), limit);
    read_end.reset();  // the guest's output now ends in EPIPE
  });
  // The guest's cat reads the file, not stdin, so the user's terminal is
  // left alone.
  const UniqueFd no_input(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  std::string run_id;
  const int exit_code = run_with(options, no_input.get(), write_end.get(), run_id);
  write_end.reset();
  pumping.join();

  const int sync_errno = exit_code == 0 && ::fsync(target.get()) != 0 ? errno : 0;
  const bool copied = exit_code == 0 && pumped.write_errno == 0 && !pumped.over_limit && sync_errno == 0 &&
                      ::rename(temporary.c_str(), host.c_str()) == 0;
  const int rename_errno = copied ? 0 : errno;
  if (!copied) ::unlink(temporary.c_str());

  json data = {{"guest_path", guest}, {"host_path", fs::absolute(host).string()}, {"bytes", pumped.bytes}};
  if (copied) {
    data["sha256"] = pumped.sha256;
    auto recorded = record_copy("file.copy_out", options.project, run_id, std::move(data));
    return recorded ? 0 : report_error(recorded.error());
  }
  data["result"] = "failed";
  data["exit_code"] = exit_code;
  (void)record_copy("file.copy_out", options.project, run_id, std::move(data));
  if (pumped.write_errno != 0 || sync_errno != 0) {
    return report_error(fail_errno("cannot write " + printable(host) + ", which is unchanged",
                                   pumped.write_errno != 0 ? pumped.write_errno : sync_errno)
                            .value());
  }
  if (pumped.over_limit) {
    return report_error({"the guest sent more than the volume's size for " + printable(guest) +
                         ", so the copy was stopped; " + printable(host) + " is unchanged"});
  }
  if (exit_code != 0) {
    std::fprintf(stderr, "zwrm: error: copying %s out of the guest failed (exit code %d); %s is unchanged\n",
                 printable(guest).c_str(), exit_code, printable(host).c_str());
    return exit_code;
  }
  return report_error(fail_errno("cannot rename the copy to " + printable(host), rename_errno).value());
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
    const std::string& remote = to.project.empty() ? from.path : to.path;
    if (!is_valid_utf8(remote)) {
      context.exit_code = report_error({"invalid guest path " + printable(remote) +
                                        ": it is not valid UTF-8; rename the file in the guest first"});
      return;
    }
    options->tty = false;
    // A pump writing to a run that is gone gets EPIPE, not a fatal signal.
    ::signal(SIGPIPE, SIG_IGN);
    if (!to.project.empty()) {
      options->project = to.project;
      context.exit_code = copy_in(*options, from.path, guest_path(to.path));
    } else {
      options->project = from.project;
      context.exit_code = copy_out(*options, guest_path(from.path), to.path);
    }
  });
}

}  // namespace zwrm::cli
