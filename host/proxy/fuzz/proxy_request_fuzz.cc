// libFuzzer target for the request a guest sends to the egress proxy. Any
// input must give a request, a request for more bytes, or a RequestError.
// Beyond crashes and sanitizer reports, it aborts when a prefix of the input
// disagrees with the whole, or when an accepted request yields an upstream
// head that could carry a second line or header.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "host/proxy/http_request.h"

using namespace zwrm::proxy;

namespace {

// A head sent upstream must consist of CRLF-terminated lines without NUL,
// bare CR or bare LF, ending with the blank line.
bool is_clean_head(std::string_view head) {
  if (!head.ends_with("\r\n\r\n")) return false;
  for (std::size_t i = 0; i < head.size(); ++i) {
    if (head[i] == '\0') return false;
    if (head[i] == '\r' && (i + 1 == head.size() || head[i + 1] != '\n')) return false;
    if (head[i] == '\n' && (i == 0 || head[i - 1] != '\r')) return false;
  }
  return head.find("\r\n\r\n") == head.size() - 4;
}

void check_request(const ProxyRequest& request, std::size_t size) {
  if (request.head_size == 0 || request.head_size > size || request.head_size > kMaxRequestHead) std::abort();
  if (request.headers.size() > kMaxHeaders) std::abort();
  if (request.version != "HTTP/1.1" && request.version != "HTTP/1.0") std::abort();
  if (request.target.port == 0) std::abort();
  (void)find_header(request, "Host");
  (void)host_header_mismatch(request);
  if (request.kind != ProxyRequest::Kind::kForward) return;

  if (request.path.empty() || request.path.front() != '/') std::abort();
  const std::string head = forward_request_head(request);
  if (!is_clean_head(head)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view buffer(reinterpret_cast<const char*>(data), size);
  const auto whole = parse_proxy_request(buffer);
  if (!whole) {
    (void)error_response(whole.error().status, whole.error().message);
  } else if (*whole) {
    check_request(**whole, size);
  }

  // A prefix is the start of the same byte stream, so parsing it must
  // return nullopt or the same outcome as the whole.
  const std::size_t split = size > 0 ? data[0] % (size + 1) : 0;
  const auto prefix = parse_proxy_request(buffer.substr(0, split));
  if (prefix && !*prefix) return 0;
  if (prefix.has_value() != whole.has_value()) std::abort();
  if (!prefix && prefix.error().status != whole.error().status) std::abort();
  if (prefix && (!*whole || (*prefix)->head_size != (*whole)->head_size)) std::abort();
  return 0;
}
