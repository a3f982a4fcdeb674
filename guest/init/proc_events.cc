#include "guest/init/proc_events.h"

#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

#include "protocol/message.h"

namespace zwrm::guest {

namespace {

// Bursts of a few thousand events (a parallel build starting) fit without
// ENOBUFS while the collector is busy reading /proc.
constexpr int kReceiveBufferBytes = 4 * 1024 * 1024;
// Enough for the arguments the limits keep even when an early argument is
// long; whatever lies beyond is reported as truncated.
constexpr std::size_t kCmdlineReadBytes = 16 * 1024;
constexpr std::size_t kStatusReadBytes = 4096;

// Reads up to limit bytes of a /proc file. Returns nullopt when it cannot be
// opened or read. Sets complete to whether the end of the file was reached.
std::optional<std::string> read_proc_file(const std::string& path, std::size_t limit, bool& complete) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::string content(limit, '\0');
  std::size_t size = 0;
  complete = false;
  while (size < limit) {
    const ssize_t count = ::read(fd.get(), content.data() + size, limit - size);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return std::nullopt;
    if (count == 0) {
      complete = true;
      break;
    }
    size += static_cast<std::size_t>(count);
  }
  content.resize(size);
  return content;
}

template <typename Number>
bool parse_number(std::string_view text, Number& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

// Undoes the escapes the kernel applies to Name in /proc/PID/status: a
// newline is written as \n and a backslash as \\.
std::string unescape_name(std::string_view text) {
  std::string name;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && (text[i + 1] == 'n' || text[i + 1] == '\\')) {
      name.push_back(text[i + 1] == 'n' ? '\n' : '\\');
      ++i;
    } else {
      name.push_back(text[i]);
    }
  }
  return name.substr(0, protocol::kMaxEventCommBytes);
}

ProcEvent convert(const proc_event& event) {
  ProcEvent converted;
  switch (event.what) {
    case proc_event::PROC_EVENT_FORK:
      converted.what = ProcEvent::What::kFork;
      converted.pid = event.event_data.fork.child_pid;
      converted.tgid = event.event_data.fork.child_tgid;
      converted.parent_tgid = event.event_data.fork.parent_tgid;
      break;
    case proc_event::PROC_EVENT_EXEC:
      converted.what = ProcEvent::What::kExec;
      converted.pid = event.event_data.exec.process_pid;
      converted.tgid = event.event_data.exec.process_tgid;
      break;
    case proc_event::PROC_EVENT_EXIT:
      converted.what = ProcEvent::What::kExit;
      converted.pid = event.event_data.exit.process_pid;
      converted.tgid = event.event_data.exit.process_tgid;
      converted.parent_tgid = event.event_data.exit.parent_tgid;
      converted.exit_code = event.event_data.exit.exit_code;
      break;
    default:
      break;
  }
  return converted;
}

}  // namespace

Result<UniqueFd> open_proc_connector() {
  UniqueFd fd(::socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR));
  if (!fd) return fail_errno("cannot create a netlink connector socket");
  // SO_RCVBUFFORCE passes the rmem_max cap, which root may do.
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &kReceiveBufferBytes, sizeof kReceiveBufferBytes) != 0) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &kReceiveBufferBytes, sizeof kReceiveBufferBytes);
  }
  sockaddr_nl address{};
  address.nl_family = AF_NETLINK;
  address.nl_groups = CN_IDX_PROC;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    return fail_errno("cannot bind to the process events connector");
  }

  // The kernel sends process events only while at least one socket has
  // asked for them with PROC_CN_MCAST_LISTEN.
  alignas(nlmsghdr) std::uint8_t request[NLMSG_SPACE(sizeof(cn_msg) + sizeof(proc_cn_mcast_op))] = {};
  auto* header = reinterpret_cast<nlmsghdr*>(request);
  header->nlmsg_len = NLMSG_LENGTH(sizeof(cn_msg) + sizeof(proc_cn_mcast_op));
  header->nlmsg_type = NLMSG_DONE;
  auto* message = static_cast<cn_msg*>(NLMSG_DATA(header));
  message->id.idx = CN_IDX_PROC;
  message->id.val = CN_VAL_PROC;
  message->len = sizeof(proc_cn_mcast_op);
  const proc_cn_mcast_op operation = PROC_CN_MCAST_LISTEN;
  std::memcpy(message->data, &operation, sizeof operation);
  if (::send(fd.get(), request, header->nlmsg_len, 0) < 0) {
    return fail_errno("cannot subscribe to process events");
  }
  return fd;
}

std::vector<ProcEvent> parse_proc_datagram(std::span<const std::uint8_t> datagram) {
  std::vector<ProcEvent> events;
  std::size_t offset = 0;
  while (datagram.size() - offset >= sizeof(nlmsghdr)) {
    nlmsghdr header;
    std::memcpy(&header, datagram.data() + offset, sizeof header);
    if (header.nlmsg_len < sizeof(nlmsghdr) || header.nlmsg_len > datagram.size() - offset) break;
    if (header.nlmsg_type == NLMSG_ERROR || header.nlmsg_type == NLMSG_OVERRUN) break;

    // The connector sends each event as a message of type NLMSG_DONE, so
    // that type carries data here rather than ending a dump.
    const std::span<const std::uint8_t> body =
        datagram.subspan(offset + NLMSG_HDRLEN, header.nlmsg_len > NLMSG_HDRLEN ? header.nlmsg_len - NLMSG_HDRLEN : 0);
    if (header.nlmsg_type != NLMSG_NOOP && body.size() >= sizeof(cn_msg)) {
      cn_msg message;
      std::memcpy(&message, body.data(), sizeof message);
      const bool is_proc = message.id.idx == CN_IDX_PROC && message.id.val == CN_VAL_PROC;
      if (is_proc && message.len >= sizeof(proc_event) && message.len <= body.size() - sizeof(cn_msg)) {
        proc_event event;
        std::memcpy(&event, body.data() + sizeof(cn_msg), sizeof event);
        events.push_back(convert(event));
      }
    }
    offset += NLMSG_ALIGN(header.nlmsg_len);
    if (offset >= datagram.size()) break;
  }
  return events;
}

std::optional<ProcStatus> parse_proc_status(std::string_view text) {
  ProcStatus status;
  bool have_name = false, have_tgid = false, have_ppid = false, have_uid = false;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);

    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == '\t' || value.front() == ' ')) value.remove_prefix(1);

    if (key == "Name") {
      status.name = unescape_name(value);
      have_name = true;
    } else if (key == "Tgid") {
      have_tgid = parse_number(value, status.tgid);
    } else if (key == "PPid") {
      have_ppid = parse_number(value, status.ppid);
    } else if (key == "Uid") {
      // Real, effective, saved and file system uids; the first is the real one.
      have_uid = parse_number(value.substr(0, value.find('\t')), status.uid);
    }
  }
  if (!have_name || !have_tgid || !have_ppid || !have_uid) return std::nullopt;
  return status;
}

Argv split_cmdline(std::string_view content, bool complete) {
  Argv argv;
  argv.truncated = !complete;
  std::size_t total = 0;
  while (!content.empty()) {
    const std::size_t end = content.find('\0');
    // Without a final NUL the last argument was cut by the read, or the
    // process rewrote its argument area.
    const std::string_view arg = content.substr(0, end);
    content.remove_prefix(end == std::string_view::npos ? content.size() : end + 1);

    if (argv.args.size() == protocol::kMaxEventArgs || total == protocol::kMaxEventArgvBytes) {
      argv.truncated = true;
      break;
    }
    const std::size_t kept_bytes =
        std::min({arg.size(), protocol::kMaxEventArgBytes, protocol::kMaxEventArgvBytes - total});
    if (kept_bytes < arg.size()) argv.truncated = true;
    argv.args.emplace_back(arg.substr(0, kept_bytes));
    total += kept_bytes;
  }
  return argv;
}

ProcessDetails read_process(pid_t pid) {
  const std::string directory = "/proc/" + std::to_string(pid);
  ProcessDetails details;
  bool complete = false;
  // cmdline first: it is the part that vanishes soonest, once the process
  // has released its memory on exit.
  if (auto cmdline = read_proc_file(directory + "/cmdline", kCmdlineReadBytes, complete); cmdline && !cmdline->empty()) {
    details.argv = split_cmdline(*cmdline, complete);
  }
  if (auto text = read_proc_file(directory + "/status", kStatusReadBytes, complete); text) {
    details.status = parse_proc_status(*text);
  }
  return details;
}

}  // namespace zwrm::guest
