#include "host/supervisor/console_log.h"

#include <fcntl.h>
#include <unistd.h>

namespace zwrm::supervisor {

namespace {

constexpr std::string_view kPanicMarker = "Kernel panic";
constexpr std::string_view kOomMarker = "Out of memory: Killed process";

void write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t count = ::write(fd, data, size);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) return;  // a full disk loses console text, never the run
    data += count;
    size -= static_cast<std::size_t>(count);
  }
}

}  // namespace

Result<ConsoleLog> ConsoleLog::create(const std::string& path, std::uint64_t cap) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return fail_errno("cannot create console log " + path);
  return ConsoleLog(std::move(fd), cap);
}

void ConsoleLog::append(const char* data, std::size_t size) {
  // tail_ keeps the end of the previous chunk, short enough that a marker
  // found in the window cannot have been counted already.
  const std::string window = tail_ + std::string(data, size);
  if (window.find(kPanicMarker) != std::string::npos) saw_panic_ = true;
  for (std::size_t at = window.find(kOomMarker); at != std::string::npos; at = window.find(kOomMarker, at + 1)) {
    ++oom_kills_;
  }
  const std::size_t keep = kOomMarker.size() - 1;
  tail_ = window.substr(window.size() > keep ? window.size() - keep : 0);
  const std::uint64_t room = written_ < cap_ ? cap_ - written_ : 0;
  const std::size_t kept = static_cast<std::size_t>(std::min<std::uint64_t>(room, size));
  if (kept > 0) {
    write_all(fd_.get(), data, kept);
    written_ += kept;
  }
  if (kept < size) {
    if (dropped_ == 0) {
      const std::string marker =
          "\n[zwrm: console log reached its cap of " + std::to_string(cap_) + " bytes; later output is dropped]\n";
      write_all(fd_.get(), marker.data(), marker.size());
    }
    dropped_ += size - kept;
  }
}

}  // namespace zwrm::supervisor
