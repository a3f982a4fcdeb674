#include "host/proxy/client_hello.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <memory>
#include <string_view>
#include <vector>

namespace zwrm::proxy {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Status = ClientHelloInfo::Status;

struct SslContextDeleter {
  void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
};
struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

struct OpenSslOptions {
  const char* server_name = nullptr;
  int max_version = 0;  // 0: the library's highest
  Bytes alpn;           // wire-format ALPN list, or empty for none
};

// Returns the first flight an OpenSSL client writes: its ClientHello in one
// or more TLS records. Nothing is sent anywhere, because the bytes stay in a
// memory BIO.
Bytes openssl_client_hello(const OpenSslOptions& options) {
  std::unique_ptr<SSL_CTX, SslContextDeleter> context(SSL_CTX_new(TLS_client_method()));
  if (!context) return {};
  if (options.max_version != 0) SSL_CTX_set_max_proto_version(context.get(), options.max_version);
  std::unique_ptr<SSL, SslDeleter> ssl(SSL_new(context.get()));
  if (!ssl) return {};

  BIO* input = BIO_new(BIO_s_mem());
  BIO* output = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), input, output);  // ssl owns both from here
  if (options.server_name) SSL_set_tlsext_host_name(ssl.get(), options.server_name);
  if (!options.alpn.empty()) SSL_set_alpn_protos(ssl.get(), options.alpn.data(), options.alpn.size());

  const int result = SSL_connect(ssl.get());
  EXPECT_EQ(SSL_get_error(ssl.get(), result), SSL_ERROR_WANT_READ);
  Bytes hello(BIO_pending(output));
  const int read = BIO_read(output, hello.data(), static_cast<int>(hello.size()));
  EXPECT_EQ(read, static_cast<int>(hello.size()));
  return hello;
}

void append_u16(Bytes& out, std::size_t value) {
  out.push_back(static_cast<std::uint8_t>(value >> 8));
  out.push_back(static_cast<std::uint8_t>(value));
}

void append_u24(Bytes& out, std::size_t value) {
  out.push_back(static_cast<std::uint8_t>(value >> 16));
  append_u16(out, value);
}

void append(Bytes& out, const Bytes& bytes) { out.insert(out.end(), bytes.begin(), bytes.end()); }

void append(Bytes& out, std::string_view text) { out.insert(out.end(), text.begin(), text.end()); }

// Wraps a handshake message in records of at most fragment_size bytes each.
Bytes to_records(const Bytes& message, std::size_t fragment_size) {
  Bytes records;
  for (std::size_t offset = 0; offset < message.size(); offset += fragment_size) {
    const std::size_t length = std::min(fragment_size, message.size() - offset);
    records.insert(records.end(), {22, 0x03, 0x01});
    append_u16(records, length);
    records.insert(records.end(), message.begin() + offset, message.begin() + offset + length);
  }
  return records;
}

// Concatenates the payloads of well-formed handshake records.
Bytes handshake_message(const Bytes& records) {
  Bytes message;
  std::size_t offset = 0;
  while (offset + 5 <= records.size()) {
    const std::size_t length = (std::size_t{records[offset + 3]} << 8) | records[offset + 4];
    message.insert(message.end(), records.begin() + offset + 5, records.begin() + offset + 5 + length);
    offset += 5 + length;
  }
  return message;
}

std::size_t record_count(const Bytes& records) {
  std::size_t count = 0;
  for (std::size_t offset = 0; offset + 5 <= records.size(); ++count) {
    offset += 5 + ((std::size_t{records[offset + 3]} << 8) | records[offset + 4]);
  }
  return count;
}

Bytes server_name_extension(std::string_view name) {
  Bytes extension = {0x00, 0x00};
  append_u16(extension, name.size() + 5);
  append_u16(extension, name.size() + 3);
  extension.push_back(0);  // host_name
  append_u16(extension, name.size());
  append(extension, name);
  return extension;
}

Bytes extension(std::uint16_t type, const Bytes& data) {
  Bytes out;
  append_u16(out, type);
  append_u16(out, data.size());
  append(out, data);
  return out;
}

// A hand-made TLS 1.2-style ClientHello body with one cipher suite, followed
// by extensions (the extensions block is left out when it is nullopt).
Bytes client_hello_body(const std::optional<Bytes>& extensions) {
  Bytes body = {0x03, 0x03};
  body.insert(body.end(), 32, 0xab);  // random
  body.push_back(32);                 // session id
  body.insert(body.end(), 32, 0xcd);
  append_u16(body, 2);  // cipher suites
  body.insert(body.end(), {0x13, 0x01});
  body.insert(body.end(), {0x01, 0x00});  // compression methods: null
  if (extensions) {
    append_u16(body, extensions->size());
    append(body, *extensions);
  }
  return body;
}

Bytes handshake(std::uint8_t type, const Bytes& body) {
  Bytes message = {type};
  append_u24(message, body.size());
  append(message, body);
  return message;
}

Bytes hello_record(const std::optional<Bytes>& extensions) {
  return to_records(handshake(1, client_hello_body(extensions)), 16384);
}

ClientHelloInfo parse(const Bytes& data) { return parse_client_hello(data); }

Status status_of(const Bytes& data) { return parse(data).status; }

// Checks that every strict prefix needs more bytes and the whole gives the
// expected result.
void expect_complete_only_at_end(const Bytes& records, Status status, std::string_view server_name) {
  for (std::size_t size = 0; size < records.size(); ++size) {
    const ClientHelloInfo info = parse_client_hello(std::span(records).first(size));
    ASSERT_EQ(info.status, Status::kNeedMore) << "prefix of " << size << " of " << records.size() << " bytes";
  }
  const ClientHelloInfo info = parse(records);
  EXPECT_EQ(info.status, status);
  EXPECT_EQ(info.server_name, server_name);
}

TEST(ClientHello, ParsesOpenSslHello) {
  const Bytes hello = openssl_client_hello({.server_name = "api.example.com"});
  ASSERT_GT(hello.size(), 5u);
  EXPECT_EQ(record_count(hello), 1u);
  const ClientHelloInfo info = parse(hello);
  EXPECT_EQ(info.status, Status::kServerName);
  EXPECT_EQ(info.server_name, "api.example.com");
}

TEST(ClientHello, ParsesOpenSslTls12Hello) {
  const Bytes hello = openssl_client_hello({.server_name = "legacy.example.org", .max_version = TLS1_2_VERSION});
  const ClientHelloInfo info = parse(hello);
  EXPECT_EQ(info.status, Status::kServerName);
  EXPECT_EQ(info.server_name, "legacy.example.org");
}

TEST(ClientHello, KeepsNameAsSent) {
  const Bytes hello = openssl_client_hello({.server_name = "Mixed.Example.COM."});
  const ClientHelloInfo info = parse(hello);
  EXPECT_EQ(info.status, Status::kServerName);
  EXPECT_EQ(info.server_name, "Mixed.Example.COM.");
}

TEST(ClientHello, ReportsMissingServerName) {
  const Bytes hello = openssl_client_hello({});
  const ClientHelloInfo info = parse(hello);
  EXPECT_EQ(info.status, Status::kNoServerName);
  EXPECT_EQ(info.server_name, "");
}

TEST(ClientHello, NeedsMoreUntilComplete) {
  expect_complete_only_at_end(openssl_client_hello({.server_name = "api.example.com"}), Status::kServerName,
                              "api.example.com");
  expect_complete_only_at_end(openssl_client_hello({}), Status::kNoServerName, "");
}

TEST(ClientHello, ReassemblesSmallRecords) {
  const Bytes message = handshake_message(openssl_client_hello({.server_name = "api.example.com"}));
  for (std::size_t fragment_size : {1u, 2u, 3u, 7u, 100u, 16384u}) {
    SCOPED_TRACE(fragment_size);
    const Bytes records = to_records(message, fragment_size);
    expect_complete_only_at_end(records, Status::kServerName, "api.example.com");
  }
}

TEST(ClientHello, ReassemblesOpenSslRecords) {
  // An ALPN list of about 20 KiB makes OpenSSL split its ClientHello over
  // two records, as a post-quantum key share can.
  Bytes alpn;
  for (int i = 0; i < 80; ++i) {
    alpn.push_back(250);
    alpn.insert(alpn.end(), 250, static_cast<std::uint8_t>('a' + i % 26));
  }
  const Bytes hello = openssl_client_hello({.server_name = "large.example.com", .alpn = alpn});
  EXPECT_GE(record_count(hello), 2u);
  const ClientHelloInfo info = parse(hello);
  EXPECT_EQ(info.status, Status::kServerName);
  EXPECT_EQ(info.server_name, "large.example.com");
}

TEST(ClientHello, IgnoresBytesAfterHello) {
  Bytes data = openssl_client_hello({.server_name = "api.example.com"});
  data.insert(data.end(), {23, 0x03, 0x03, 0x00, 0x02, 0xff, 0xff});  // application data
  EXPECT_EQ(parse(data).server_name, "api.example.com");

  // A record that continues past the ClientHello: the hello is complete
  // before the rest of the record arrives.
  Bytes message = handshake(1, client_hello_body(server_name_extension("a.example")));
  Bytes record = {22, 0x03, 0x01};
  append_u16(record, message.size() + 100);
  append(record, message);
  EXPECT_EQ(parse(record).server_name, "a.example");
}

TEST(ClientHello, RecognisesOtherProtocols) {
  EXPECT_EQ(status_of({'G', 'E', 'T', ' ', '/'}), Status::kNotTls);
  EXPECT_EQ(status_of({'S', 'S', 'H', '-', '2'}), Status::kNotTls);
  EXPECT_EQ(status_of({23, 0x03, 0x03, 0x00, 0x01, 0x00}), Status::kNotTls);  // application data
  EXPECT_EQ(status_of({0x80, 0x2e, 0x01, 0x00, 0x02}), Status::kNotTls);       // SSLv2-style hello
  EXPECT_EQ(status_of({'G'}), Status::kNotTls);
  EXPECT_EQ(status_of({}), Status::kNeedMore);
}

TEST(ClientHello, HandMadeHelloParses) {
  const ClientHelloInfo info = parse(hello_record(server_name_extension("hand.example")));
  EXPECT_EQ(info.status, Status::kServerName);
  EXPECT_EQ(info.server_name, "hand.example");

  // TLS 1.0 to 1.2 allow a ClientHello without an extensions block.
  EXPECT_EQ(status_of(hello_record(std::nullopt)), Status::kNoServerName);
  EXPECT_EQ(status_of(hello_record(Bytes{})), Status::kNoServerName);

  // Other extensions before and after server_name are skipped.
  Bytes extensions = extension(0x002b, {0x02, 0x03, 0x04});
  append(extensions, server_name_extension("middle.example"));
  append(extensions, extension(0xfe0d, {}));
  EXPECT_EQ(parse(hello_record(extensions)).server_name, "middle.example");

  // A name of another type beside the host_name is skipped.
  Bytes list = {0x01, 0x00, 0x02, 'x', 'y', 0x00, 0x00, 0x03, 'a', '.', 'b'};
  Bytes data;
  append_u16(data, list.size());
  append(data, list);
  EXPECT_EQ(parse(hello_record(extension(0, data))).server_name, "a.b");
}

TEST(ClientHello, RejectsBadRecords) {
  Bytes hello = hello_record(server_name_extension("a.example"));

  Bytes old_version = hello;
  old_version[1] = 0x02;
  EXPECT_EQ(status_of(old_version), Status::kMalformed);
  EXPECT_EQ(status_of({22, 0x02}), Status::kMalformed);

  EXPECT_EQ(status_of({22, 0x03, 0x01, 0x00, 0x00}), Status::kMalformed);  // empty record
  EXPECT_EQ(status_of({22, 0x03, 0x01, 0x48, 0x01}), Status::kMalformed);  // 18433 bytes
  EXPECT_EQ(status_of({22, 0x03, 0x01, 0x48, 0x00}), Status::kNeedMore);   // 18432 bytes

  // Another record type while the ClientHello is incomplete.
  const Bytes message = handshake_message(hello);
  Bytes interrupted = to_records(Bytes(message.begin(), message.begin() + 10), 16384);
  append(interrupted, Bytes{21, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28});  // alert
  append(interrupted, to_records(Bytes(message.begin() + 10, message.end()), 16384));
  EXPECT_EQ(status_of(interrupted), Status::kMalformed);
  EXPECT_EQ(status_of(Bytes(interrupted.begin(), interrupted.begin() + 16)), Status::kMalformed);
}

TEST(ClientHello, RejectsOtherHandshakeMessages) {
  EXPECT_EQ(status_of(to_records(handshake(2, client_hello_body(std::nullopt)), 16384)), Status::kMalformed);
  // Detected from the first handshake byte.
  EXPECT_EQ(status_of({22, 0x03, 0x01, 0x00, 0x40, 0x02}), Status::kMalformed);
}

TEST(ClientHello, RejectsOversizedHello) {
  // A declared length that cannot fit in kMaxClientHello.
  Bytes huge = {22, 0x03, 0x01, 0x00, 0x04, 0x01};
  append_u24(huge, kMaxClientHello);
  EXPECT_EQ(status_of(huge), Status::kMalformed);

  // A length that fits on its own, but not with the record headers of
  // one-byte records.
  Bytes body = client_hello_body(server_name_extension("a.example"));
  body.resize(20000);
  const Bytes records = to_records(handshake(1, body), 1);
  ASSERT_GT(records.size(), kMaxClientHello);
  EXPECT_EQ(status_of(records), Status::kMalformed);
  EXPECT_EQ(status_of(Bytes(records.begin(), records.begin() + kMaxClientHello)), Status::kMalformed);
  EXPECT_EQ(status_of(Bytes(records.begin(), records.begin() + 60000)), Status::kNeedMore);
}

// Wraps a changed body into a record, with the handshake length fitted to it.
Status body_status(const Bytes& body) { return status_of(to_records(handshake(1, body), 16384)); }

TEST(ClientHello, RejectsBadFixedFields) {
  const Bytes body = client_hello_body(server_name_extension("a.example"));

  EXPECT_EQ(body_status(Bytes(body.begin(), body.begin() + 20)), Status::kMalformed);  // ends in random

  Bytes long_session = body;
  long_session[34] = 33;
  EXPECT_EQ(body_status(long_session), Status::kMalformed);

  Bytes session_overrun = Bytes(body.begin(), body.begin() + 35);
  session_overrun[34] = 32;
  EXPECT_EQ(body_status(session_overrun), Status::kMalformed);

  const std::size_t suites = 2 + 32 + 1 + 32;  // offset of the cipher suites length
  Bytes odd_suites = body;
  odd_suites[suites + 1] = 1;
  EXPECT_EQ(body_status(odd_suites), Status::kMalformed);
  Bytes no_suites = body;
  no_suites[suites + 1] = 0;
  EXPECT_EQ(body_status(no_suites), Status::kMalformed);

  Bytes no_compression = body;
  no_compression[suites + 4] = 0;
  EXPECT_EQ(body_status(no_compression), Status::kMalformed);

  Bytes trailing = body;
  trailing.push_back(0);
  EXPECT_EQ(body_status(trailing), Status::kMalformed);

  Bytes short_extensions = body;
  short_extensions.pop_back();
  EXPECT_EQ(body_status(short_extensions), Status::kMalformed);

  Bytes one_byte_extensions = Bytes(body.begin(), body.begin() + suites + 6);
  one_byte_extensions.push_back(0);
  EXPECT_EQ(body_status(one_byte_extensions), Status::kMalformed);
}

TEST(ClientHello, RejectsBadExtensions) {
  // An extension whose length runs past the block.
  Bytes overrun = {0x00, 0x2b, 0x00, 0x09, 0x02};
  EXPECT_EQ(status_of(hello_record(overrun)), Status::kMalformed);
  // A partial extension header.
  EXPECT_EQ(status_of(hello_record(Bytes{0x00, 0x2b, 0x00})), Status::kMalformed);

  // Two server_name extensions.
  Bytes twice = server_name_extension("a.example");
  append(twice, server_name_extension("b.example"));
  EXPECT_EQ(status_of(hello_record(twice)), Status::kMalformed);
}

Status server_name_status(const Bytes& data) { return status_of(hello_record(extension(0, data))); }

TEST(ClientHello, RejectsBadServerNames) {
  EXPECT_EQ(server_name_status({}), Status::kMalformed);                                      // no list
  EXPECT_EQ(server_name_status({0x00, 0x00}), Status::kMalformed);                            // empty list
  EXPECT_EQ(server_name_status({0x00, 0x03, 0x00, 0x00, 0x00}), Status::kMalformed);          // empty name
  EXPECT_EQ(server_name_status({0x00, 0x05, 0x00, 0x00, 0x03, 'a', 'b'}), Status::kMalformed);  // short name
  EXPECT_EQ(server_name_status({0x00, 0x06, 0x00, 0x00, 0x01, 'a'}), Status::kMalformed);     // list overrun
  EXPECT_EQ(server_name_status({0x00, 0x04, 0x00, 0x00, 0x01, 'a', 'z'}), Status::kMalformed);  // bytes after list
  EXPECT_EQ(server_name_status({0x00, 0x02, 0x00, 0x00}), Status::kMalformed);                // partial entry
  EXPECT_EQ(server_name_status({0x00, 0x04, 0x01, 0x00, 0x01, 'a'}), Status::kMalformed);     // no host_name
  EXPECT_EQ(server_name_status({0x00, 0x08, 0x00, 0x00, 0x01, 'a', 0x00, 0x00, 0x01, 'b'}),
            Status::kMalformed);  // two host_names
  EXPECT_EQ(server_name_status({0x00, 0x04, 0x00, 0x00, 0x01, 'a'}), Status::kServerName);
}

}  // namespace
}  // namespace zwrm::proxy
