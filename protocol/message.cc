#include "protocol/message.h"

#include <cstring>

namespace zwrm::protocol {

namespace {

class Writer {
 public:
  void u8(std::uint8_t value) { bytes_.push_back(value); }
  void u16(std::uint16_t value) { put(value, 2); }
  void u32(std::uint32_t value) { put(value, 4); }
  void u64(std::uint64_t value) { put(value, 8); }
  void bytes(std::span<const std::uint8_t> value) {
    u32(static_cast<std::uint32_t>(value.size()));
    bytes_.insert(bytes_.end(), value.begin(), value.end());
  }
  void str(const std::string& value) {
    bytes({reinterpret_cast<const std::uint8_t*>(value.data()), value.size()});
  }
  void strings(const std::vector<std::string>& values) {
    u32(static_cast<std::uint32_t>(values.size()));
    for (const std::string& value : values) str(value);
  }
  Bytes take() { return std::move(bytes_); }

 private:
  void put(std::uint64_t value, int size) {
    for (int i = 0; i < size; ++i) bytes_.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
  }
  Bytes bytes_;
};

// Reads fields in order; the first short read latches ok() to false and every
// later read returns zero values, so decoders check ok() once at the end.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> payload) : rest_(payload) {}

  std::uint8_t u8() { return static_cast<std::uint8_t>(get(1)); }
  std::uint16_t u16() { return static_cast<std::uint16_t>(get(2)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(get(4)); }
  std::uint64_t u64() { return get(8); }
  Bytes bytes() {
    const std::uint32_t size = u32();
    if (!ok_ || size > rest_.size()) return fail_value<Bytes>();
    Bytes value(rest_.begin(), rest_.begin() + size);
    rest_ = rest_.subspan(size);
    return value;
  }
  std::string str() {
    Bytes raw = bytes();
    return std::string(raw.begin(), raw.end());
  }
  std::vector<std::string> strings() {
    const std::uint32_t count = u32();
    // Each string takes at least its 4-byte length, which bounds count by
    // the payload size before anything is allocated.
    if (!ok_ || count > rest_.size() / 4) return fail_value<std::vector<std::string>>();
    std::vector<std::string> values;
    values.reserve(count);
    for (std::uint32_t i = 0; i < count && ok_; ++i) values.push_back(str());
    return values;
  }

  // True when every read succeeded and the payload was consumed exactly.
  bool complete() const { return ok_ && rest_.empty(); }

 private:
  template <typename T>
  T fail_value() {
    ok_ = false;
    return T{};
  }
  std::uint64_t get(std::size_t size) {
    if (!ok_ || rest_.size() < size) return fail_value<std::uint64_t>();
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < size; ++i) value |= static_cast<std::uint64_t>(rest_[i]) << (8 * i);
    rest_ = rest_.subspan(size);
    return value;
  }

  std::span<const std::uint8_t> rest_;
  bool ok_ = true;
};

constexpr std::size_t kMaxCloseReason = 1024;

using EventKind = GuestEvent::Kind;

// Returns the flag bits a kind may carry.
std::uint8_t allowed_flags(EventKind kind) {
  switch (kind) {
    case EventKind::kExec:
      return GuestEvent::kArgvTruncated | GuestEvent::kArgvUnreadable | GuestEvent::kStatusUnreadable;
    case EventKind::kExit: return GuestEvent::kSignaled;
    case EventKind::kFileCreate:
    case EventKind::kFileModify:
    case EventKind::kFileDelete:
    case EventKind::kFileRename:
      return GuestEvent::kDirectory | GuestEvent::kPathTruncated | GuestEvent::kPathUnresolved;
  }
  return 0;
}

bool valid_argv(const GuestEvent& event) {
  if (event.argv.size() > kMaxEventArgs) return false;
  std::size_t total = 0;
  for (const std::string& arg : event.argv) {
    if (arg.size() > kMaxEventArgBytes) return false;
    total += arg.size();
  }
  // An unreadable argv is empty, and only an unreadable one is: the kernel
  // gives every process at least one argument since Linux 5.18.
  const bool unreadable = (event.flags & GuestEvent::kArgvUnreadable) != 0;
  if (unreadable && (event.flags & GuestEvent::kArgvTruncated) != 0) return false;
  return total <= kMaxEventArgvBytes && unreadable == event.argv.empty();
}

bool valid_path(const std::string& path) { return !path.empty() && path.size() <= kMaxEventPathBytes; }

// Checks the per-kind rules of a decoded event: flags, limits and ranges.
bool valid_event(const GuestEvent& event) {
  if ((event.flags & ~allowed_flags(event.kind)) != 0) return false;
  switch (event.kind) {
    case EventKind::kExec:
      return event.pid != 0 && event.comm.size() <= kMaxEventCommBytes && valid_argv(event);
    case EventKind::kExit: {
      const bool signaled = (event.flags & GuestEvent::kSignaled) != 0;
      const bool status_valid = signaled ? event.status >= 1 && event.status <= 64 : event.status <= 255;
      return event.pid != 0 && event.comm.size() <= kMaxEventCommBytes && status_valid;
    }
    case EventKind::kFileRename:
      return valid_path(event.path) && valid_path(event.new_path);
    case EventKind::kFileCreate:
    case EventKind::kFileModify:
    case EventKind::kFileDelete:
      return valid_path(event.path);
  }
  return false;
}

void write_event(Writer& writer, const GuestEvent& event) {
  writer.u8(static_cast<std::uint8_t>(event.kind));
  writer.u8(event.flags);
  writer.u64(event.time_ms);
  writer.u32(event.pid);
  switch (event.kind) {
    case EventKind::kExec:
      writer.u32(event.ppid);
      writer.u32(event.uid);
      writer.str(event.comm);
      writer.strings(event.argv);
      return;
    case EventKind::kExit:
      writer.u32(event.ppid);
      writer.str(event.comm);
      writer.u32(event.status);
      return;
    case EventKind::kFileRename:
      writer.str(event.path);
      writer.str(event.new_path);
      return;
    case EventKind::kFileCreate:
    case EventKind::kFileModify:
    case EventKind::kFileDelete:
      writer.str(event.path);
      return;
  }
}

// Reads one event; returns false on an unknown kind (the reader's own state
// covers short payloads).
bool read_event(Reader& reader, GuestEvent& event) {
  const std::uint8_t kind = reader.u8();
  event.flags = reader.u8();
  event.time_ms = reader.u64();
  event.pid = reader.u32();
  if (kind < static_cast<std::uint8_t>(EventKind::kExec) || kind > static_cast<std::uint8_t>(EventKind::kFileRename)) {
    return false;
  }
  event.kind = static_cast<EventKind>(kind);
  switch (event.kind) {
    case EventKind::kExec:
      event.ppid = reader.u32();
      event.uid = reader.u32();
      event.comm = reader.str();
      event.argv = reader.strings();
      break;
    case EventKind::kExit:
      event.ppid = reader.u32();
      event.comm = reader.str();
      event.status = reader.u32();
      break;
    case EventKind::kFileRename:
      event.path = reader.str();
      event.new_path = reader.str();
      break;
    case EventKind::kFileCreate:
    case EventKind::kFileModify:
    case EventKind::kFileDelete:
      event.path = reader.str();
      break;
  }
  return true;
}

tl::unexpected<Error> malformed(const char* what) {
  return fail(std::string("protocol violation: malformed ") + what + " payload");
}

}  // namespace

bool is_data_kind(FrameType type) {
  return type == FrameType::kStdin || type == FrameType::kStdout || type == FrameType::kStderr ||
         type == FrameType::kTcpData;
}

int ExitStatus::shell_status() const {
  switch (kind) {
    case Kind::kExited: return code & 0xff;
    case Kind::kSignaled: return 128 + code;
    case Kind::kFailedToStart: return code;
  }
  return 255;
}

Bytes encode(const Hello& message) {
  Writer writer;
  writer.u32(message.protocol_version);
  writer.str(message.init_version);
  return writer.take();
}

Bytes encode(const Setup& message) {
  Writer writer;
  writer.u64(message.realtime_ns);
  writer.bytes(message.entropy);
  writer.str(message.hostname);
  return writer.take();
}

Bytes encode(const Ready& message) {
  Writer writer;
  writer.u64(message.uptime_ms);
  return writer.take();
}

Bytes encode(const Pong& message) {
  Writer writer;
  writer.u64(message.cpu_busy_ms);
  return writer.take();
}

Bytes encode(const Fatal& message) {
  Writer writer;
  writer.str(message.message);
  return writer.take();
}

Bytes encode(const ExecRequest& message) {
  Writer writer;
  writer.strings(message.argv);
  writer.strings(message.env);
  writer.strings(message.secret_env);
  writer.str(message.cwd);
  writer.u32(message.uid);
  writer.u32(message.gid);
  writer.u8(message.tty ? 1 : 0);
  writer.u16(message.rows);
  writer.u16(message.cols);
  return writer.take();
}

Bytes encode(const Started& message) {
  Writer writer;
  writer.u32(message.pid);
  return writer.take();
}

Bytes encode(const Eof& message) {
  Writer writer;
  writer.u8(static_cast<std::uint8_t>(message.kind));
  return writer.take();
}

Bytes encode(const Credit& message) {
  Writer writer;
  writer.u8(static_cast<std::uint8_t>(message.kind));
  writer.u32(message.bytes);
  return writer.take();
}

Bytes encode(const Window& message) {
  Writer writer;
  writer.u16(message.rows);
  writer.u16(message.cols);
  return writer.take();
}

Bytes encode(const Signal& message) {
  Writer writer;
  writer.u32(message.number);
  return writer.take();
}

Bytes encode(const ExitStatus& message) {
  Writer writer;
  writer.u8(static_cast<std::uint8_t>(message.kind));
  writer.u32(static_cast<std::uint32_t>(message.code));
  writer.str(message.message);
  return writer.take();
}

Bytes encode(const TcpConnect& message) {
  Writer writer;
  writer.u16(message.port);
  return writer.take();
}

Bytes encode(const TcpClose& message) {
  Writer writer;
  writer.str(message.reason.substr(0, kMaxCloseReason));
  return writer.take();
}

std::size_t encoded_size(const GuestEvent& event) {
  constexpr std::size_t kCommon = 1 + 1 + 8 + 4;  // kind, flags, time, pid
  constexpr std::size_t kLength = 4;              // before each string and list
  std::size_t size = kCommon;
  switch (event.kind) {
    case EventKind::kExec:
      size += 4 + 4 + kLength + event.comm.size() + kLength;
      for (const std::string& arg : event.argv) size += kLength + arg.size();
      break;
    case EventKind::kExit:
      size += 4 + kLength + event.comm.size() + 4;
      break;
    case EventKind::kFileRename:
      size += kLength + event.path.size() + kLength + event.new_path.size();
      break;
    case EventKind::kFileCreate:
    case EventKind::kFileModify:
    case EventKind::kFileDelete:
      size += kLength + event.path.size();
      break;
  }
  return size;
}

Bytes encode(const GuestEvents& message) {
  Writer writer;
  writer.u64(message.dropped);
  writer.u32(static_cast<std::uint32_t>(message.events.size()));
  for (const GuestEvent& event : message.events) write_event(writer, event);
  return writer.take();
}

Result<Hello> decode_hello(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  Hello message;
  message.protocol_version = reader.u32();
  message.init_version = reader.str();
  if (!reader.complete()) return malformed("hello");
  return message;
}

Result<Setup> decode_setup(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  Setup message;
  message.realtime_ns = reader.u64();
  message.entropy = reader.bytes();
  message.hostname = reader.str();
  if (!reader.complete()) return malformed("setup");
  return message;
}

Result<Ready> decode_ready(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  Ready message;
  message.uptime_ms = reader.u64();
  if (!reader.complete()) return malformed("ready");
  return message;
}

Result<Pong> decode_pong(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  Pong message;
  message.cpu_busy_ms = reader.u64();
  if (!reader.complete()) return malformed("pong");
  return message;
}

Result<Fatal> decode_fatal(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  Fatal message;
  message.message = reader.str();
  if (!reader.complete()) return malformed("fatal");
  return message;
}

Result<ExecRequest> decode_exec(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  ExecRequest message;
  message.argv = reader.strings();
  message.env = reader.strings();
  message.secret_env = reader.strings();
  message.cwd = reader.str();
  message.uid = reader.u32();
  message.gid = reader.u32();
  const std::uint8_t tty = reader.u8();
  message.rows = reader.u16();
  message.cols = reader.u16();
  if (!reader.complete() || tty > 1 || message.argv.empty()) return malformed("exec");
  message.tty = tty == 1;
  return message;
}

Result<Started> decode_started(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  Started message;
  message.pid = reader.u32();
  if (!reader.complete()) return malformed("started");
  return message;
}

Result<Eof> decode_eof(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  Eof message;
  message.kind = static_cast<DataKind>(reader.u8());
  if (!reader.complete() || !is_data_kind(message.kind)) return malformed("eof");
  return message;
}

Result<Credit> decode_credit(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  Credit message;
  message.kind = static_cast<DataKind>(reader.u8());
  message.bytes = reader.u32();
  if (!reader.complete() || !is_data_kind(message.kind)) return malformed("credit");
  return message;
}

Result<Window> decode_window(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  Window message;
  message.rows = reader.u16();
  message.cols = reader.u16();
  if (!reader.complete()) return malformed("window");
  return message;
}

Result<Signal> decode_signal(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  Signal message;
  message.number = reader.u32();
  if (!reader.complete() || message.number < 1 || message.number > 64) return malformed("signal");
  return message;
}

Result<ExitStatus> decode_exit(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  ExitStatus message;
  const std::uint8_t kind = reader.u8();
  message.code = static_cast<std::int32_t>(reader.u32());
  message.message = reader.str();
  if (!reader.complete() || kind > 2) return malformed("exit");
  message.kind = static_cast<ExitStatus::Kind>(kind);
  const bool code_valid = message.kind == ExitStatus::Kind::kSignaled
                              ? message.code >= 1 && message.code <= 64
                              : message.code >= 0 && message.code <= 255;
  if (!code_valid) return malformed("exit");
  return message;
}

Result<TcpConnect> decode_tcp_connect(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  TcpConnect message;
  message.port = reader.u16();
  if (!reader.complete() || message.port == 0) return malformed("tcp-connect");
  return message;
}

Result<TcpClose> decode_tcp_close(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  TcpClose message;
  message.reason = reader.str();
  if (!reader.complete() || message.reason.size() > kMaxCloseReason) return malformed("tcp-close");
  return message;
}

Result<GuestEvents> decode_guest_events(std::span<const std::uint8_t> payload) {
  Reader reader(payload);
  GuestEvents message;
  message.dropped = reader.u64();
  const std::uint32_t count = reader.u32();
  // The count is checked before anything is allocated for it.
  if (count > kMaxGuestEventsPerBatch || (count == 0 && message.dropped == 0)) return malformed("guest-events");
  message.events.resize(count);
  for (GuestEvent& event : message.events) {
    if (!read_event(reader, event) || !valid_event(event)) return malformed("guest-events");
  }
  if (!reader.complete()) return malformed("guest-events");
  return message;
}

}  // namespace zwrm::protocol
