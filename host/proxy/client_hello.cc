#include "host/proxy/client_hello.h"

#include <algorithm>
#include <optional>
#include <vector>

namespace zwrm::proxy {
namespace {

using Status = ClientHelloInfo::Status;

// Wire constants from RFC 8446 (TLS 1.3) and RFC 6066 (server_name), which
// TLS 1.0 to 1.2 share.
constexpr std::uint8_t kHandshakeRecord = 22;
constexpr std::uint8_t kClientHelloType = 1;
constexpr std::size_t kRecordHeaderSize = 5;
constexpr std::size_t kHandshakeHeaderSize = 4;
// The largest record any TLS version allows: 2^14 plus 2048 bytes of
// compression overhead (RFC 5246, section 6.2.2).
constexpr std::size_t kMaxRecordLength = 16384 + 2048;
constexpr std::uint32_t kServerNameExtension = 0;
constexpr std::uint32_t kHostNameType = 0;

ClientHelloInfo with_status(Status status) {
  ClientHelloInfo info;
  info.status = status;
  return info;
}

// A big-endian reader over a byte span. A read past the end returns nullopt
// or false and consumes nothing.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> data) : data_(data) {}

  bool empty() const { return data_.empty(); }
  std::size_t size() const { return data_.size(); }
  std::span<const std::uint8_t> bytes() const { return data_; }

  bool skip(std::size_t count) {
    if (count > data_.size()) return false;
    data_ = data_.subspan(count);
    return true;
  }

  // Reads an unsigned integer of width bytes (1 to 3).
  std::optional<std::uint32_t> read_uint(std::size_t width) {
    if (width > data_.size()) return std::nullopt;
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < width; ++i) value = (value << 8) | data_[i];
    data_ = data_.subspan(width);
    return value;
  }

  // Reads a vector with a length prefix of length_width bytes, as TLS
  // encodes opaque<..> and list fields.
  std::optional<Reader> read_vector(std::size_t length_width) {
    Reader copy = *this;
    const auto length = copy.read_uint(length_width);
    if (!length || *length > copy.size()) return std::nullopt;
    Reader vector(copy.data_.first(*length));
    copy.data_ = copy.data_.subspan(*length);
    *this = copy;
    return vector;
  }

 private:
  std::span<const std::uint8_t> data_;
};

// Returns the single host_name entry of a server_name extension, or nullopt
// when the extension is invalid. A list without a host_name, or with two,
// is invalid: RFC 6066 allows one name per type, and OpenSSL (3.0) servers
// accept only a list with exactly one host_name.
std::optional<std::string> parse_server_name(Reader extension) {
  auto list = extension.read_vector(2);
  if (!list || list->empty() || !extension.empty()) return std::nullopt;

  std::optional<std::string> host_name;
  while (!list->empty()) {
    const auto type = list->read_uint(1);
    const auto name = list->read_vector(2);
    if (!type || !name || name->empty()) return std::nullopt;
    if (*type != kHostNameType) continue;
    if (host_name) return std::nullopt;
    host_name.emplace(name->bytes().begin(), name->bytes().end());
  }
  return host_name;
}

ClientHelloInfo find_server_name(Reader extensions) {
  std::optional<std::string> server_name;
  while (!extensions.empty()) {
    const auto type = extensions.read_uint(2);
    const auto data = extensions.read_vector(2);
    if (!type || !data) return with_status(Status::kMalformed);
    if (*type != kServerNameExtension) continue;

    // A second server_name extension could name another host than the first
    // (RFC 8446 allows one extension of each type).
    if (server_name) return with_status(Status::kMalformed);
    server_name = parse_server_name(*data);
    if (!server_name) return with_status(Status::kMalformed);
  }
  if (!server_name) return with_status(Status::kNoServerName);
  ClientHelloInfo info;
  info.status = Status::kServerName;
  info.server_name = std::move(*server_name);
  return info;
}

// Parses the ClientHello body (after the handshake header): the fixed fields
// are skipped, and the extensions are searched for server_name.
ClientHelloInfo parse_body(Reader body) {
  const auto malformed = with_status(Status::kMalformed);
  if (!body.skip(2 + 32)) return malformed;  // legacy_version, random

  const auto session_id = body.read_vector(1);
  if (!session_id || session_id->size() > 32) return malformed;
  const auto cipher_suites = body.read_vector(2);
  if (!cipher_suites || cipher_suites->size() < 2 || cipher_suites->size() % 2 != 0) return malformed;
  const auto compression_methods = body.read_vector(1);
  if (!compression_methods || compression_methods->empty()) return malformed;

  // TLS 1.0 to 1.2 clients may end the ClientHello here, without extensions.
  if (body.empty()) return with_status(Status::kNoServerName);
  const auto extensions = body.read_vector(2);
  if (!extensions || !body.empty()) return malformed;
  return find_server_name(*extensions);
}

}  // namespace

ClientHelloInfo parse_client_hello(std::span<const std::uint8_t> data) {
  if (data.empty()) return with_status(Status::kNeedMore);
  if (data[0] != kHandshakeRecord) return with_status(Status::kNotTls);

  // The handshake message, reassembled from the fragments in each record.
  std::vector<std::uint8_t> message;
  std::size_t offset = 0;
  while (true) {
    if (!message.empty() && message[0] != kClientHelloType) return with_status(Status::kMalformed);
    if (message.size() >= kHandshakeHeaderSize) {
      const std::size_t length = (std::size_t{message[1]} << 16) | (std::size_t{message[2]} << 8) | message[3];
      if (kRecordHeaderSize + kHandshakeHeaderSize + length > kMaxClientHello) return with_status(Status::kMalformed);
      if (message.size() >= kHandshakeHeaderSize + length) {
        return parse_body(Reader(std::span(message).subspan(kHandshakeHeaderSize, length)));
      }
    }

    // The ClientHello continues in the next record, which needs a header
    // and at least one byte.
    if (offset + kRecordHeaderSize >= kMaxClientHello) return with_status(Status::kMalformed);
    const std::span<const std::uint8_t> rest = data.subspan(offset);
    if (rest.empty()) return with_status(Status::kNeedMore);
    if (rest[0] != kHandshakeRecord) return with_status(Status::kMalformed);
    if (rest.size() >= 2 && rest[1] != 3) return with_status(Status::kMalformed);
    if (rest.size() < kRecordHeaderSize) return with_status(Status::kNeedMore);
    const std::size_t length = (std::size_t{rest[3]} << 8) | rest[4];
    // RFC 8446, section 5.1: handshake records are never empty.
    if (length == 0 || length > kMaxRecordLength) return with_status(Status::kMalformed);
    if (offset + kRecordHeaderSize + length > kMaxClientHello) return with_status(Status::kMalformed);

    // A record that has not fully arrived still adds its first bytes, which
    // may complete the ClientHello. If they do not, the next pass returns
    // kNeedMore.
    const std::size_t available = std::min(length, rest.size() - kRecordHeaderSize);
    const auto fragment = rest.subspan(kRecordHeaderSize, available);
    message.insert(message.end(), fragment.begin(), fragment.end());
    offset += kRecordHeaderSize + available;
  }
}

}  // namespace zwrm::proxy
