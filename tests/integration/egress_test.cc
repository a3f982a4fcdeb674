// The egress proxy end to end: a guest of the debian template (curl and
// Python) talks to test servers in a network namespace this test creates,
// through the supervisor's proxy, under the agent's policy. Names resolve
// only through the test's hosts file (ZWRM_TEST_HOSTS), and nothing leaves
// the machine.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/test_network.h"

namespace zwrm::integration {
namespace {

constexpr const char* kAgent = "egress";

// A TestHome with a debian agent, a TestNetwork, and the names web.test and
// other.test for the test server, localhost.test for 127.0.0.1 and
// private.test for an address in no allowed range.
class EgressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    network_ = TestNetwork::create(&error);
    ASSERT_NE(network_, nullptr) << error;
    const std::string hosts = network_->hosts_file({{"web.test", network_->address()},
                                                    {"other.test", network_->address()},
                                                    {"localhost.test", "127.0.0.1"},
                                                    {"private.test", "192.168.77.7"}});
    home_.set_env("ZWRM_TEST_HOSTS", hosts);
    const Outcome created = home_.zwrm({"agent", "create", kAgent, "--template", "debian", "--memory", "512M"});
    ASSERT_EQ(created.exit_code, 0) << created;
  }

  void allow(const std::vector<std::string>& rules) {
    std::vector<std::string> args = {"policy", "allow", kAgent};
    args.insert(args.end(), rules.begin(), rules.end());
    const Outcome allowed = home_.zwrm(args);
    ASSERT_EQ(allowed.exit_code, 0) << allowed;
  }

  // Allows the test server's subnet on its HTTP and HTTPS ports, so names
  // that resolve into it pass the special-range check.
  void allow_test_subnet() { allow({network_->subnet() + ":8080,8443"}); }

  Outcome run(const std::string& script, const std::vector<std::string>& options = {}) {
    std::vector<std::string> args = {"run", "--project", kAgent};
    args.insert(args.end(), options.begin(), options.end());
    args.insert(args.end(), {"--", "sh", "-c", script});
    return home_.zwrm(args, {std::nullopt, 180s});
  }

  // Checks curl's "SIZE SECONDS" line for 3,000,000 bytes at a 1 MiB/s cap:
  // about 2.9 s less the 100 ms burst. The bounds are loose, because a loaded
  // CI host may be slow, but a transfer is never faster than its cap.
  static void expect_capped_transfer(const Outcome& result) {
    ASSERT_EQ(result.exit_code, 0) << result;
    std::size_t size = 0;
    double seconds = 0;
    ASSERT_EQ(std::sscanf(result.out.c_str(), "%zu %lf", &size, &seconds), 2) << result;
    EXPECT_EQ(size, 3'000'000u);
    EXPECT_GE(seconds, 2.3) << result;
    EXPECT_LE(seconds, 30.0) << result;
  }

  // Returns the egress events whose host is host.
  std::vector<nlohmann::json> egress_events(const std::string& host) {
    std::vector<nlohmann::json> matching;
    for (const nlohmann::json& event : home_.events("egress")) {
      if (event.value("host", "") == host) matching.push_back(event);
    }
    return matching;
  }

  TestHome home_;
  std::unique_ptr<TestNetwork> network_;
};

TEST_F(EgressTest, AllowedHostReachableOthersForbidden) {
  allow({"web.test:8080"});
  allow_test_subnet();
  const Outcome result = run(
      "curl -sS http://web.test:8080/; "
      "curl -sS -o /dev/null -w 'other %{http_code}\\n' http://other.test:8080/");
  ASSERT_EQ(result.exit_code, 0) << result;
  EXPECT_NE(result.out.find("host: web.test:8080"), std::string::npos) << result;
  EXPECT_NE(result.out.find("other 403"), std::string::npos) << result;
  EXPECT_TRUE(network_->wait_for_log("http GET / host=web.test:8080")) << network_->log();
  EXPECT_EQ(network_->log().find("host=other.test"), std::string::npos) << network_->log();

  const auto allowed = egress_events("web.test");
  ASSERT_EQ(allowed.size(), 1u);
  EXPECT_EQ(allowed[0]["decision"], "allow");
  EXPECT_EQ(allowed[0]["rule"], "web.test:8080");
  EXPECT_EQ(allowed[0]["address"], network_->address());
  EXPECT_EQ(allowed[0]["port"], 8080);
  EXPECT_GT(allowed[0]["bytes_received"].get<std::int64_t>(), 0);
  EXPECT_GT(allowed[0]["bytes_sent"].get<std::int64_t>(), 0);
  const auto denied = egress_events("other.test");
  ASSERT_EQ(denied.size(), 1u);
  EXPECT_EQ(denied[0]["decision"], "deny");
  EXPECT_EQ(denied[0]["reason"], "no rule allows other.test:8080");
}

// Every spelling of a loopback or metadata address, and names that resolve
// to special addresses, are denied before the proxy connects anywhere.
TEST_F(EgressTest, SpecialAddressesDeniedInEverySpelling) {
  allow({"localhost.test:8080", "private.test:8080"});
  const std::vector<std::string> targets = {
      "127.0.0.1:8080",      "127.1:8080",         "2130706433:8080",         "0x7f000001:8080",
      "0177.0.0.1:8080",     "0x7f.0.0.1:8080",    "[::1]:8080",              "[::ffff:127.0.0.1]:8080",
      "[::ffff:169.254.169.254]:80", "169.254.169.254:80", "localhost.test:8080", "private.test:8080",
      "LOCALHOST.test.:8080",
  };
  // Raw CONNECT requests, so no client library rewrites the spelling first.
  std::string script = "python3 - <<'PY'\nimport socket\nfor target in [";
  for (const std::string& target : targets) script += "'" + target + "',";
  script +=
      "]:\n"
      "    s = socket.create_connection(('127.0.0.1', 3128))\n"
      "    s.sendall(('CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n' % (target, target)).encode())\n"
      "    print(target, s.recv(100).split(b'\\r\\n')[0].decode())\n"
      "    s.close()\n"
      "PY\n";
  const Outcome result = run(script);
  ASSERT_EQ(result.exit_code, 0) << result;
  const std::vector<std::string> lines = split_lines(result.out);
  ASSERT_EQ(lines.size(), targets.size()) << result;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    EXPECT_EQ(lines[i], targets[i] + " HTTP/1.1 403 Forbidden") << result;
  }
  for (const nlohmann::json& event : home_.events("egress")) {
    EXPECT_EQ(event["decision"], "deny") << event.dump();
    EXPECT_EQ(event.count("address"), 0u) << "the proxy connected: " << event.dump();
  }
  const auto metadata = egress_events("169.254.169.254");
  ASSERT_EQ(metadata.size(), 2u);
  EXPECT_NE(metadata[0]["reason"].get<std::string>().find("169.254.169.254"), std::string::npos) << metadata[0].dump();
  const auto named = egress_events("localhost.test");
  ASSERT_EQ(named.size(), 2u);
  EXPECT_NE(named[0]["reason"].get<std::string>().find("loopback"), std::string::npos) << named[0].dump();
}

TEST_F(EgressTest, MismatchedNamesAndPortsDenied) {
  allow({"web.test:8080,8443"});
  allow_test_subnet();
  const std::string script = R"(python3 - <<'PY'
import socket, ssl
def tunnel(host, port):
    s = socket.create_connection(('127.0.0.1', 3128))
    s.sendall(('CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n' % (host, port, host, port)).encode())
    head = b''
    while b'\r\n\r\n' not in head:
        chunk = s.recv(1)
        if not chunk: break
        head += chunk
    return s, head.split(b'\r\n')[0].decode()
def handshake(server_name):
    s, status = tunnel('web.test', 8443)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.wrap_socket(s, server_hostname=server_name).close()
        return status + ' handshake ok'
    except (ssl.SSLError, OSError) as error:
        return status + ' handshake failed'
print('sni other.test:', handshake('other.test'))
print('sni web.test:', handshake('web.test'))
s = socket.create_connection(('127.0.0.1', 3128))
s.sendall(b'GET http://web.test:8080/ HTTP/1.1\r\nHost: other.test:8080\r\n\r\n')
print('host header:', s.recv(100).split(b'\r\n')[0].decode())
s, status = tunnel('web.test', 9000)
print('port 9000:', status)
PY
)";
  const Outcome result = run(script);
  ASSERT_EQ(result.exit_code, 0) << result;
  EXPECT_NE(result.out.find("sni other.test: HTTP/1.1 200 Connection established handshake failed"), std::string::npos)
      << result;
  EXPECT_NE(result.out.find("sni web.test: HTTP/1.1 200 Connection established handshake ok"), std::string::npos)
      << result;
  EXPECT_NE(result.out.find("host header: HTTP/1.1 403 Forbidden"), std::string::npos) << result;
  EXPECT_NE(result.out.find("port 9000: HTTP/1.1 403 Forbidden"), std::string::npos) << result;
  EXPECT_TRUE(network_->wait_for_log("tls sni=web.test")) << network_->log();
  EXPECT_EQ(network_->log().find("sni=other.test"), std::string::npos) << network_->log();
  EXPECT_EQ(network_->log().find("tcp connect"), std::string::npos) << network_->log();

  bool saw_sni_denial = false;
  for (const nlohmann::json& event : egress_events("web.test")) {
    const std::string reason = event.value("reason", "");
    saw_sni_denial = saw_sni_denial || (event["decision"] == "deny" && reason.find("other.test") != std::string::npos &&
                                        event.value("server_name", "") == "other.test");
  }
  EXPECT_TRUE(saw_sni_denial);
}

// Without the proxy there is nowhere to send anything: no interface but
// loopback, no route, no resolver. Nothing arrives at the test server.
TEST_F(EgressTest, RawNetworkAccessFails) {
  const std::string script = R"(python3 - <<'PY'
import os, socket
print('interfaces:', sorted(os.listdir('/sys/class/net')))
try:
    socket.create_connection((')" + network_->address() + R"(', 9000), timeout=5)
    print('tcp: connected')
except OSError as error:
    print('tcp: failed', error.errno)
try:
    socket.getaddrinfo('web.test', 8080)
    print('dns: resolved')
except OSError:
    print('dns: failed')
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'ping', (')" + network_->address() + R"(', 9053))
    print('udp: sent')
except OSError as error:
    print('udp: failed', error.errno)
PY
)";
  const Outcome result = run(script);
  ASSERT_EQ(result.exit_code, 0) << result;
  EXPECT_NE(result.out.find("interfaces: ['lo']"), std::string::npos) << result;
  EXPECT_NE(result.out.find("tcp: failed 101"), std::string::npos) << result;  // ENETUNREACH
  EXPECT_NE(result.out.find("dns: failed"), std::string::npos) << result;
  EXPECT_NE(result.out.find("udp: failed 101"), std::string::npos) << result;
  EXPECT_EQ(network_->log().find("tcp connect"), std::string::npos) << network_->log();
  EXPECT_EQ(network_->log().find("udp packet"), std::string::npos) << network_->log();
}

TEST_F(EgressTest, IngressRateCapsDownload) {
  allow({"web.test:8080"});
  allow_test_subnet();
  const Outcome result =
      run("curl -sS -o /dev/null -w '%{size_download} %{time_total}\\n' http://web.test:8080/bytes/3000000",
          {"--ingress-rate", "1M"});
  expect_capped_transfer(result);
}

TEST_F(EgressTest, EgressRateCapsUpload) {
  allow({"web.test:8080"});
  allow_test_subnet();
  const Outcome result = run(
      "head -c 3000000 /dev/zero > /tmp/upload && "
      "curl -sS -o /dev/null -w '%{size_upload} %{time_total}\\n' -X POST --data-binary @/tmp/upload "
      "http://web.test:8080/",
      {"--egress-rate", "1M"});
  expect_capped_transfer(result);
}

// With a cap of two, a third connection gets 503 while two tunnels are
// open, and the next one after they close is allowed again.
TEST_F(EgressTest, ConnectionCapDeniesExtraConnections) {
  allow({"web.test:8443"});
  allow_test_subnet();
  const std::string script = R"(python3 - <<'PY'
import socket
def connect():
    s = socket.create_connection(('127.0.0.1', 3128))
    s.sendall(b'CONNECT web.test:8443 HTTP/1.1\r\nHost: web.test:8443\r\n\r\n')
    return s, s.recv(100).split(b'\r\n')[0].decode()
first, status = connect(); print('first', status)
second, status = connect(); print('second', status)
third, status = connect(); print('third', status)
first.close(); second.close(); third.close()
import time
for attempt in range(50):
    fourth, status = connect()
    if '200' in status: break
    fourth.close(); time.sleep(0.1)
print('fourth', status)
PY
)";
  const Outcome result = run(script, {"--max-connections", "2"});
  ASSERT_EQ(result.exit_code, 0) << result;
  EXPECT_NE(result.out.find("first HTTP/1.1 200 Connection established"), std::string::npos) << result;
  EXPECT_NE(result.out.find("second HTTP/1.1 200 Connection established"), std::string::npos) << result;
  EXPECT_NE(result.out.find("third HTTP/1.1 503 Service Unavailable"), std::string::npos) << result;
  EXPECT_NE(result.out.find("fourth HTTP/1.1 200 Connection established"), std::string::npos) << result;
}

// The quota caps the bytes of open connections too: the download stops at
// 1 MiB, and the next connection is denied.
TEST_F(EgressTest, QuotaStopsTransferAndNextConnection) {
  allow({"web.test:8080"});
  allow_test_subnet();
  const Outcome result = run(
      "curl -sS -o /dev/null -w 'first %{http_code} %{size_download}\\n' http://web.test:8080/bytes/3000000; "
      "curl -sS -w 'second %{http_code}\\n' http://web.test:8080/",
      {"--egress-quota", "1M"});
  ASSERT_EQ(result.exit_code, 0) << result;
  std::size_t first_size = 0;
  const std::size_t first = result.out.find("first 200 ");
  ASSERT_NE(first, std::string::npos) << result;
  first_size = std::stoul(result.out.substr(first + 10));
  EXPECT_LT(first_size, 1u << 20) << result;
  EXPECT_GT(first_size, 0u) << result;
  EXPECT_NE(result.out.find("quota"), std::string::npos) << result;
  EXPECT_NE(result.out.find("second 403"), std::string::npos) << result;
}

// A second request pipelined on a plain-HTTP connection never reaches the
// origin, whatever its Host header names. A chunked body is rejected.
TEST_F(EgressTest, OneRequestPerPlainConnection) {
  allow({"web.test:8080"});
  allow_test_subnet();
  const std::string script = R"(python3 - <<'PY'
import socket
s = socket.create_connection(('127.0.0.1', 3128))
s.sendall(b'GET http://web.test:8080/first HTTP/1.1\r\nHost: web.test:8080\r\n\r\n'
          b'GET /second HTTP/1.1\r\nHost: other.test:8080\r\n\r\n')
data = b''
while True:
    chunk = s.recv(4096)
    if not chunk: break
    data += chunk
print('pipelined:', data.split(b'\r\n')[0].decode())
s = socket.create_connection(('127.0.0.1', 3128))
s.sendall(b'POST http://web.test:8080/ HTTP/1.1\r\nHost: web.test:8080\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
print('chunked:', s.recv(100).split(b'\r\n')[0].decode())
s = socket.create_connection(('127.0.0.1', 3128))
s.sendall(b'GET http://web.test:8080/caf\xe9 HTTP/1.1\r\nHost: web.test:8080\r\n\r\n')
print('latin-1 path:', s.recv(100).split(b'\r\n')[0].decode())
PY
)";
  const Outcome result = run(script);
  ASSERT_EQ(result.exit_code, 0) << result;
  EXPECT_NE(result.out.find("chunked: HTTP/1.1 411 Length Required"), std::string::npos) << result;
  // A path that is not UTF-8 is recorded with U+FFFD in its place.
  EXPECT_NE(result.out.find("latin-1 path: HTTP/1.1 404"), std::string::npos) << result;
  bool recorded = false;
  for (const nlohmann::json& event : egress_events("web.test")) {
    recorded = recorded || event.value("path", "") == "/caf\xef\xbf\xbd";
  }
  EXPECT_TRUE(recorded);
  EXPECT_EQ(network_->log().find("/second"), std::string::npos) << network_->log();
  EXPECT_EQ(network_->log().find("host=other.test"), std::string::npos) << network_->log();
}

// A client that waits before its ClientHello is still checked: nothing it
// sends reaches the origin until the server name matches.
TEST_F(EgressTest, DelayedClientHelloStillChecked) {
  allow({"web.test:8443"});
  allow_test_subnet();
  const std::string script = R"(python3 - <<'PY'
import socket, ssl, time
s = socket.create_connection(('127.0.0.1', 3128))
s.sendall(b'CONNECT web.test:8443 HTTP/1.1\r\nHost: web.test:8443\r\n\r\n')
head = b''
while b'\r\n\r\n' not in head:
    head += s.recv(1)
time.sleep(7)
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
try:
    context.wrap_socket(s, server_hostname='other.test').close()
    print('late hello: handshake ok')
except (ssl.SSLError, OSError):
    print('late hello: handshake failed')
PY
)";
  const Outcome result = run(script);
  ASSERT_EQ(result.exit_code, 0) << result;
  EXPECT_NE(result.out.find("late hello: handshake failed"), std::string::npos) << result;
  EXPECT_EQ(network_->log().find("sni=other.test"), std::string::npos) << network_->log();
}

// A policy change reaches a live run at its next connection.
TEST_F(EgressTest, PolicyChangeAppliesToLiveRun) {
  allow_test_subnet();
  auto run = home_.start({"run", "--project", kAgent, "--", "sh", "-c",
                          "curl -s -o /dev/null -w 'before %{http_code}\\n' http://web.test:8080/; "
                          "for i in $(seq 120); do "
                          "  code=$(curl -s -o /dev/null -w '%{http_code}' http://web.test:8080/); "
                          "  [ \"$code\" = 200 ] && echo after 200 && exit 0; sleep 0.5; done; exit 1"});
  ASSERT_TRUE(run->wait_for_output("before 403", 120s)) << run->err();
  allow({"web.test:8080"});
  const auto ended = run->wait(120s);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->exit_code, 0) << *ended;
  EXPECT_NE(ended->out.find("after 200"), std::string::npos) << *ended;
}

// Bytes moving through the proxy keep a run from its idle deadline: a
// silent 1.2 MB download at 100 KiB/s outlasts a 4 s idle timeout.
TEST_F(EgressTest, EgressTrafficIsNotIdle) {
  allow({"web.test:8080"});
  allow_test_subnet();
  const Outcome result = run("curl -sS -o /dev/null http://web.test:8080/bytes/1200000 && echo done",
                             {"--ingress-rate", "100K", "--idle-timeout", "4s"});
  EXPECT_EQ(result.exit_code, 0) << result;
  EXPECT_EQ(result.out, "done\n") << result;
  EXPECT_GE(result.elapsed, 10s) << result;
}

}  // namespace
}  // namespace zwrm::integration
