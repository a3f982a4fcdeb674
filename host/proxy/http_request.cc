#include "host/proxy/http_request.h"

#include <algorithm>

#include "common/printable.h"

namespace zwrm::proxy {
namespace {

using ParseResult = tl::expected<std::optional<ProxyRequest>, RequestError>;

// Error messages quote at most this many bytes of a request value, so the
// message for a 32 KiB target stays one readable line.
constexpr std::size_t kMaxQuoted = 200;

tl::unexpected<RequestError> reject(int status, std::string message) {
  return tl::unexpected<RequestError>(RequestError{status, std::move(message)});
}

std::string quote(std::string_view text) {
  std::string quoted = "'" + printable(text.substr(0, kMaxQuoted));
  if (text.size() > kMaxQuoted) quoted += "...";
  return quoted + "'";
}

// Character classes in ASCII only: the <cctype> functions depend on the
// process locale, which could class bytes above 0x7f as letters.
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

char to_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// tchar from RFC 9110, section 5.6.2.
bool is_token_char(char c) {
  constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  return is_alpha(c) || is_digit(c) || kSymbols.find(c) != std::string_view::npos;
}

bool is_token(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_token_char);
}

// scheme from RFC 3986, section 3.1.
bool is_scheme(std::string_view text) {
  if (text.empty() || !is_alpha(text[0])) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
  });
}

bool equals_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return to_lower(x) == to_lower(y); });
}

std::string_view trim_whitespace(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Returns the size of the head (through the blank line), or nullopt while it
// is incomplete. Checks line ends, NUL bytes and the header count on the way,
// so a bad prefix is rejected without waiting for the rest of the head.
tl::expected<std::optional<std::size_t>, RequestError> find_head_end(std::string_view buffer) {
  const std::size_t limit = std::min(buffer.size(), kMaxRequestHead);
  std::size_t line_start = 0;
  std::size_t header_lines = 0;
  for (std::size_t i = 0; i < limit; ++i) {
    const char c = buffer[i];
    if (c == '\0') return reject(400, "the request head contains a NUL byte");
    if (c == '\r') {
      if (i + 1 == limit) break;
      if (buffer[i + 1] != '\n') return reject(400, "the request head contains a CR that is not followed by LF");
      continue;
    }
    if (c != '\n') continue;

    if (i == 0 || buffer[i - 1] != '\r') {
      return reject(400, "the request head contains a line that ends in LF without CR; end each line with CRLF");
    }
    if (i - 1 == line_start) return i + 1;
    if (line_start > 0 && ++header_lines > kMaxHeaders) {
      return reject(431, "the request has more than " + std::to_string(kMaxHeaders) + " header lines");
    }
    line_start = i + 1;
  }
  if (buffer.size() >= kMaxRequestHead) {
    return reject(431, "the request head is larger than " + std::to_string(kMaxRequestHead) + " bytes");
  }
  return std::nullopt;
}

struct RequestLine {
  std::string_view method;
  std::string_view target;
  std::string_view version;
};

// Splits METHOD SP TARGET SP VERSION and checks each part's syntax.
tl::expected<RequestLine, RequestError> parse_request_line(std::string_view line) {
  auto invalid = [&] {
    return reject(400, "invalid request line " + quote(line) + "; expected METHOD TARGET HTTP/1.1");
  };
  const std::size_t first = line.find(' ');
  if (first == std::string_view::npos) return invalid();
  const std::size_t second = line.find(' ', first + 1);
  if (second == std::string_view::npos || line.find(' ', second + 1) != std::string_view::npos) return invalid();

  RequestLine parts{line.substr(0, first), line.substr(first + 1, second - first - 1), line.substr(second + 1)};
  if (!is_token(parts.method)) return reject(400, "invalid method " + quote(parts.method) + "; a method is a token such as GET");
  if (parts.target.empty()) return invalid();
  for (unsigned char c : parts.target) {
    if (c < 0x20 || c == 0x7f) return reject(400, "the request target " + quote(parts.target) + " contains a control character");
  }

  const std::string_view version = parts.version;
  const bool well_formed = version.size() == 8 && version.starts_with("HTTP/") && is_digit(version[5]) &&
                           version[6] == '.' && is_digit(version[7]);
  if (!well_formed) return reject(400, "invalid HTTP version " + quote(version) + "; expected HTTP/1.1");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return reject(505, quote(version) + " is not supported; the proxy accepts HTTP/1.1 and HTTP/1.0");
  }
  return parts;
}

// Parses the authority-form target of a CONNECT request: host and port only.
tl::expected<Target, RequestError> parse_connect_target(std::string_view target) {
  if (target.find('@') != std::string_view::npos) {
    return reject(400, "the CONNECT target " + quote(target) + " contains userinfo; send host:port only");
  }
  const std::size_t colon = target.rfind(':');
  const std::size_t bracket = target.rfind(']');
  if (colon == std::string_view::npos || (bracket != std::string_view::npos && colon < bracket)) {
    return reject(400, "the CONNECT target " + quote(target) + " has no port; send host:port, such as example.com:443");
  }
  auto parsed = parse_authority(target, 0);
  if (!parsed) return reject(400, "CONNECT target: " + parsed.error().message);
  return *parsed;
}

struct AbsoluteTarget {
  Target target;
  std::string path;
};

// Parses an absolute-form http:// target into its normalised authority and
// its path and query. The fragment is dropped because it never goes on the
// wire to the origin.
tl::expected<AbsoluteTarget, RequestError> parse_absolute_target(std::string_view target) {
  if (target.front() == '/' || target == "*") {
    return reject(400, "the request target " + quote(target) +
                           " is not an absolute URL, so this is not a proxy request; send http://host/path or use CONNECT");
  }
  const std::size_t scheme_end = target.find("://");
  if (scheme_end == std::string_view::npos || !is_scheme(target.substr(0, scheme_end))) {
    return reject(400, "invalid request target " + quote(target) +
                           "; a proxy request needs an absolute URL such as http://example.com/ or CONNECT host:port");
  }
  const std::string_view scheme = target.substr(0, scheme_end);
  if (equals_ignore_case(scheme, "https")) {
    return reject(405, "the proxy does not relay https:// URLs as plain requests; use CONNECT host:443 and TLS through the tunnel");
  }
  if (!equals_ignore_case(scheme, "http")) {
    return reject(405, "the proxy relays only http:// URLs as plain requests, not " + quote(scheme) +
                           "; use CONNECT host:port for other protocols");
  }

  std::string_view rest = target.substr(scheme_end + 3);
  const std::size_t authority_end = std::min(rest.find_first_of("/?#"), rest.size());
  const std::string_view authority = rest.substr(0, authority_end);
  rest.remove_prefix(authority_end);
  // RFC 9110, section 4.2.4: userinfo in an http URL is an error. A backslash
  // ends the authority in browsers' URL parsing but not in RFC 3986, so the
  // two would see different hosts.
  if (authority.find_first_of("@\\") != std::string_view::npos) {
    return reject(400, "the request target " + quote(target) + " contains userinfo or a backslash in its authority");
  }
  auto parsed = parse_authority(authority, 80);
  if (!parsed) return reject(400, "request target " + quote(target) + ": " + parsed.error().message);

  rest = rest.substr(0, rest.find('#'));
  std::string path = rest.empty() || rest.front() == '?' ? "/" : "";
  path += rest;
  return AbsoluteTarget{*parsed, std::move(path)};
}

using Headers = std::vector<std::pair<std::string, std::string>>;

// Parses the header lines: everything between the request line and the
// blank line, each line ending in CRLF.
tl::expected<Headers, RequestError> parse_headers(std::string_view lines) {
  Headers headers;
  while (!lines.empty()) {
    const std::size_t end = lines.find("\r\n");
    const std::string_view line = lines.substr(0, end);
    lines.remove_prefix(end + 2);

    if (line.front() == ' ' || line.front() == '\t') {
      return reject(400, "the header line " + quote(line) +
                             " starts with whitespace (obsolete line folding); send each header on one line");
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return reject(400, "the header line " + quote(line) + " has no colon");
    const std::string_view name = line.substr(0, colon);
    if (!is_token(name)) return reject(400, "invalid header name " + quote(name));
    const std::string_view value = trim_whitespace(line.substr(colon + 1));
    for (unsigned char c : value) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        return reject(400, "the value of header " + quote(name) + " contains a control character");
      }
    }
    headers.emplace_back(name, value);
  }
  return headers;
}

// Rejects message framing that an origin could read differently from the
// proxy: both Content-Length and Transfer-Encoding (RFC 9112, section 6.1),
// or a Content-Length that is not one decimal number.
std::optional<RequestError> check_framing(const Headers& headers) {
  bool has_transfer_encoding = false;
  std::optional<std::string_view> content_length;
  for (const auto& [name, value] : headers) {
    if (equals_ignore_case(name, "Transfer-Encoding")) has_transfer_encoding = true;
    if (!equals_ignore_case(name, "Content-Length")) continue;

    // A length of more than 19 digits cannot fit in 64 bits, so an origin
    // would reject it or read another number.
    const bool digits = !value.empty() && value.size() <= 19 && std::all_of(value.begin(), value.end(), is_digit);
    if (!digits) return RequestError{400, "invalid Content-Length " + quote(value)};
    if (content_length && *content_length != value) {
      return RequestError{400, "the request has Content-Length headers with different values"};
    }
    content_length = value;
  }
  if (has_transfer_encoding && content_length) {
    return RequestError{400, "the request has both Content-Length and Transfer-Encoding; send only one"};
  }
  return std::nullopt;
}

bool is_listed_in_connection(const ProxyRequest& request, std::string_view name) {
  for (const auto& [header, value] : request.headers) {
    if (!equals_ignore_case(header, "Connection")) continue;
    std::string_view list = value;
    while (!list.empty()) {
      const std::size_t comma = std::min(list.find(','), list.size());
      if (equals_ignore_case(trim_whitespace(list.substr(0, comma)), name)) return true;
      list.remove_prefix(std::min(comma + 1, list.size()));
    }
  }
  return false;
}

bool is_hop_by_hop(const ProxyRequest& request, std::string_view name) {
  for (std::string_view fixed : {"Connection", "Proxy-Connection", "Proxy-Authorization", "Keep-Alive", "TE",
                                 "Trailer", "Upgrade"}) {
    if (equals_ignore_case(name, fixed)) return true;
  }
  // Connection may list any header, but dropping Host would send the origin
  // a request without the checked host, and dropping a framing header would
  // turn the body into a second request.
  for (std::string_view kept : {"Host", "Content-Length", "Transfer-Encoding"}) {
    if (equals_ignore_case(name, kept)) return false;
  }
  return is_listed_in_connection(request, name);
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 405: return "Method Not Allowed";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 431: return "Request Header Fields Too Large";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

}  // namespace

ParseResult parse_proxy_request(std::string_view buffer) {
  auto head_end = find_head_end(buffer);
  if (!head_end) return tl::unexpected(head_end.error());
  if (!*head_end) return std::nullopt;
  const std::size_t head_size = **head_end;

  // The head is the request line and header lines, each ending in CRLF, and
  // the blank line. find_head_end has checked every line end.
  if (head_size == 2) return reject(400, "the request line is empty");
  const std::string_view head = buffer.substr(0, head_size - 2);
  const std::size_t line_end = head.find("\r\n");
  auto line = parse_request_line(head.substr(0, line_end));
  if (!line) return tl::unexpected(line.error());

  ProxyRequest request;
  request.method = line->method;
  request.version = line->version;
  request.head_size = head_size;
  if (line->method == "CONNECT") {
    auto target = parse_connect_target(line->target);
    if (!target) return tl::unexpected(target.error());
    request.kind = ProxyRequest::Kind::kConnect;
    request.target = std::move(*target);
  } else {
    auto target = parse_absolute_target(line->target);
    if (!target) return tl::unexpected(target.error());
    request.kind = ProxyRequest::Kind::kForward;
    request.target = std::move(target->target);
    request.path = std::move(target->path);
  }

  auto headers = parse_headers(head.substr(line_end + 2));
  if (!headers) return tl::unexpected(headers.error());
  request.headers = std::move(*headers);
  if (auto error = check_framing(request.headers)) return tl::unexpected(std::move(*error));
  return request;
}

std::optional<std::string_view> find_header(const ProxyRequest& request, std::string_view name) {
  for (const auto& [header, value] : request.headers) {
    if (equals_ignore_case(header, name)) return value;
  }
  return std::nullopt;
}

std::optional<std::string> host_header_mismatch(const ProxyRequest& request) {
  if (request.kind != ProxyRequest::Kind::kForward) return std::nullopt;
  const std::size_t count = std::count_if(request.headers.begin(), request.headers.end(), [](const auto& header) {
    return equals_ignore_case(header.first, "Host");
  });
  const std::string expected = format_target(request.target);
  if (count == 0) return "the request has no Host header; send Host: " + expected;
  if (count > 1) return "the request has " + std::to_string(count) + " Host headers; send exactly one";

  const std::string_view value = *find_header(request, "Host");
  if (value.empty()) return "the Host header is empty but the request target is " + expected;
  if (value.find('@') != std::string_view::npos) return "the Host header " + quote(value) + " contains userinfo";
  auto host = parse_authority(value, 80);
  if (!host) return "Host header: " + host.error().message;
  if (host->host != request.target.host || host->port != request.target.port) {
    return "the Host header " + quote(value) + " names " + format_target(*host) + " but the request target is " + expected;
  }
  return std::nullopt;
}

std::string forward_request_head(const ProxyRequest& request) {
  ZWRM_CHECK(request.kind == ProxyRequest::Kind::kForward);
  // The client's HTTP version is kept: the response is relayed unchanged, and
  // an HTTP/1.0 client cannot read a chunked response that an HTTP/1.1
  // request would allow.
  std::string head = request.method + " " + request.path + " " + request.version + "\r\n";
  for (const auto& [name, value] : request.headers) {
    if (is_hop_by_hop(request, name)) continue;
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  head += "Connection: close\r\n\r\n";
  return head;
}

std::string error_response(int status, std::string_view message) {
  ZWRM_CHECK(status >= 100 && status <= 999);
  const std::string body = std::string(message) + "\n";
  std::string response = "HTTP/1.1 " + std::to_string(status) + " ";
  response += reason_phrase(status);
  response += "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size());
  response += "\r\nConnection: close\r\n\r\n";
  return response + body;
}

}  // namespace zwrm::proxy
