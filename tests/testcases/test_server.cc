// zwrm-test-server: the upstream hosts for proxy tests. Tests start it
// inside a network namespace of their own (see tests/integration/
// test_network.h), so every request the proxy forwards ends here and nothing
// leaves the machine.
//
//   --http PORT     HTTP/1.1: GET / returns "zwrm test server\nhost: HOST\n",
//                   GET /bytes/N returns N bytes (N <= 1 GiB), else 404
//   --https PORT    the same over TLS, with a self-signed certificate
//                   (CN zwrm-test, EC P-256) generated at start-up
//   --tcp PORT      echoes every byte back
//   --udp PORT      sends every datagram back to its sender
//   --address ADDR  numeric IPv4 or IPv6 address to bind (default 0.0.0.0)
//   --log FILE      appends one line per event (default stderr)
//   --cert-out FILE writes the certificate as PEM, for clients that verify
//
// It prints "ready" on stdout once every listener is bound, serves each
// connection on its own thread and exits on SIGTERM or SIGINT.
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace {

constexpr std::size_t kMaxBodyBytes = std::size_t{1} << 30;
constexpr std::size_t kMaxHeadBytes = 64 * 1024;

struct Options {
  std::string address = "0.0.0.0";
  std::optional<int> http_port, https_port, tcp_port, udp_port;
  std::string log_path;
  std::string cert_path;
};

// Event log shared by all threads. Each line is flushed at once, so a test
// can read the file while the server runs.
class Log {
 public:
  void open(const std::string& path) {
    if (path.empty()) return;
    file_ = std::fopen(path.c_str(), "a");
    if (file_ == nullptr) throw std::runtime_error("cannot open log " + path + ": " + std::strerror(errno));
  }

  void write(const std::string& line) {
    std::lock_guard lock(mutex_);
    std::fprintf(file_, "%s\n", line.c_str());
    std::fflush(file_);
  }

 private:
  std::mutex mutex_;
  std::FILE* file_ = stderr;
};

Log event_log;

std::string openssl_error() {
  char text[256] = "unknown OpenSSL error";
  if (const unsigned long code = ERR_get_error(); code != 0) ERR_error_string_n(code, text, sizeof text);
  return text;
}

std::string peer_name(const sockaddr_storage& peer, socklen_t size) {
  char host[NI_MAXHOST];
  char port[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&peer), size, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "?";
  }
  return std::string(host) + ":" + port;
}

// Returns a socket of type bound to address:port, listening when it is a
// stream socket.
int bind_socket(const std::string& address, int port, int type) {
  addrinfo hints{};
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = type;
  addrinfo* found = nullptr;
  if (const int status = ::getaddrinfo(address.c_str(), std::to_string(port).c_str(), &hints, &found); status != 0) {
    throw std::runtime_error("invalid address " + address + ": " + ::gai_strerror(status));
  }
  const int fd = ::socket(found->ai_family, type | SOCK_CLOEXEC, 0);
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  const bool bound = fd >= 0 && ::bind(fd, found->ai_addr, found->ai_addrlen) == 0 &&
                     (type != SOCK_STREAM || ::listen(fd, 128) == 0);
  ::freeaddrinfo(found);
  if (!bound) {
    throw std::runtime_error("cannot bind " + address + " port " + std::to_string(port) + ": " + std::strerror(errno));
  }
  return fd;
}

// One accepted connection, plain or TLS. Closes the socket when destroyed.
class Stream {
 public:
  Stream(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  ~Stream() {
    if (ssl_ != nullptr) {
      SSL_shutdown(ssl_);
      SSL_free(ssl_);
    }
    ::close(fd_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Reads up to size bytes. Returns 0 at the end of the stream or on error.
  std::size_t read(char* data, std::size_t size) {
    if (ssl_ != nullptr) {
      std::size_t count = 0;
      return SSL_read_ex(ssl_, data, size, &count) == 1 ? count : 0;
    }
    ssize_t count;
    do count = ::read(fd_, data, size);
    while (count < 0 && errno == EINTR);
    return count > 0 ? static_cast<std::size_t>(count) : 0;
  }

  // Writes all of data. Returns false when the peer is gone.
  bool write(std::string_view data) {
    while (!data.empty()) {
      std::size_t count = 0;
      if (ssl_ != nullptr) {
        if (SSL_write_ex(ssl_, data.data(), data.size(), &count) != 1) return false;
      } else {
        const ssize_t written = ::write(fd_, data.data(), data.size());
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return false;
        count = static_cast<std::size_t>(written);
      }
      data.remove_prefix(count);
    }
    return true;
  }

 private:
  int fd_;
  SSL* ssl_;
};

struct Request {
  std::string method;
  std::string target;
  std::string host;
  std::size_t content_length = 0;
  bool keep_alive = true;
};

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Parses a request head without its final blank line. Returns nullopt when
// the request line is invalid.
std::optional<Request> parse_head(std::string_view head) {
  std::size_t end = head.find("\r\n");
  const std::string_view line = head.substr(0, end);
  const std::size_t first = line.find(' ');
  const std::size_t last = line.rfind(' ');
  if (first == std::string_view::npos || first == last) return std::nullopt;
  Request request;
  request.method = line.substr(0, first);
  request.target = line.substr(first + 1, last - first - 1);
  request.keep_alive = line.substr(last + 1) == "HTTP/1.1";

  while (end != std::string_view::npos) {
    const std::size_t start = end + 2;
    end = head.find("\r\n", start);
    const std::string_view field = head.substr(start, end == std::string_view::npos ? end : end - start);
    const std::size_t colon = field.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = field.substr(0, colon);
    const std::string_view value = trim(field.substr(colon + 1));
    if (equals_ignoring_case(name, "Host")) request.host = value;
    if (equals_ignoring_case(name, "Content-Length")) request.content_length = std::stoull(std::string(value));
    if (equals_ignoring_case(name, "Connection")) request.keep_alive = !equals_ignoring_case(value, "close");
    // A chunked request body is not parsed, so the connection cannot carry
    // another request after it.
    if (equals_ignoring_case(name, "Transfer-Encoding")) request.keep_alive = false;
  }
  return request;
}

// Reads the next request head from stream and discards its body. buffer
// keeps the bytes read past it. Returns nullopt at the end of the stream, or
// on an invalid request with *invalid set to the reason.
std::optional<Request> read_request(Stream& stream, std::string& buffer, std::string* invalid) {
  std::size_t head_end;
  while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
    if (buffer.size() > kMaxHeadBytes) {
      *invalid = "request head over " + std::to_string(kMaxHeadBytes) + " bytes";
      return std::nullopt;
    }
    char chunk[16 * 1024];
    const std::size_t count = stream.read(chunk, sizeof chunk);
    if (count == 0) return std::nullopt;
    buffer.append(chunk, count);
  }
  std::optional<Request> request;
  try {
    request = parse_head(std::string_view(buffer).substr(0, head_end));
  } catch (const std::logic_error&) {  // thrown by std::stoull
    *invalid = "invalid Content-Length";
    return std::nullopt;
  }
  if (!request) {
    *invalid = "invalid request line";
    return std::nullopt;
  }
  buffer.erase(0, head_end + 4);

  std::size_t body_left = request->content_length;
  while (body_left > 0) {
    if (buffer.empty()) {
      char chunk[16 * 1024];
      const std::size_t count = stream.read(chunk, std::min(sizeof chunk, body_left));
      if (count == 0) return std::nullopt;
      body_left -= count;
      continue;
    }
    const std::size_t discarded = std::min(buffer.size(), body_left);
    buffer.erase(0, discarded);
    body_left -= discarded;
  }
  return request;
}

// Returns the path of a request target, also in the absolute form
// ("http://host/path") that a client sends to a proxy.
std::string_view target_path(std::string_view target) {
  if (const std::size_t scheme = target.find("://"); scheme != std::string_view::npos) {
    const std::size_t path = target.find('/', scheme + 3);
    return path == std::string_view::npos ? "/" : target.substr(path);
  }
  return target;
}

// Returns N of a /bytes/N path, or nullopt when the path is not one or N is
// over the limit.
std::optional<std::size_t> byte_count(std::string_view path) {
  constexpr std::string_view kPrefix = "/bytes/";
  if (!path.starts_with(kPrefix)) return std::nullopt;
  const std::string_view digits = path.substr(kPrefix.size());
  if (digits.empty() || digits.size() > 10 || digits.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  const std::size_t count = std::stoull(std::string(digits));
  return count <= kMaxBodyBytes ? std::optional(count) : std::nullopt;
}

std::string response_head(const char* status, std::size_t length, bool keep_alive) {
  return std::string("HTTP/1.1 ") + status + "\r\nContent-Type: text/plain\r\nContent-Length: " +
         std::to_string(length) + "\r\nConnection: " + (keep_alive ? "keep-alive" : "close") + "\r\n\r\n";
}

// Sends count bytes of the repeating pattern "abc...z", so a client can
// check each byte's position as well as the length.
bool send_bytes(Stream& stream, std::size_t count) {
  std::string chunk(26 * 2048, '\0');
  for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>('a' + i % 26);
  while (count > 0) {
    const std::size_t size = std::min(count, chunk.size());
    if (!stream.write(std::string_view(chunk).substr(0, size))) return false;
    count -= size;
  }
  return true;
}

bool respond(Stream& stream, const Request& request) {
  const std::string_view path = target_path(request.target);
  if (request.method == "GET" && path == "/") {
    const std::string body = "zwrm test server\nhost: " + request.host + "\n";
    return stream.write(response_head("200 OK", body.size(), request.keep_alive) + body);
  }
  if (const std::optional<std::size_t> count = byte_count(path); request.method == "GET" && count) {
    return stream.write(response_head("200 OK", *count, request.keep_alive)) && send_bytes(stream, *count);
  }
  const std::string body = "not found\n";
  return stream.write(response_head("404 Not Found", body.size(), request.keep_alive) + body);
}

void serve_http(Stream& stream, const char* scheme, const std::string& peer) {
  std::string buffer;
  while (true) {
    std::string invalid;
    const std::optional<Request> request = read_request(stream, buffer, &invalid);
    if (!request && !invalid.empty()) {
      event_log.write(std::string(scheme) + " invalid request from " + peer + ": " + invalid);
      const std::string body = invalid + "\n";
      stream.write(response_head("400 Bad Request", body.size(), false) + body);
    }
    if (!request) return;
    event_log.write(std::string(scheme) + " " + request->method + " " + request->target +
                    " host=" + (request->host.empty() ? "-" : request->host));
    if (!respond(stream, *request) || !request->keep_alive) return;
  }
}

void serve_https(int fd, SSL_CTX* context, const std::string& peer) {
  SSL* ssl = SSL_new(context);
  SSL_set_fd(ssl, fd);
  Stream stream(fd, ssl);
  if (SSL_accept(ssl) != 1) {
    event_log.write("tls handshake failed from " + peer + ": " + openssl_error());
    return;
  }
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  event_log.write(std::string("tls sni=") + (sni != nullptr ? sni : "-"));
  serve_http(stream, "https", peer);
}

void serve_tcp(int fd, const std::string& peer) {
  event_log.write("tcp connect from " + peer);
  Stream stream(fd, nullptr);
  char buffer[16 * 1024];
  while (const std::size_t count = stream.read(buffer, sizeof buffer)) {
    if (!stream.write(std::string_view(buffer, count))) return;
  }
}

enum class Protocol { kHttp, kHttps, kTcp };

// Accepts connections on listener forever, each served on its own thread.
void accept_loop(int listener, Protocol protocol, SSL_CTX* context) {
  while (true) {
    sockaddr_storage peer{};
    socklen_t size = sizeof peer;
    const int fd = ::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &size, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR) event_log.write(std::string("accept failed: ") + std::strerror(errno));
      continue;
    }
    const std::string name = peer_name(peer, size);
    std::thread([=] {
      if (protocol == Protocol::kHttp) {
        Stream stream(fd, nullptr);
        serve_http(stream, "http", name);
      } else if (protocol == Protocol::kHttps) {
        serve_https(fd, context, name);
      } else {
        serve_tcp(fd, name);
      }
    }).detach();
  }
}

void udp_loop(int fd) {
  while (true) {
    char buffer[65536];
    sockaddr_storage peer{};
    socklen_t size = sizeof peer;
    const ssize_t count = ::recvfrom(fd, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&peer), &size);
    if (count < 0) continue;
    event_log.write("udp packet from " + peer_name(peer, size) + " bytes=" + std::to_string(count));
    ::sendto(fd, buffer, static_cast<std::size_t>(count), 0, reinterpret_cast<sockaddr*>(&peer), size);
  }
}

// Returns a TLS server context with a fresh self-signed certificate, valid
// from an hour ago for one day. With cert_path, writes the certificate there.
SSL_CTX* create_tls_context(const std::string& cert_path) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* certificate = X509_new();
  if (key == nullptr || certificate == nullptr) throw std::runtime_error("cannot create a key: " + openssl_error());
  X509_set_version(certificate, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(certificate), 1);
  X509_gmtime_adj(X509_getm_notBefore(certificate), -3600);
  X509_gmtime_adj(X509_getm_notAfter(certificate), 86400);
  X509_NAME* name = X509_get_subject_name(certificate);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("zwrm-test"), -1, -1, 0);
  X509_set_issuer_name(certificate, name);
  X509_set_pubkey(certificate, key);
  if (X509_sign(certificate, key, EVP_sha256()) == 0) {
    throw std::runtime_error("cannot sign the certificate: " + openssl_error());
  }

  SSL_CTX* context = SSL_CTX_new(TLS_server_method());
  if (context == nullptr || SSL_CTX_use_certificate(context, certificate) != 1 ||
      SSL_CTX_use_PrivateKey(context, key) != 1) {
    throw std::runtime_error("cannot set up TLS: " + openssl_error());
  }
  if (!cert_path.empty()) {
    std::FILE* file = std::fopen(cert_path.c_str(), "w");
    if (file == nullptr) throw std::runtime_error("cannot write " + cert_path + ": " + std::strerror(errno));
    PEM_write_X509(file, certificate);
    std::fclose(file);
  }
  X509_free(certificate);
  EVP_PKEY_free(key);
  return context;
}

Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) throw std::runtime_error("missing value after " + std::string(flag));
    const std::string value = argv[++i];
    auto port = [&] {
      const int number = std::atoi(value.c_str());
      if (number <= 0 || number > 65535) throw std::runtime_error("invalid port " + value + " for " + std::string(flag));
      return number;
    };
    if (flag == "--http") options.http_port = port();
    else if (flag == "--https") options.https_port = port();
    else if (flag == "--tcp") options.tcp_port = port();
    else if (flag == "--udp") options.udp_port = port();
    else if (flag == "--address") options.address = value;
    else if (flag == "--log") options.log_path = value;
    else if (flag == "--cert-out") options.cert_path = value;
    else throw std::runtime_error("unknown option " + std::string(flag));
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  // Every thread inherits this mask, so only sigwait below receives SIGTERM and SIGINT.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::vector<std::thread> loops;
  try {
    const Options options = parse_options(argc, argv);
    event_log.open(options.log_path);
    const std::string& address = options.address;
    if (options.http_port) {
      loops.emplace_back(accept_loop, bind_socket(address, *options.http_port, SOCK_STREAM), Protocol::kHttp, nullptr);
    }
    if (options.https_port) {
      SSL_CTX* context = create_tls_context(options.cert_path);
      loops.emplace_back(accept_loop, bind_socket(address, *options.https_port, SOCK_STREAM), Protocol::kHttps, context);
    }
    if (options.tcp_port) {
      loops.emplace_back(accept_loop, bind_socket(address, *options.tcp_port, SOCK_STREAM), Protocol::kTcp, nullptr);
    }
    if (options.udp_port) loops.emplace_back(udp_loop, bind_socket(address, *options.udp_port, SOCK_DGRAM));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "zwrm-test-server: error: %s\n", error.what());
    std::_Exit(2);  // the listener threads never return, so they cannot be joined
  }

  event_log.write("ready");
  std::printf("ready\n");
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  event_log.write(std::string("stop on ") + ::sigabbrev_np(signal_number));
  std::_Exit(0);
}
