// Parsing of the request a guest process sends to the egress proxy: an
// HTTP/1.x CONNECT with an authority target, or a plain-HTTP request with an
// absolute-form target ("GET http://host/path HTTP/1.1"). The input is
// untrusted; every limit below is checked before anything is stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "host/proxy/host_name.h"

namespace zwrm::proxy {

// The request line and headers together may not exceed this; a longer head
// is rejected with 431.
inline constexpr std::size_t kMaxRequestHead = 32 * 1024;
inline constexpr std::size_t kMaxHeaders = 100;

struct ProxyRequest {
  enum class Kind : std::uint8_t { kConnect, kForward };
  Kind kind = Kind::kConnect;
  std::string method;   // as sent, e.g. "CONNECT", "GET"
  std::string version;  // "HTTP/1.1" or "HTTP/1.0"
  Target target;        // normalised; default port 80 for http:// targets. CONNECT needs an explicit port
  std::string path;     // kForward: origin-form path and query ("/" when the URL has none)
  std::vector<std::pair<std::string, std::string>> headers;  // names as sent, values trimmed
  std::size_t head_size = 0;  // bytes of the request line and headers, up to and including the blank line
};

// A request the proxy rejects with an HTTP error status of its own.
struct RequestError {
  int status = 400;     // 400, 405 (a method or scheme the proxy does not relay), 431, 505
  std::string message;  // one sentence for the response body and the audit row
};

// Parses the head at the start of buffer. Returns nullopt while the blank
// line that ends the head has not arrived yet and buffer is under
// kMaxRequestHead. Bytes after the head (a request body, or data the client
// sent early) are left to the caller: they start at head_size. Accepts only
// http:// targets for plain requests (https:// goes through CONNECT).
// Rejects obs-fold lines, bare CR or LF, a header name with characters
// outside the token set, control characters in a header value or the target,
// NUL anywhere in the head, and more than kMaxHeaders headers. Also rejects
// userinfo in a target, and both Content-Length and Transfer-Encoding (or
// differing Content-Length values), which an origin could frame differently.
tl::expected<std::optional<ProxyRequest>, RequestError> parse_proxy_request(std::string_view buffer);

// Returns the value of the first header named name (case-insensitive).
std::optional<std::string_view> find_header(const ProxyRequest& request, std::string_view name);

// Checks a kForward request's Host header against its target: it must be
// present (exactly once) and, once normalised with the target's default
// port, name the same host and port. Returns the reason when it does not.
// Returns nullopt for a kConnect request, whose Host header is not used.
std::optional<std::string> host_header_mismatch(const ProxyRequest& request);

// Builds the head to send upstream for a kForward request: the request line
// in origin form, the client's headers except hop-by-hop ones (Connection,
// the headers Connection lists, Proxy-Connection, Proxy-Authorization,
// Keep-Alive, TE, Trailer, Upgrade), and "Connection: close", so the origin
// closes the connection after one response and a second request on it
// cannot reach another host unchecked. Host, Content-Length and
// Transfer-Encoding are kept even when Connection lists them. Aborts for a
// kConnect request.
std::string forward_request_head(const ProxyRequest& request);

// Builds a complete response the proxy sends for a request it does not
// relay: status line, Content-Type text/plain, Content-Length,
// Connection: close, and message plus a newline as the body. A status
// without a known reason phrase gets an empty one. status must have three
// digits; any other value aborts.
std::string error_response(int status, std::string_view message);

}  // namespace zwrm::proxy
