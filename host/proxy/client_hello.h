// Extraction of the server name (SNI) from the first bytes a client sends
// through a CONNECT tunnel, so the proxy can check that a TLS connection is
// for the host the tunnel was allowed for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace zwrm::proxy {

// A ClientHello larger than this (record headers included) is rejected as
// kMalformed. Real ones, post-quantum key shares included, stay far below.
inline constexpr std::size_t kMaxClientHello = 64 * 1024;

struct ClientHelloInfo {
  enum class Status : std::uint8_t {
    kNeedMore,    // a TLS handshake record has started but the ClientHello is incomplete
    kServerName,  // a ClientHello with a host_name entry in server_name
    kNoServerName,// a complete ClientHello without a server_name extension
    kNotTls,      // the first byte is not a TLS handshake record: another protocol
    kMalformed,   // a TLS handshake record that is not a valid ClientHello
  };
  Status status = Status::kNeedMore;
  std::string server_name;  // kServerName: as sent, not normalised
};

// Parses the start of a client's byte stream. Handles a ClientHello split
// over several TLS records (fragmentation) and over several calls (call
// again with the longer buffer). Never reads past data. Empty data gives
// kNeedMore. A server_name extension must contain exactly one host_name
// entry, and a ClientHello must not contain two server_name extensions;
// otherwise the result is kMalformed.
ClientHelloInfo parse_client_hello(std::span<const std::uint8_t> data);

}  // namespace zwrm::proxy
