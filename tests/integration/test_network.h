// Test hosts that belong to one test: a network namespace joined to the host
// by a veth pair, with zwrm-test-server listening inside it. Proxy tests
// point the proxy at these servers (through a hosts file that the proxy
// reads when ZWRM_TEST_HOSTS names it), so no request leaves the machine.
//
// Creating a TestNetwork needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and
// iproute2. It adds only a namespace named zwrm-t<pid>-<n>, a veth pair named
// zt<pid>h<n> / zt<pid>n<n> and a /30 inside 10.231.0.0/16, and removes them
// again. The namespace has no default route, so its servers can reach
// nothing but the host side of the veth pair.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/integration/harness.h"

namespace zwrm::integration {

// How one command ended and what it printed.
struct CommandResult {
  int exit_code = -1;  // the exit status, or 128 + N when killed by signal N
  std::string out;
  std::string err;
};

// Runs argv (argv[0] is looked up in PATH) with stdin on /dev/null and waits
// for it. exit_code is 127 when argv[0] cannot be run.
CommandResult run_command(const std::vector<std::string>& argv);

// Returns the path of the zwrm-test-server binary (set by CMake).
std::string test_server_binary();

class TestNetwork {
 public:
  // Ports zwrm-test-server listens on, at address().
  static constexpr int kHttpPort = 8080;
  static constexpr int kHttpsPort = 8443;
  static constexpr int kTcpPort = 9000;
  static constexpr int kUdpPort = 9053;

  // Creates the namespace, the veth pair and the addresses, then starts the
  // server and waits until it is ready. Removes stale namespaces of dead test
  // processes first. Returns nullptr with *error set to the failed command
  // and its stderr; whatever was created before the failure is removed.
  static std::unique_ptr<TestNetwork> create(std::string* error);

  // Deletes namespaces named zwrm-t<pid>-<n> whose process no longer exists,
  // with their servers and temporary directories ($TMPDIR/zwrm-t<pid>-<n>.*).
  // Deleting a namespace also deletes its veth pair and addresses.
  static void remove_stale();

  // Stops the server, deletes the namespace and removes the temporary files.
  // Reports what it could not remove as a gtest failure.
  ~TestNetwork();
  TestNetwork(const TestNetwork&) = delete;
  TestNetwork& operator=(const TestNetwork&) = delete;

  // The namespace, as `ip netns` lists it.
  const std::string& namespace_name() const { return namespace_name_; }
  // The veth end in the host's namespace.
  const std::string& host_interface() const { return host_interface_; }
  // The servers' address: the namespace side of the /30 ("10.231.x.y+2").
  const std::string& address() const { return address_; }
  // The host side of the /30 ("10.231.x.y+1"), the source of host connections.
  const std::string& host_side_address() const { return host_side_address_; }
  // The /30 in CIDR notation ("10.231.x.y/30").
  const std::string& subnet() const { return subnet_; }
  // The PEM file of the HTTPS server's self-signed certificate (CN
  // zwrm-test, no subjectAltName).
  const std::string& certificate_path() const { return certificate_path_; }

  // Returns the server's event log so far, one line per event: "ready",
  // "http GET /path host=HOST", "https GET /path host=HOST", "tls sni=NAME"
  // (or "tls sni=-"), "http invalid request from ADDR:PORT: REASON", "tcp
  // connect from ADDR:PORT", "udp packet from ADDR:PORT bytes=N".
  std::string log() const;

  // Waits until the log contains text. The server writes a line when the
  // event happens, which can be just after the client saw its outcome.
  bool wait_for_log(std::string_view text, Milliseconds timeout = 5s) const;

  // Writes a file in /etc/hosts format, one "ADDRESS NAME" line per entry of
  // names, each given as {name, address}, and returns its path. The file is
  // removed with the TestNetwork.
  std::string hosts_file(const std::vector<std::pair<std::string, std::string>>& names);

 private:
  TestNetwork() = default;

  std::string set_up();
  std::string choose_subnet();
  std::string create_links();
  std::string start_server();

  int number_ = 0;  // this process's count of networks before this one
  std::string namespace_name_;
  std::string host_interface_;
  std::string namespace_interface_;
  std::string address_;
  std::string host_side_address_;
  std::string subnet_;
  std::string directory_;
  std::string log_path_;
  std::string certificate_path_;
  bool namespace_created_ = false;
  pid_t server_pid_ = -1;
  int hosts_file_count_ = 0;
};

}  // namespace zwrm::integration
