// Relays one TCP connection over one connection stream of a channel, on
// either side. Bytes the socket delivers leave as kTcpData frames within the
// peer's credit. kTcpData frames from the peer are written to the socket and
// credited back once written. End of data in either direction becomes a
// half-close. Used by the guest init (its proxy port, connections into the
// guest) and the supervisor (upstream connections, published ports). Never
// throws and never blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/unique_fd.h"
#include "protocol/channel.h"
#include "protocol/flow.h"
#include "protocol/frame.h"

namespace zwrm::protocol {

class SocketRelay {
 public:
  explicit SocketRelay(std::uint32_t stream) : stream_(stream) {}

  std::uint32_t stream() const { return stream_; }

  // Sets the connected, non-blocking socket. Bytes the peer sent before are
  // written to it first. Until then the owner may read them from inbound().
  void attach(UniqueFd socket);
  bool attached() const { return static_cast<bool>(socket_); }
  int fd() const { return socket_.get(); }

  // Handles a kTcpData, kEof or kCredit frame from the peer. Fails on a
  // protocol violation: data beyond the granted credit, data after end of
  // data, or credit beyond the window.
  Status on_frame(const Frame& frame);

  // Bytes the peer sent that the socket has not taken yet. The owner may
  // consume a prefix itself (a proxy reads the request head from here) and
  // then reports it with consumed().
  std::string_view inbound() const { return std::string_view(inbound_).substr(inbound_offset_); }
  void consumed(Channel& channel, std::size_t bytes);
  bool peer_sent_eof() const { return peer_eof_; }

  // Poll interest for the socket.
  bool wants_read(const Channel& channel) const;
  bool wants_write() const;

  // Reads at most limit bytes from the socket and sends them on the stream.
  // Returns the bytes read. Sends kEof at the end of the socket's data.
  std::size_t read_socket(Channel& channel, std::size_t limit);
  // Writes at most limit bytes of inbound() to the socket and grants the
  // peer that much credit. Returns the bytes written. Shuts the socket's
  // write side down once the peer sent kEof and everything is written.
  std::size_t write_socket(Channel& channel, std::size_t limit);

  // Sends bytes of the owner's own (a proxy's response) on the stream.
  // Returns false, sending nothing, when the peer's credit does not cover them.
  bool send(Channel& channel, std::span<const std::uint8_t> bytes);
  // Sends kEof: this side sends no more data.
  void send_eof(Channel& channel);

  // Whether the connection is over: both directions ended and written out,
  // or the socket failed. The owner then calls close().
  bool finished() const;
  // Why the socket failed, or empty.
  const std::string& error() const { return error_; }
  // Marks the stream closed by the peer (it sent kTcpClose).
  void peer_closed() { closed_ = true; }
  // Sends kTcpClose with reason (unless the peer closed the stream first)
  // and closes the socket. The stream id is not used again.
  void close(Channel& channel, const std::string& reason);

  std::uint64_t bytes_to_socket() const { return bytes_to_socket_; }
  std::uint64_t bytes_from_socket() const { return bytes_from_socket_; }

 private:
  void fail_socket(const char* what);

  std::uint32_t stream_;
  UniqueFd socket_;
  std::string inbound_;
  std::size_t inbound_offset_ = 0;  // bytes at the start of inbound_ already consumed
  ReceiveWindow window_;
  SendCredit credit_;
  bool peer_eof_ = false;      // the peer sends no more data
  bool socket_eof_ = false;    // the socket delivered its last byte, and kEof went out
  bool write_shut_ = false;    // the socket's write side is shut down
  bool eof_sent_ = false;
  bool closed_ = false;        // kTcpClose was sent or received
  std::string error_;
  std::uint64_t bytes_to_socket_ = 0;
  std::uint64_t bytes_from_socket_ = 0;
};

}  // namespace zwrm::protocol
