// libFuzzer target for the first bytes a client sends through a CONNECT
// tunnel. Beyond crashes and sanitizer reports, it aborts when a prefix of
// the input disagrees with the whole.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "host/proxy/client_hello.h"

using namespace zwrm::proxy;
using Status = ClientHelloInfo::Status;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  const ClientHelloInfo whole = parse_client_hello(bytes);
  if (whole.status != Status::kServerName && !whole.server_name.empty()) std::abort();
  if (whole.status == Status::kServerName && (whole.server_name.empty() || whole.server_name.size() > 0xffff)) {
    std::abort();
  }

  // A prefix is the start of the same byte stream, so parsing it must
  // return kNeedMore or the same outcome as the whole.
  const std::size_t split = size > 0 ? data[size - 1] % (size + 1) : 0;
  const ClientHelloInfo prefix = parse_client_hello(bytes.first(split));
  if (prefix.status == Status::kNeedMore) return 0;
  if (prefix.status != whole.status || prefix.server_name != whole.server_name) std::abort();
  return 0;
}
