// Attacks from inside a normal guest (the real zwrm-init, with the command
// running as the agent user or, with --root, as root) on what lies outside
// it: the host's loopback services, the supervisor's sockets and another
// run. Each case asserts the safe outcome on the host side, where the
// guest cannot lie about it.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"
#include "tests/integration/test_network.h"

namespace zwrm::integration {
namespace {

namespace fs = std::filesystem;

// Writes lines to path, each followed by '\n', and returns path.
std::string write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream file(path);
  for (const std::string& line : lines) file << line << '\n';
  return path;
}

void create_agent(TestHome& home, const std::string& name, const std::string& template_name,
                  const std::string& memory) {
  const Outcome created = home.zwrm({"agent", "create", name, "--template", template_name, "--memory", memory});
  ASSERT_EQ(created.exit_code, 0) << created;
}

void allow(TestHome& home, const std::string& agent, const std::vector<std::string>& rules) {
  std::vector<std::string> args = {"policy", "allow", agent};
  args.insert(args.end(), rules.begin(), rules.end());
  const Outcome allowed = home.zwrm(args);
  ASSERT_EQ(allowed.exit_code, 0) << allowed;
}

// Returns the egress events whose port is port.
std::vector<nlohmann::json> egress_events_on_port(const TestHome& home, int port) {
  std::vector<nlohmann::json> matching;
  for (const nlohmann::json& event : home.events("egress")) {
    if (event.value("port", 0) == port) matching.push_back(event);
  }
  return matching;
}

// Formats an address and port as a proxy target: "a.b.c.d:P" or "[v6]:P".
std::string target(const std::string& address, int port) {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

// Returns the host's own addresses other than loopback and IPv6 link-local
// ones (which need an interface scope), on interfaces that are up.
std::vector<std::string> host_addresses() {
  std::vector<std::string> addresses;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return addresses;
  for (const ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr || (entry->ifa_flags & IFF_UP) == 0 || (entry->ifa_flags & IFF_LOOPBACK) != 0) {
      continue;
    }
    char text[INET6_ADDRSTRLEN] = {};
    if (entry->ifa_addr->sa_family == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(entry->ifa_addr)->sin_addr, text, sizeof text);
    } else if (entry->ifa_addr->sa_family == AF_INET6) {
      const in6_addr& address = reinterpret_cast<const sockaddr_in6*>(entry->ifa_addr)->sin6_addr;
      if (IN6_IS_ADDR_LINKLOCAL(&address)) continue;
      ::inet_ntop(AF_INET6, &address, text, sizeof text);
    } else {
      continue;
    }
    addresses.emplace_back(text);
  }
  ::freeifaddrs(list);
  return addresses;
}

std::string format_endpoint(const sockaddr_storage& endpoint) {
  char text[INET6_ADDRSTRLEN] = {};
  if (endpoint.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(endpoint);
    ::inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
    return target(text, ntohs(v4.sin_port));
  }
  const auto& v6 = reinterpret_cast<const sockaddr_in6&>(endpoint);
  ::inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
  return target(text, ntohs(v6.sin6_port));
}

// TCP listeners on one port at several of the host's addresses, with a
// thread that accepts and records every connection, so a test can show
// that none arrived.
class HostListener {
 public:
  // Listens on each of addresses (IP literals; the first must work) on one
  // port that the kernel picks. An address the host no longer has is left
  // out. Returns nullptr with *error set when listening fails.
  static std::unique_ptr<HostListener> start(const std::vector<std::string>& addresses, std::string* error) {
    for (int attempt = 0; attempt < 20; ++attempt) {
      std::unique_ptr<HostListener> listener(new HostListener());
      bool port_taken = false;
      for (const std::string& address : addresses) {
        int error_number = 0;
        const int fd = listen_on(address, listener->port_, &error_number);
        if (fd >= 0) {
          listener->fds_.push_back(fd);
          listener->addresses_.push_back(address);
          if (listener->port_ == 0) listener->port_ = local_port(fd);
          continue;
        }
        if (listener->port_ == 0) {
          *error = "cannot listen on " + address + ": " + std::strerror(error_number);
          return nullptr;
        }
        if (error_number == EADDRINUSE) {
          port_taken = true;
          break;
        }
        if (error_number != EADDRNOTAVAIL && error_number != EAFNOSUPPORT) {
          *error = "cannot listen on " + target(address, listener->port_) + ": " + std::strerror(error_number);
          return nullptr;
        }
      }
      if (port_taken) continue;
      listener->stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
      listener->thread_ = std::thread([raw = listener.get()] { raw->accept_loop(); });
      return listener;
    }
    *error = "no port was free on every address after 20 attempts";
    return nullptr;
  }

  ~HostListener() {
    if (thread_.joinable()) {
      const std::uint64_t increment = 1;
      (void)!::write(stop_fd_, &increment, sizeof increment);
      thread_.join();
    }
    for (int fd : fds_) ::close(fd);
    if (stop_fd_ >= 0) ::close(stop_fd_);
  }

  HostListener(const HostListener&) = delete;
  HostListener& operator=(const HostListener&) = delete;

  int port() const { return port_; }
  // The addresses it listens on.
  const std::vector<std::string>& addresses() const { return addresses_; }

  // Every connection accepted so far, as "LOCAL from PEER".
  std::vector<std::string> connections() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return connections_;
  }

 private:
  HostListener() = default;

  static int listen_on(const std::string& address, int port, int* error_number) {
    sockaddr_storage storage{};
    socklen_t length = 0;
    const bool v6 = address.find(':') != std::string::npos;
    if (v6) {
      auto& v6_address = reinterpret_cast<sockaddr_in6&>(storage);
      v6_address.sin6_family = AF_INET6;
      v6_address.sin6_port = htons(static_cast<std::uint16_t>(port));
      ::inet_pton(AF_INET6, address.c_str(), &v6_address.sin6_addr);
      length = sizeof v6_address;
    } else {
      auto& v4_address = reinterpret_cast<sockaddr_in&>(storage);
      v4_address.sin_family = AF_INET;
      v4_address.sin_port = htons(static_cast<std::uint16_t>(port));
      ::inet_pton(AF_INET, address.c_str(), &v4_address.sin_addr);
      length = sizeof v4_address;
    }
    const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      *error_number = errno;
      return -1;
    }
    const int on = 1;
    if (v6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 || ::listen(fd, 64) != 0) {
      *error_number = errno;
      ::close(fd);
      return -1;
    }
    return fd;
  }

  static int local_port(int fd) {
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
    return local.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in&>(local).sin_port)
                                      : ntohs(reinterpret_cast<sockaddr_in6&>(local).sin6_port);
  }

  void accept_loop() {
    std::vector<pollfd> fds;
    for (int fd : fds_) fds.push_back({fd, POLLIN, 0});
    fds.push_back({stop_fd_, POLLIN, 0});
    while (true) {
      if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) return;
      if (fds.back().revents != 0) return;
      for (std::size_t i = 0; i + 1 < fds.size(); ++i) {
        if ((fds[i].revents & POLLIN) == 0) continue;
        sockaddr_storage peer{};
        socklen_t peer_length = sizeof peer;
        const int connection = ::accept4(fds[i].fd, reinterpret_cast<sockaddr*>(&peer), &peer_length, SOCK_CLOEXEC);
        if (connection < 0) continue;
        sockaddr_storage local{};
        socklen_t local_length = sizeof local;
        ::getsockname(connection, reinterpret_cast<sockaddr*>(&local), &local_length);
        ::close(connection);
        std::lock_guard<std::mutex> lock(mutex_);
        connections_.push_back(format_endpoint(local) + " from " + format_endpoint(peer));
      }
    }
  }

  int port_ = 0;
  std::vector<std::string> addresses_;
  std::vector<int> fds_;
  int stop_fd_ = -1;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<std::string> connections_;
};

// Connects to 127.0.0.1:port from the host and closes the connection.
// Returns whether the connection was established.
bool connect_from_host(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

// Returns a TCP port on 127.0.0.1 that nothing listens on right now.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// Sends an HTTP GET for / to 127.0.0.1:port from the host and returns the
// whole response, or an empty string when the connection failed.
std::string http_get_from_host(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const std::string request = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t count = 0;
      while ((count = ::read(fd, buffer, sizeof buffer)) > 0) response.append(buffer, static_cast<std::size_t>(count));
    }
  }
  ::close(fd);
  return response;
}

// A Python script for the guest that sends a raw CONNECT for each target to
// the egress proxy and prints "TARGET STATUS-LINE", so no client library
// rewrites the target's spelling first.
std::string connect_script(const std::vector<std::string>& targets) {
  std::string script = "python3 - <<'PY'\nimport socket\nfor target in [";
  for (const std::string& each : targets) script += "'" + each + "',";
  script +=
      "]:\n"
      "    s = socket.create_connection(('127.0.0.1', 3128))\n"
      "    s.sendall(('CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n' % (target, target)).encode())\n"
      "    print(target, s.recv(100).split(b'\\r\\n')[0].decode())\n"
      "    s.close()\n"
      "PY\n";
  return script;
}

// From a debian guest, every way to the host's loopback (and to the host's
// other addresses) fails. The guest tries the proxy with every spelling of
// the address and with names the policy allows that resolve to loopback,
// curl as agents use it, and direct connections without the proxy. A
// listener on those addresses accepts nothing, and each proxy request is
// recorded as a denial that never connected.
TEST(GuestEscape, HostLoopbackUnreachable) {
  TestHome home;
  std::vector<std::string> addresses = {"127.0.0.1", "::1"};
  for (const std::string& address : host_addresses()) addresses.push_back(address);
  std::string error;
  const std::unique_ptr<HostListener> listener = HostListener::start(addresses, &error);
  ASSERT_NE(listener, nullptr) << error;
  const int port = listener->port();
  const std::string port_text = std::to_string(port);

  home.set_env("ZWRM_TEST_HOSTS", write_lines(home.scratch() + "/hosts", {"127.0.0.1 localhost localhost.zwrm.test",
                                                                          "::1 loopback6.zwrm.test", "0.0.0.0 zero.zwrm.test"}));
  ASSERT_NO_FATAL_FAILURE(create_agent(home, "escape", "debian", "512M"));
  // The agent's policy allows these names on the listener's port, so only
  // the proxy's check of the resolved address can deny them.
  ASSERT_NO_FATAL_FAILURE(allow(home, "escape", {"*.zwrm.test:" + port_text, "localhost:" + port_text}));

  std::vector<std::string> connect_targets = {
      "127.0.0.1:" + port_text, "127.1:" + port_text,          "0.0.0.0:" + port_text,
      "[::1]:" + port_text,     "localhost:" + port_text,      "localhost.zwrm.test:" + port_text,
      "loopback6.zwrm.test:" + port_text, "zero.zwrm.test:" + port_text,
  };
  std::vector<std::string> direct_addresses = {"127.0.0.1", "::1", "0.0.0.0"};
  for (const std::string& address : listener->addresses()) {
    if (address == "127.0.0.1" || address == "::1") continue;
    connect_targets.push_back(target(address, port));
    direct_addresses.push_back(address);
  }

  std::string script = connect_script(connect_targets);
  // Plain HTTP through the proxy, with an absolute URL.
  script += "python3 - <<'PY'\nimport socket\nfor url, host in [('http://127.0.0.1:" + port_text + "/', '127.0.0.1:" +
            port_text + "'), ('http://localhost.zwrm.test:" + port_text + "/', 'localhost.zwrm.test:" + port_text +
            "')]:\n"
            "    s = socket.create_connection(('127.0.0.1', 3128))\n"
            "    s.sendall(('GET %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n' % (url, host)).encode())\n"
            "    print('GET', url, s.recv(100).split(b'\\r\\n')[0].decode())\n"
            "    s.close()\n"
            "PY\n";
  // curl with the proxy variables zwrm-init sets. NO_PROXY lists
  // localhost, so --noproxy '' makes curl use the proxy for it.
  script += "curl -s -o /dev/null -w 'curl %{http_code}\\n' --noproxy '' http://localhost.zwrm.test:" + port_text + "/\n";
  script += "curl -s -o /dev/null -w 'curl tunnel %{http_connect}\\n' -p --noproxy '' http://localhost.zwrm.test:" +
            port_text + "/\n";
  // No proxy: the guest has only its own loopback and no route.
  script += "python3 - <<'PY'\nimport socket\nfor address in [";
  for (const std::string& address : direct_addresses) script += "'" + address + "',";
  script += "]:\n"
            "    try:\n"
            "        socket.create_connection((address, " + port_text + "), timeout=5).close()\n"
            "        print('direct', address, 'connected')\n"
            "    except OSError as error:\n"
            "        print('direct', address, 'failed', error.errno)\n"
            "PY\n";

  const Outcome result = home.zwrm({"run", "--project", "escape", "--", "sh", "-c", script}, {.timeout = 180s});
  ASSERT_EQ(result.exit_code, 0) << result;
  const std::vector<std::string> lines = split_lines(result.out);
  ASSERT_EQ(lines.size(), connect_targets.size() + 4 + direct_addresses.size()) << result;
  for (std::size_t i = 0; i < connect_targets.size(); ++i) {
    EXPECT_EQ(lines[i], connect_targets[i] + " HTTP/1.1 403 Forbidden") << result;
  }
  std::size_t next = connect_targets.size();
  EXPECT_EQ(lines[next++], "GET http://127.0.0.1:" + port_text + "/ HTTP/1.1 403 Forbidden") << result;
  EXPECT_EQ(lines[next++], "GET http://localhost.zwrm.test:" + port_text + "/ HTTP/1.1 403 Forbidden") << result;
  EXPECT_EQ(lines[next++], "curl 403") << result;
  EXPECT_EQ(lines[next++], "curl tunnel 403") << result;
  for (const std::string& address : direct_addresses) {
    EXPECT_TRUE(lines[next++].starts_with("direct " + address + " failed ")) << result;
  }

  EXPECT_EQ(listener->connections(), std::vector<std::string>{}) << "a guest connection reached the host listener";
  const std::vector<nlohmann::json> events = egress_events_on_port(home, port);
  EXPECT_EQ(events.size(), connect_targets.size() + 4);
  for (const nlohmann::json& event : events) {
    EXPECT_EQ(event["decision"], "deny") << event.dump();
    EXPECT_EQ(event.count("address"), 0u) << "the proxy connected: " << event.dump();
    EXPECT_FALSE(event.value("reason", "").empty()) << event.dump();
  }

  // The listener was reachable from the host all along.
  EXPECT_TRUE(connect_from_host(port));
  EXPECT_TRUE(wait_until([&] { return listener->connections().size() == 1; }, 5s));
}

// No host path exists in the guest: neither its own run's control socket
// nor another run's, nor ZWRM_HOME. Through the proxy it cannot reach a second
// live run's port published on the host's loopback, although the agent's
// policy allows every name under zwrm.test on that port and the names resolve
// to loopback. `zwrm policy test` explains the denial, and a rule that does
// open loopback (0.0.0.0/0) draws a warning.
TEST(GuestEscape, SupervisorSocketsAndOtherRunUnreachable) {
  TestHome home;
  home.set_env("ZWRM_TEST_HOSTS",
               write_lines(home.scratch() + "/hosts", {"127.0.0.1 localhost peer.zwrm.test", "::1 peer6.zwrm.test"}));
  const int peer_port = free_port();
  const std::string port_text = std::to_string(peer_port);
  auto peer = home.start({"run", "--project", "peer", "--memory", kSmallMemory, "--publish", port_text + ":8000", "--",
                          "sh", "-c",
                          "mkdir -p /tmp/www && echo peer-page > /tmp/www/index.html && echo ready && "
                          "exec httpd -f -p 127.0.0.1:8000 -h /tmp/www"});
  ASSERT_TRUE(peer->wait_for_output("ready\n", 120s)) << peer->err();

  ASSERT_NO_FATAL_FAILURE(create_agent(home, "escape", "debian", "512M"));
  ASSERT_NO_FATAL_FAILURE(allow(home, "escape", {"*.zwrm.test:" + port_text, "localhost:" + port_text}));

  // The policy's decision for the published port, by name and by address.
  const Outcome by_name = home.zwrm({"policy", "test", "escape", "http://peer.zwrm.test:" + port_text + "/"});
  EXPECT_EQ(by_name.exit_code, 1) << by_name;
  EXPECT_EQ(by_name.out, "deny peer.zwrm.test:" + port_text +
                             ": every address of peer.zwrm.test is in a special range that no address range rule "
                             "allows on port " + port_text + ": 127.0.0.1 (loopback)\n")
      << by_name;
  const Outcome by_address = home.zwrm({"policy", "test", "escape", "http://127.0.0.1:" + port_text + "/"});
  EXPECT_EQ(by_address.exit_code, 1) << by_address;
  EXPECT_EQ(by_address.out, "deny 127.0.0.1:" + port_text + ": no address range rule allows 127.0.0.1:" + port_text +
                                "\n  to allow it: zwrm policy allow escape 127.0.0.1/32:" + port_text + "\n")
      << by_address;

  const std::vector<std::string> targets = {"127.0.0.1:" + port_text, "[::1]:" + port_text, "peer.zwrm.test:" + port_text,
                                            "peer6.zwrm.test:" + port_text, "localhost:" + port_text};
  // The guest reads the host paths from stdin once the test has the run ids.
  const std::string script =
      "echo ready; read own other home_dir; "
      "for path in \"$own\" \"$other\" \"$home_dir\"; do "
      "  if [ -e \"$path\" ]; then echo \"visible $path\"; else echo \"absent $path\"; fi; done; "
      "echo \"control sockets: $(find / -xdev -name control.sock 2>/dev/null | wc -l)\"\n" +
      connect_script(targets);
  auto attacker = home.start({"run", "--project", "escape", "--", "sh", "-c", script}, /*open_stdin=*/true);
  ASSERT_TRUE(attacker->wait_for_output("ready\n", 180s)) << attacker->err();

  std::string own_socket;
  std::string other_socket;
  for (const nlohmann::json& run : home.runs(/*all=*/false)) {
    const std::string path = home.home() + "/run/" + run["id"].get<std::string>() + "/control.sock";
    (run["project"] == "escape" ? own_socket : other_socket) = path;
  }
  ASSERT_FALSE(own_socket.empty());
  ASSERT_FALSE(other_socket.empty());
  EXPECT_TRUE(fs::exists(own_socket)) << "the host has no " << own_socket;
  EXPECT_TRUE(fs::exists(other_socket)) << "the host has no " << other_socket;
  attacker->write_stdin(own_socket + " " + other_socket + " " + home.home() + "\n");
  attacker->close_stdin();

  const std::optional<Outcome> result = attacker->wait(180s);
  ASSERT_TRUE(result.has_value()) << attacker->err();
  ASSERT_EQ(result->exit_code, 0) << *result;
  std::string expected = "ready\nabsent " + own_socket + "\nabsent " + other_socket + "\nabsent " + home.home() +
                         "\ncontrol sockets: 0\n";
  for (const std::string& each : targets) expected += each + " HTTP/1.1 403 Forbidden\n";
  EXPECT_EQ(result->out, expected) << *result;
  for (const nlohmann::json& event : egress_events_on_port(home, peer_port)) {
    EXPECT_EQ(event["decision"], "deny") << event.dump();
    EXPECT_EQ(event.count("address"), 0u) << "the proxy connected: " << event.dump();
  }
  EXPECT_EQ(home.events("publish.connection").size(), 0u) << "a connection reached the peer's published port";

  // The peer's port was live: the host reaches the peer's server through it.
  EXPECT_NE(http_get_from_host(peer_port).find("peer-page"), std::string::npos);
  // The supervisor records a forwarded connection when it closes.
  EXPECT_TRUE(wait_until([&] { return home.events("publish.connection").size() == 1; }, 10s));

  // The only way to open loopback is an address range rule, and zwrm warns.
  const Outcome widened = home.zwrm({"policy", "allow", "escape", "0.0.0.0/0:" + port_text});
  EXPECT_EQ(widened.exit_code, 0) << widened;
  EXPECT_NE(widened.err.find("zwrm: warning: 0.0.0.0/0:" + port_text + " includes 127.0.0.1 (loopback)"),
            std::string::npos)
      << widened;
  const Outcome opened = home.zwrm({"policy", "test", "escape", "http://127.0.0.1:" + port_text + "/"});
  EXPECT_EQ(opened.exit_code, 0) << opened;
  EXPECT_EQ(opened.out, "allow 127.0.0.1:" + port_text + " by rule 0.0.0.0/0:" + port_text +
                            "\n  connects to 127.0.0.1 (a special address, allowed by rule 0.0.0.0/0:" + port_text +
                            ")\n")
      << opened;

  peer->send_signal(SIGINT);
  ASSERT_TRUE(peer->wait(60s).has_value());
}

}  // namespace
}  // namespace zwrm::integration
