#include "host/supervisor/resolver.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

namespace zwrm::supervisor {

namespace {

Result<std::multimap<std::string, proxy::IpAddress>> read_hosts_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) return fail_errno("cannot read the test hosts file " + path + " (ZWRM_TEST_HOSTS)");
  std::multimap<std::string, proxy::IpAddress> hosts;
  std::string line;
  while (std::getline(file, line)) {
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::string address_text;
    if (!(words >> address_text)) continue;
    auto address = proxy::parse_ip_literal(address_text);
    if (!address) return fail("invalid address " + address_text + " in the test hosts file " + path);
    std::string name;
    while (words >> name) hosts.emplace(name, *address);
  }
  return hosts;
}

std::vector<proxy::IpAddress> to_addresses(const addrinfo* list) {
  std::vector<proxy::IpAddress> addresses;
  for (const addrinfo* entry = list; entry != nullptr; entry = entry->ai_next) {
    proxy::IpAddress address;
    if (entry->ai_family == AF_INET) {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(entry->ai_addr);
      address.family = proxy::IpAddress::Family::kV4;
      std::memcpy(address.bytes.data(), &v4->sin_addr, 4);
    } else if (entry->ai_family == AF_INET6) {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(entry->ai_addr);
      address.family = proxy::IpAddress::Family::kV6;
      std::memcpy(address.bytes.data(), &v6->sin6_addr, 16);
    } else {
      continue;
    }
    bool seen = false;
    for (const proxy::IpAddress& other : addresses) seen = seen || other == address;
    if (!seen) addresses.push_back(address);
  }
  return addresses;
}

}  // namespace

Result<std::unique_ptr<Resolver>> Resolver::create() {
  std::unique_ptr<Resolver> resolver(new Resolver());
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) return fail_errno("cannot create the resolver's pipe");
  resolver->read_end_.reset(pipe_fds[0]);
  resolver->shared_ = std::make_shared<Shared>();
  resolver->shared_->write_end.reset(pipe_fds[1]);
  if (const char* path = std::getenv("ZWRM_TEST_HOSTS"); path != nullptr && *path != '\0') {
    auto hosts = read_hosts_file(path);
    if (!hosts) return tl::unexpected(hosts.error());
    spdlog::warn("resolving egress host names only from the test hosts file {} (ZWRM_TEST_HOSTS)", path);
    resolver->test_hosts_ = std::move(*hosts);
  }
  return resolver;
}

Resolver::~Resolver() = default;

void Resolver::start(std::uint64_t id, const std::string& host) {
  if (test_hosts_) {
    Resolution result{id, {}, ""};
    auto [first, last] = test_hosts_->equal_range(host);
    for (auto it = first; it != last; ++it) result.addresses.push_back(it->second);
    if (result.addresses.empty()) result.error = "the name is not in the test hosts file";
    std::lock_guard lock(shared_->mutex);
    shared_->results.push_back(std::move(result));
    (void)::write(shared_->write_end.get(), "r", 1);
    return;
  }
  // The thread holds the shared state, not the resolver, so a lookup that
  // outlives the run (a slow DNS server) writes into a pipe that is no longer read.
  std::thread([shared = shared_, id, host]() {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    const int code = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
    Resolution result{id, {}, ""};
    if (code == 0) {
      result.addresses = to_addresses(list);
      ::freeaddrinfo(list);
    } else {
      result.error = ::gai_strerror(code);
    }
    std::lock_guard lock(shared->mutex);
    shared->results.push_back(std::move(result));
    (void)::write(shared->write_end.get(), "r", 1);
  }).detach();
}

std::vector<Resolution> Resolver::take_results() {
  char drain[256];
  while (::read(read_end_.get(), drain, sizeof drain) > 0) {
  }
  std::lock_guard lock(shared_->mutex);
  return std::exchange(shared_->results, {});
}

}  // namespace zwrm::supervisor
