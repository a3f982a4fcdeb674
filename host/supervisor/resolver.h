// Name resolution for the egress proxy without blocking the supervisor's
// event loop: each lookup runs getaddrinfo(3) on its own thread and the
// result comes back through a pipe the event loop polls.
//
// ZWRM_TEST_HOSTS names a file in /etc/hosts format that replaces the
// system resolver entirely: names not in it do not resolve. Integration
// tests use it to give their own test hosts names; it changes nothing a
// policy allows, because the policy is checked on the name and again on the
// address the name resolves to.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "host/proxy/address.h"

namespace zwrm::supervisor {

struct Resolution {
  std::uint64_t id = 0;
  std::vector<proxy::IpAddress> addresses;  // empty when the lookup failed
  std::string error;                        // why it failed
};

class Resolver {
 public:
  // Reads ZWRM_TEST_HOSTS when set. Fails when its file cannot be read.
  static Result<std::unique_ptr<Resolver>> create();
  ~Resolver();

  // Starts looking up host; its Resolution carries id.
  void start(std::uint64_t id, const std::string& host);
  // The descriptor that becomes readable when results are ready.
  int fd() const { return read_end_.get(); }
  // Returns the finished lookups.
  std::vector<Resolution> take_results();

 private:
  struct Shared {
    std::mutex mutex;
    std::vector<Resolution> results;
    UniqueFd write_end;
  };

  Resolver() = default;

  std::shared_ptr<Shared> shared_;
  UniqueFd read_end_;
  std::optional<std::multimap<std::string, proxy::IpAddress>> test_hosts_;
};

}  // namespace zwrm::supervisor
