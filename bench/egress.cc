// bench/egress: what the egress proxy costs.
//
// Starts an HTTP server on the host's loopback, then measures the same two
// things three ways. The first is from the host directly, the second from a
// guest of the debian template through the run's egress proxy. The third is
// inside the guest against a server on its own loopback, which is the
// guest's own cost without the proxy. One large download gives the
// throughput; many small requests, each on a new connection, give the
// connections per second. The guest side includes everything a guest pays:
// its TCP stack (under TCG where KVM is not usable), the control channel,
// the proxy's policy check and the relay. The run's bandwidth caps are
// lifted, so they do not set the figure.
//
// usage: bench_egress [MIB] [CONNECTIONS]   (default 256 MiB and 300;
// needs the kernel and debian template cached, as after the test suite)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "host/sys/files.h"
#include "host/sys/paths.h"
#include "host/sys/process.h"

namespace {

using namespace zwrm;
using Seconds = std::chrono::duration<double>;

// Serves GET /bytes/N (N zero bytes) and anything else as a short body, one
// request per connection, one thread per connection.
class Server {
 public:
  Server() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(listener_, 512) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      std::perror("bench/egress: cannot listen on 127.0.0.1");
      std::exit(1);
    }
    port_ = ntohs(address.sin_port);
    std::thread([this] { accept_loop(); }).detach();
  }

  int port() const { return port_; }

 private:
  void accept_loop() {
    for (;;) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) std::thread([fd] { serve(fd); }).detach();
    }
  }

  static void serve(int fd) {
    std::string head;
    char buffer[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      const ssize_t count = ::read(fd, buffer, sizeof buffer);
      if (count <= 0) {
        ::close(fd);
        return;
      }
      head.append(buffer, static_cast<std::size_t>(count));
    }
    unsigned long long size = 2;
    const std::size_t bytes_at = head.find("/bytes/");
    if (bytes_at != std::string::npos && bytes_at < head.find("\r\n")) size = std::strtoull(head.c_str() + bytes_at + 7, nullptr, 10);
    const std::string response_head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(size) +
                                      "\r\nConnection: close\r\n\r\n";
    bool ok = ::send(fd, response_head.data(), response_head.size(), MSG_NOSIGNAL) > 0;
    static const std::vector<char> zeros(1 << 20, 0);
    while (ok && size > 0) {
      const std::size_t chunk = std::min<unsigned long long>(size, zeros.size());
      const ssize_t sent = ::send(fd, zeros.data(), chunk, MSG_NOSIGNAL);
      ok = sent > 0;
      if (ok) size -= static_cast<unsigned long long>(sent);
    }
    ::close(fd);
  }

  int listener_ = -1;
  int port_ = 0;
};

// Sends GET path to the server directly and returns the bytes received.
std::uint64_t get_direct(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::uint64_t total = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    (void)::write(fd, request.data(), request.size());
    static std::vector<char> buffer(1 << 20);
    ssize_t count = 0;
    while ((count = ::read(fd, buffer.data(), buffer.size())) > 0) total += static_cast<std::uint64_t>(count);
  }
  ::close(fd);
  return total;
}

// The guest side: the same requests through the proxy at 127.0.0.1:3128,
// then to a server on the guest's own loopback, which shows what the guest
// alone costs (its CPU, under TCG where KVM is not usable). Prints "BYTES
// PROXIED_DOWNLOAD PROXIED_CONNECTIONS LOCAL_DOWNLOAD LOCAL_CONNECTIONS",
// the last four in seconds.
constexpr const char* kGuestScript = R"(
import socket, sys, threading, time
port, size, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def serve(listener):
    zeros = bytes(1 << 20)
    while True:
        connection, _ = listener.accept()
        head = b''
        while b'\r\n\r\n' not in head: head += connection.recv(4096)
        path = head.split(b' ')[1].decode()
        length = int(path.rsplit('/', 1)[1]) if '/bytes/' in path else 2
        connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % length)
        while length > 0:
            length -= connection.send(zeros[:min(length, len(zeros))])
        connection.close()
def get(address, request):
    s = socket.create_connection(address)
    s.sendall(request)
    total = 0
    while True:
        data = s.recv(1 << 20)
        if not data: break
        total += len(data)
    s.close()
    return total
def measure(address, target):
    host = target[len('http://'):] or '127.0.0.1'
    request = lambda path: ('GET %s%s HTTP/1.1\r\nHost: %s\r\n\r\n' % (target, path, host)).encode()
    start = time.monotonic(); got = get(address, request('/bytes/%d' % size)); download = time.monotonic() - start
    start = time.monotonic()
    for _ in range(count): get(address, request('/'))
    return got, download, time.monotonic() - start
listener = socket.create_server(('127.0.0.1', 0))
threading.Thread(target=serve, args=(listener,), daemon=True).start()
got, proxied_download, proxied_connections = measure(('127.0.0.1', 3128), 'http://127.0.0.1:%d' % port)
_, local_download, local_connections = measure(listener.getsockname(), '')
print(got, proxied_download, proxied_connections, local_download, local_connections)
)";void run_zwrm(const std::string& zwrm, std::vector<std::string> args) {
  args.insert(args.begin(), zwrm);
  auto result = sys::run_process(args);
  if (!result || !result->succeeded()) {
    std::fprintf(stderr, "bench/egress: %s failed: %s\n", args[1].c_str(),
                 result ? (result->describe() + "\n" + result->output).c_str() : result.error().message.c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const long mib = argc > 1 ? std::atol(argv[1]) : 256;
  const long connections = argc > 2 ? std::atol(argv[2]) : 300;
  if (mib < 1 || connections < 1) {
    std::fprintf(stderr, "usage: bench_egress [MIB] [CONNECTIONS]  (both >= 1)\n");
    return 2;
  }
  const std::uint64_t size = static_cast<std::uint64_t>(mib) << 20;

  auto paths = sys::Paths::resolve();
  if (!paths) {
    std::fprintf(stderr, "bench/egress: %s\n", paths.error().message.c_str());
    return 1;
  }
  char scratch[] = "/tmp/zwrm-bench-egress.XXXXXX";
  if (::mkdtemp(scratch) == nullptr) return 1;
  ::setenv("ZWRM_CACHE_DIR", paths->cache.c_str(), 1);
  ::setenv("ZWRM_HOME", scratch, 1);
  ::setenv("ZWRM_SECRET_KEY", (std::string(scratch) + "/secret.key").c_str(), 1);
  const std::string zwrm = sys::executable_path().substr(0, sys::executable_path().rfind('/')) + "/zwrm";

  Server server;
  const std::string port = std::to_string(server.port());

  // Direct, on the host.
  auto start = std::chrono::steady_clock::now();
  const std::uint64_t direct_bytes = get_direct(server.port(), "/bytes/" + std::to_string(size));
  const double direct_download = Seconds(std::chrono::steady_clock::now() - start).count();
  start = std::chrono::steady_clock::now();
  for (long i = 0; i < connections; ++i) get_direct(server.port(), "/");
  const double direct_connections = Seconds(std::chrono::steady_clock::now() - start).count();

  // Through the proxy, from a guest.
  run_zwrm(zwrm, {"agent", "create", "bench", "--template", "debian", "--memory", "1G"});
  run_zwrm(zwrm, {"policy", "allow", "bench", "127.0.0.1/32:" + port});
  auto guest = sys::run_process({zwrm, "run", "--project", "bench", "--ingress-rate", "1T", "--egress-rate", "1T",
                                 "--egress-quota", "1P", "--", "python3", "-c", kGuestScript, port,
                                 std::to_string(size), std::to_string(connections)});
  (void)sys::remove_tree(scratch);
  unsigned long long guest_bytes = 0;
  double guest_download = 0;
  double guest_connections = 0;
  double local_download = 0;
  double local_connections = 0;
  // The figures are the last line: zwrm's progress lines on stderr come first.
  const std::string output = guest ? guest->output : std::string();
  const std::size_t last_line = output.find_last_of('\n', output.size() >= 2 ? output.size() - 2 : 0);
  const char* figures = output.c_str() + (last_line == std::string::npos ? 0 : last_line + 1);
  if (!guest || !guest->succeeded() ||
      std::sscanf(figures, "%llu %lf %lf %lf %lf", &guest_bytes, &guest_download, &guest_connections, &local_download,
                  &local_connections) != 5) {
    std::fprintf(stderr, "bench/egress: the guest side failed: %s\n",
                 guest ? (guest->describe() + "\n" + output).c_str() : guest.error().message.c_str());
    return 1;
  }
  if (direct_bytes < size || guest_bytes < size) {
    std::fprintf(stderr, "bench/egress: a download was short: %llu and %llu of %llu bytes\n",
                 static_cast<unsigned long long>(direct_bytes), guest_bytes, static_cast<unsigned long long>(size));
    return 1;
  }

  const double mebibytes = static_cast<double>(size) / (1 << 20);
  const double count = static_cast<double>(connections);
  std::printf("bench/egress: %ld MiB download, %ld sequential connections, each column once\n", mib, connections);
  std::printf("%-24s %14s %14s %14s %9s %9s\n", "", "host direct", "guest loopback", "guest proxied",
              "p / host", "p / loop");
  std::printf("%-24s %8.1f MiB/s %8.1f MiB/s %8.1f MiB/s %9.3f %9.3f\n", "download throughput",
              mebibytes / direct_download, mebibytes / local_download, mebibytes / guest_download,
              direct_download / guest_download, local_download / guest_download);
  std::printf("%-24s %12.0f/s %12.0f/s %12.0f/s %9.3f %9.3f\n", "connections per second", count / direct_connections,
              count / local_connections, count / guest_connections, direct_connections / guest_connections,
              local_connections / guest_connections);
  return 0;
}
