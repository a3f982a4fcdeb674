// TestNetwork and zwrm-test-server, checked from the host: each case creates
// its own namespace, talks to the servers inside it over the veth pair and
// reads the server's log. No VM boots and nothing leaves the machine.
#include "tests/integration/test_network.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace zwrm::integration {
namespace {

// Reads up to size bytes into data. Returns 0 at the end of the stream.
using ReadFunction = std::function<std::size_t(char* data, std::size_t size)>;

struct HttpResponse {
  std::string head;  // status line and header fields, without the blank line
  std::string body;
};

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Returns a TCP or UDP socket connected to address:port, with 10 s send and
// receive timeouts, or -1.
int connect_to(const std::string& address, int port, int type = SOCK_STREAM) {
  const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, address.c_str(), &peer.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof peer) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t count = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (count <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(count));
  }
  return true;
}

ReadFunction socket_reader(int fd) {
  return [fd](char* data, std::size_t size) {
    const ssize_t count = ::recv(fd, data, size, 0);
    return count > 0 ? static_cast<std::size_t>(count) : 0;
  };
}

// Reads one response whose body length is its Content-Length. buffer keeps
// the bytes read past it. Returns nullopt when the stream ends first.
std::optional<HttpResponse> read_response(const ReadFunction& read, std::string& buffer) {
  std::size_t head_end;
  char chunk[64 * 1024];
  while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
    const std::size_t count = read(chunk, sizeof chunk);
    if (count == 0) return std::nullopt;
    buffer.append(chunk, count);
  }
  HttpResponse response;
  response.head = buffer.substr(0, head_end);
  buffer.erase(0, head_end + 4);

  const std::size_t field = response.head.find("\r\nContent-Length: ");
  if (field == std::string::npos) return std::nullopt;
  const std::size_t length = std::stoull(response.head.substr(field + 18));
  while (buffer.size() < length) {
    const std::size_t count = read(chunk, sizeof chunk);
    if (count == 0) return std::nullopt;
    buffer.append(chunk, count);
  }
  response.body = buffer.substr(0, length);
  buffer.erase(0, length);
  return response;
}

// Sends request over a new plain connection and reads one response.
std::optional<HttpResponse> http_exchange(const TestNetwork& network, const std::string& request) {
  const int fd = connect_to(network.address(), TestNetwork::kHttpPort);
  if (fd < 0) return std::nullopt;
  std::optional<HttpResponse> response;
  std::string buffer;
  if (send_all(fd, request)) response = read_response(socket_reader(fd), buffer);
  ::close(fd);
  return response;
}

// Returns the first field of each line of `ip netns list`.
std::vector<std::string> namespace_names() {
  std::vector<std::string> names;
  for (const std::string& line : split_lines(run_command({"ip", "netns", "list"}).out)) {
    names.push_back(line.substr(0, line.find(' ')));
  }
  return names;
}

bool namespace_exists(const std::string& name) {
  const std::vector<std::string> names = namespace_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

class TestNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "creating network namespaces needs root";
    std::string error;
    network_ = TestNetwork::create(&error);
    ASSERT_NE(network_, nullptr) << error;
  }

  std::unique_ptr<TestNetwork> network_;
};

TEST_F(TestNetworkTest, HttpServerRespondsToHost) {
  const auto response = http_exchange(*network_, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");

  ASSERT_TRUE(response.has_value()) << "no response from " << network_->address() << "\nlog:\n" << network_->log();
  EXPECT_TRUE(response->head.starts_with("HTTP/1.1 200 ")) << response->head;
  EXPECT_EQ(response->body, "zwrm test server\nhost: a.test\n");
  EXPECT_TRUE(network_->wait_for_log("http GET / host=a.test\n")) << network_->log();
}

TEST_F(TestNetworkTest, HttpsServerLogsSni) {
  SSL_CTX* context = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nullptr);
  SSL* ssl = SSL_new(context);
  const int fd = connect_to(network_->address(), TestNetwork::kHttpsPort);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, "b.test");

  ASSERT_EQ(SSL_connect(ssl), 1) << "TLS handshake failed\nlog:\n" << network_->log();
  X509* certificate = SSL_get1_peer_certificate(ssl);
  ASSERT_NE(certificate, nullptr);
  char common_name[64] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, common_name, sizeof common_name);
  EXPECT_STREQ(common_name, "zwrm-test");
  X509_free(certificate);

  const std::string request = "GET / HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(SSL_write(ssl, request.data(), static_cast<int>(request.size())), static_cast<int>(request.size()));
  std::string buffer;
  const auto response = read_response(
      [ssl](char* data, std::size_t size) {
        std::size_t count = 0;
        return SSL_read_ex(ssl, data, size, &count) == 1 ? count : 0;
      },
      buffer);
  SSL_free(ssl);
  SSL_CTX_free(context);
  ::close(fd);

  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->body, "zwrm test server\nhost: b.test\n");
  EXPECT_TRUE(network_->wait_for_log("tls sni=b.test\n")) << network_->log();
  EXPECT_TRUE(network_->wait_for_log("https GET / host=b.test\n")) << network_->log();
}

TEST_F(TestNetworkTest, HttpsWithoutSniLogsDash) {
  SSL_CTX* context = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(context);
  const int fd = connect_to(network_->address(), TestNetwork::kHttpsPort);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  SSL_set_fd(ssl, fd);

  EXPECT_EQ(SSL_connect(ssl), 1);
  SSL_free(ssl);
  SSL_CTX_free(context);
  ::close(fd);

  EXPECT_TRUE(network_->wait_for_log("tls sni=-\n")) << network_->log();
}

TEST_F(TestNetworkTest, BytesReturnsExactLength) {
  const auto response = http_exchange(*network_, "GET /bytes/1000000 HTTP/1.1\r\nHost: c.test\r\n\r\n");

  ASSERT_TRUE(response.has_value());
  EXPECT_TRUE(contains(response->head, "\r\nContent-Length: 1000000\r\n")) << response->head;
  ASSERT_EQ(response->body.size(), 1000000u);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < response->body.size(); ++i) wrong += response->body[i] != static_cast<char>('a' + i % 26);
  EXPECT_EQ(wrong, 0u) << "bytes that break the pattern abc...z";
}

TEST_F(TestNetworkTest, KeepAliveServesTwoRequests) {
  const int fd = connect_to(network_->address(), TestNetwork::kHttpPort);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_TRUE(send_all(fd, "GET /bytes/3 HTTP/1.1\r\nHost: d.test\r\n\r\nGET / HTTP/1.1\r\nHost: e.test\r\n\r\n"));

  std::string buffer;
  const auto first = read_response(socket_reader(fd), buffer);
  const auto second = read_response(socket_reader(fd), buffer);
  ::close(fd);

  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->body, "abc");
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->body, "zwrm test server\nhost: e.test\n");
}

TEST_F(TestNetworkTest, UnknownPathIsNotFound) {
  const auto response = http_exchange(*network_, "GET /nothing HTTP/1.1\r\nHost: f.test\r\n\r\n");

  ASSERT_TRUE(response.has_value());
  EXPECT_TRUE(response->head.starts_with("HTTP/1.1 404 ")) << response->head;
  EXPECT_TRUE(network_->wait_for_log("http GET /nothing host=f.test\n")) << network_->log();
}

TEST_F(TestNetworkTest, InvalidRequestIsBadRequest) {
  const auto response = http_exchange(*network_, "garbage\r\n\r\n");

  ASSERT_TRUE(response.has_value());
  EXPECT_TRUE(response->head.starts_with("HTTP/1.1 400 ")) << response->head;
  EXPECT_TRUE(network_->wait_for_log("http invalid request from " + network_->host_side_address() + ":"))
      << network_->log();
}

TEST_F(TestNetworkTest, TcpServerEchoes) {
  const int fd = connect_to(network_->address(), TestNetwork::kTcpPort);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_TRUE(send_all(fd, "ping"));
  char reply[4] = {};
  EXPECT_EQ(::recv(fd, reply, sizeof reply, MSG_WAITALL), 4);
  ::close(fd);

  EXPECT_EQ(std::string_view(reply, 4), "ping");
  EXPECT_TRUE(network_->wait_for_log("tcp connect from " + network_->host_side_address() + ":")) << network_->log();
}

TEST_F(TestNetworkTest, UdpServerLogsPacket) {
  const int fd = connect_to(network_->address(), TestNetwork::kUdpPort, SOCK_DGRAM);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::send(fd, "hello", 5, 0), 5);
  char reply[16] = {};
  const ssize_t count = ::recv(fd, reply, sizeof reply, 0);
  ::close(fd);

  EXPECT_EQ(std::string_view(reply, count > 0 ? count : 0), "hello");
  EXPECT_TRUE(network_->wait_for_log("udp packet from " + network_->host_side_address() + ":"))
      << network_->log();
  EXPECT_TRUE(network_->wait_for_log(" bytes=5\n")) << network_->log();
}

TEST_F(TestNetworkTest, TwoNetworksGetDifferentSubnets) {
  std::string error;
  const std::unique_ptr<TestNetwork> second = TestNetwork::create(&error);
  ASSERT_NE(second, nullptr) << error;

  EXPECT_NE(network_->subnet(), second->subnet());
  EXPECT_NE(network_->namespace_name(), second->namespace_name());
  EXPECT_NE(network_->host_interface(), second->host_interface());
  for (const TestNetwork* network : {network_.get(), second.get()}) {
    const auto response = http_exchange(*network, "GET / HTTP/1.1\r\nHost: g.test\r\n\r\n");
    ASSERT_TRUE(response.has_value()) << "no response from " << network->address();
    EXPECT_TRUE(network->wait_for_log("http GET / host=g.test\n")) << network->log();
  }
}

TEST_F(TestNetworkTest, AddressesFollowSubnet) {
  const std::string& subnet = network_->subnet();
  ASSERT_TRUE(subnet.starts_with("10.231.")) << subnet;
  ASSERT_TRUE(subnet.ends_with("/30")) << subnet;
  const std::string base = subnet.substr(0, subnet.size() - 3);
  const std::string prefix = base.substr(0, base.rfind('.') + 1);
  const int last = std::stoi(base.substr(base.rfind('.') + 1));

  EXPECT_EQ(last % 4, 0) << subnet;
  EXPECT_EQ(network_->host_side_address(), prefix + std::to_string(last + 1));
  EXPECT_EQ(network_->address(), prefix + std::to_string(last + 2));
}

TEST_F(TestNetworkTest, DestructionRemovesNamespace) {
  const std::string name = network_->namespace_name();
  const std::string interface = network_->host_interface();
  ASSERT_TRUE(namespace_exists(name));

  network_.reset();

  EXPECT_FALSE(namespace_exists(name));
  const CommandResult link = run_command({"ip", "link", "show", interface});
  EXPECT_NE(link.exit_code, 0) << "the host side of the veth pair is still there:\n" << link.out;
}

TEST_F(TestNetworkTest, RemoveStaleDeletesNamespaceOfDeadProcess) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  const std::string stale = "zwrm-t" + std::to_string(child) + "-0";
  ASSERT_EQ(run_command({"ip", "netns", "add", stale}).exit_code, 0);

  TestNetwork::remove_stale();

  EXPECT_FALSE(namespace_exists(stale));
  EXPECT_TRUE(namespace_exists(network_->namespace_name())) << "remove_stale deleted a live process's namespace";
}

TEST_F(TestNetworkTest, HostsFileListsAddressThenName) {
  const std::string path = network_->hosts_file({{"a.test", network_->address()}, {"b.test", "10.231.0.9"}});

  std::ifstream file(path);
  std::stringstream content;
  content << file.rdbuf();
  EXPECT_EQ(content.str(), network_->address() + " a.test\n10.231.0.9 b.test\n");
}

}  // namespace
}  // namespace zwrm::integration
