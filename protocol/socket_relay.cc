#include "protocol/socket_relay.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "protocol/message.h"

namespace zwrm::protocol {

namespace {

constexpr std::size_t kReadChunk = 32 * 1024;

}  // namespace

void SocketRelay::attach(UniqueFd socket) { socket_ = std::move(socket); }

Status SocketRelay::on_frame(const Frame& frame) {
  switch (frame.type) {
    case FrameType::kTcpData:
      if (peer_eof_) return fail("protocol violation: connection data after its end on stream " + std::to_string(stream_));
      if (auto received = window_.receive(frame.payload.size()); !received) return received;
      // Compacts only when the consumed prefix is most of the buffer, so a
      // steady stream costs one copy per byte, not one per write.
      if (inbound_offset_ > 0 && inbound_offset_ >= inbound_.size() / 2) {
        inbound_.erase(0, inbound_offset_);
        inbound_offset_ = 0;
      }
      inbound_.append(frame.payload.begin(), frame.payload.end());
      return {};
    case FrameType::kEof: {
      auto eof = decode_eof(frame.payload);
      if (!eof) return tl::unexpected(eof.error());
      if (eof->kind != FrameType::kTcpData) return fail("protocol violation: eof of a process stream kind on a connection");
      peer_eof_ = true;
      return {};
    }
    case FrameType::kCredit: {
      auto credit = decode_credit(frame.payload);
      if (!credit) return tl::unexpected(credit.error());
      if (credit->kind != FrameType::kTcpData) return fail("protocol violation: credit of a process stream kind on a connection");
      return credit_.grant(credit->bytes);
    }
    default:
      return fail(std::string("protocol violation: unexpected ") + frame_type_name(frame.type) +
                  " frame on connection stream " + std::to_string(stream_));
  }
}

void SocketRelay::consumed(Channel& channel, std::size_t bytes) {
  bytes = std::min(bytes, inbound().size());
  inbound_offset_ += bytes;
  if (inbound_offset_ == inbound_.size()) {
    inbound_.clear();
    inbound_offset_ = 0;
  }
  std::uint32_t grant = window_.consume(bytes);
  if (inbound().empty()) grant += window_.flush_credit();
  if (grant > 0 && !closed_) channel.send(FrameType::kCredit, stream_, encode(Credit{FrameType::kTcpData, grant}));
}

bool SocketRelay::wants_read(const Channel& channel) const {
  return socket_ && !socket_eof_ && !closed_ && error_.empty() && credit_.available() > 0 &&
         channel.pending_bytes() < Channel::kMaxPendingBytes;
}

bool SocketRelay::wants_write() const {
  return socket_ && !closed_ && error_.empty() && (!inbound().empty() || (peer_eof_ && !write_shut_));
}

std::size_t SocketRelay::read_socket(Channel& channel, std::size_t limit) {
  std::uint8_t buffer[kReadChunk];
  const std::size_t size = std::min({sizeof buffer, limit, static_cast<std::size_t>(credit_.available())});
  if (size == 0) return 0;
  const ssize_t count = ::read(socket_.get(), buffer, size);
  if (count > 0) {
    credit_.spend(static_cast<std::size_t>(count));
    channel.send(FrameType::kTcpData, stream_, {buffer, static_cast<std::size_t>(count)});
    bytes_from_socket_ += static_cast<std::uint64_t>(count);
    return static_cast<std::size_t>(count);
  }
  if (count < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  if (count < 0) {
    fail_socket("reading from the connection failed");
    return 0;
  }
  socket_eof_ = true;
  ::shutdown(socket_.get(), SHUT_RD);
  send_eof(channel);
  return 0;
}

std::size_t SocketRelay::write_socket(Channel& channel, std::size_t limit) {
  std::size_t written = 0;
  const std::string_view pending = inbound();
  if (!pending.empty() && limit > 0) {
    const ssize_t count = ::send(socket_.get(), pending.data(), std::min(limit, pending.size()), MSG_NOSIGNAL);
    if (count < 0 && errno != EAGAIN && errno != EINTR) {
      fail_socket("writing to the connection failed");
      return 0;
    }
    if (count > 0) {
      written = static_cast<std::size_t>(count);
      bytes_to_socket_ += written;
      consumed(channel, written);
    }
  }
  if (inbound().empty() && peer_eof_ && !write_shut_) {
    write_shut_ = true;
    ::shutdown(socket_.get(), SHUT_WR);
  }
  return written;
}

bool SocketRelay::send(Channel& channel, std::span<const std::uint8_t> bytes) {
  if (bytes.size() > credit_.available() || closed_) return false;
  credit_.spend(bytes.size());
  while (!bytes.empty()) {
    const std::size_t size = std::min<std::size_t>(bytes.size(), kMaxPayload);
    channel.send(FrameType::kTcpData, stream_, bytes.first(size));
    bytes = bytes.subspan(size);
  }
  return true;
}

void SocketRelay::send_eof(Channel& channel) {
  if (closed_ || eof_sent_) return;
  eof_sent_ = true;
  channel.send(FrameType::kEof, stream_, encode(Eof{FrameType::kTcpData}));
}

bool SocketRelay::finished() const {
  if (closed_ || !error_.empty()) return true;
  return socket_eof_ && peer_eof_ && inbound().empty() && write_shut_;
}

void SocketRelay::close(Channel& channel, const std::string& reason) {
  if (!closed_) channel.send(FrameType::kTcpClose, stream_, encode(TcpClose{reason}));
  closed_ = true;
  socket_.reset();
}

void SocketRelay::fail_socket(const char* what) {
  error_ = std::string(what) + ": " + std::strerror(errno);
}

}  // namespace zwrm::protocol
