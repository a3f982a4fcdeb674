// `--publish`: a host port forwarded to a port on the guest's loopback.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

// Returns a TCP port on 127.0.0.1 that nothing listens on right now.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// Sends an HTTP GET to 127.0.0.1:port and returns the whole response, or
// an empty string when the connection failed or closed without one.
std::string http_get(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const std::string request = "GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t count = 0;
      while ((count = ::read(fd, buffer, sizeof buffer)) > 0) response.append(buffer, static_cast<std::size_t>(count));
    }
  }
  ::close(fd);
  return response;
}

// Returns the local addresses of listening TCP sockets on port, as
// /proc/net/tcp writes them ("0100007F" for 127.0.0.1).
std::vector<std::string> listening_addresses(int port) {
  std::ifstream table("/proc/net/tcp");
  std::vector<std::string> addresses;
  std::string line;
  char port_hex[8];
  std::snprintf(port_hex, sizeof port_hex, "%04X", port);
  while (std::getline(table, line)) {
    char local[64] = {};
    char remote[64] = {};
    unsigned state = 0;
    if (std::sscanf(line.c_str(), " %*d: %63s %63s %x", local, remote, &state) != 3) continue;
    const std::string text = local;
    if (state == 0x0A && text.size() > 5 && text.substr(text.size() - 4) == port_hex) {
      addresses.push_back(text.substr(0, text.find(':')));
    }
  }
  return addresses;
}

TEST(Publish, GuestServerAnswersOnHostLoopback) {
  TestHome home;
  const int port = free_port();
  auto run = home.start({"run", "--project", "pub", "--memory", kSmallMemory, "--publish",
                         std::to_string(port) + ":8000", "--", "sh", "-c",
                         "mkdir -p /tmp/www && echo served-from-the-guest > /tmp/www/index.html && "
                         "exec httpd -f -p 127.0.0.1:8000 -h /tmp/www"});
  std::string response;
  EXPECT_TRUE(wait_until(
      [&] {
        response = http_get(port);
        return response.find("served-from-the-guest") != std::string::npos;
      },
      120s, 200ms))
      << "last response: " << response << "\nstderr: " << run->err();
  EXPECT_EQ(listening_addresses(port), std::vector<std::string>{"0100007F"});

  run->send_signal(SIGINT);
  const auto ended = run->wait(60s);
  ASSERT_TRUE(ended.has_value());
  EXPECT_TRUE(listening_addresses(port).empty());
  const auto connections = home.events("publish.connection");
  ASSERT_FALSE(connections.empty());
  EXPECT_EQ(connections.back()["mapping"], "127.0.0.1:" + std::to_string(port) + ":8000");
  EXPECT_GT(connections.back()["bytes_to_guest"].get<std::int64_t>(), 0);
}

TEST(Publish, NoServerInGuestClosesConnection) {
  TestHome home;
  const int port = free_port();
  auto run = home.start({"run", "--project", "pub", "--memory", kSmallMemory, "--publish",
                         std::to_string(port) + ":8000", "--", "sh", "-c", "echo ready; sleep 600"});
  ASSERT_TRUE(run->wait_for_output("ready", 120s)) << run->err();
  EXPECT_EQ(http_get(port), "");
  run->send_signal(SIGINT);
  ASSERT_TRUE(run->wait(60s).has_value());
  const auto connections = home.events("publish.connection");
  ASSERT_EQ(connections.size(), 1u);
  EXPECT_NE(connections[0]["reason"].get<std::string>().find("cannot connect"), std::string::npos)
      << connections[0].dump();
}

TEST(Publish, PortInUseRejectedBeforeBoot) {
  TestHome home;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const int port = ntohs(address.sin_port);

  const Outcome result = home.zwrm(run_args("pub", {"true"}, {"--publish", std::to_string(port) + ":80"}));
  ::close(fd);
  EXPECT_EQ(result.exit_code, 125) << result;
  EXPECT_NE(result.err.find("cannot publish 127.0.0.1:" + std::to_string(port) + ":80"), std::string::npos) << result;
  EXPECT_NE(result.err.find("Address already in use"), std::string::npos) << result;
  EXPECT_TRUE(home.vmm_pids().empty());
}

TEST(Publish, InvalidMappingsRejected) {
  TestHome home;
  for (const char* mapping : {"80", "0:80", "70000:80", "8080:x", "localhost:8080:80", "[::1:8080:80"}) {
    const Outcome result = home.zwrm(run_args("pub", {"true"}, {"--publish", mapping}));
    EXPECT_EQ(result.exit_code, 125) << result;
    EXPECT_NE(result.err.find(std::string("invalid --publish ") + mapping), std::string::npos) << result;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result;
  }
  EXPECT_EQ(home.volume_digest("pub"), "");
}

}  // namespace
}  // namespace zwrm::integration
