#include "host/proxy/http_request.h"

#include <gtest/gtest.h>

namespace zwrm::proxy {
namespace {

using namespace std::string_literals;

// Parses a request that must be complete and valid.
ProxyRequest parse_complete(std::string_view text) {
  auto parsed = parse_proxy_request(text);
  EXPECT_TRUE(parsed.has_value()) << text << ": " << (parsed ? "" : parsed.error().message);
  if (!parsed || !*parsed) {
    ADD_FAILURE() << "incomplete or rejected: " << text;
    return {};
  }
  return **parsed;
}

// Returns the status a complete request is rejected with, or 0.
int rejection_status(std::string_view text) {
  auto parsed = parse_proxy_request(text);
  return parsed ? 0 : parsed.error().status;
}

std::string rejection_message(std::string_view text) {
  auto parsed = parse_proxy_request(text);
  return parsed ? "" : parsed.error().message;
}

std::string get_request(std::string_view target, std::string_view headers = "Host: example.com\r\n") {
  return "GET "s + std::string(target) + " HTTP/1.1\r\n" + std::string(headers) + "\r\n";
}

TEST(ProxyRequest, ParsesConnect) {
  const std::string text = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl/8.5\r\n\r\n";
  const ProxyRequest request = parse_complete(text);
  EXPECT_EQ(request.kind, ProxyRequest::Kind::kConnect);
  EXPECT_EQ(request.method, "CONNECT");
  EXPECT_EQ(request.version, "HTTP/1.1");
  EXPECT_EQ(request.target.host, "example.com");
  EXPECT_EQ(request.target.port, 443);
  EXPECT_EQ(request.path, "");
  ASSERT_EQ(request.headers.size(), 2u);
  EXPECT_EQ(request.headers[1].first, "User-Agent");
  EXPECT_EQ(request.headers[1].second, "curl/8.5");
  EXPECT_EQ(request.head_size, text.size());
}

TEST(ProxyRequest, ParsesConnectToIpLiterals) {
  const ProxyRequest v4 = parse_complete("CONNECT 192.0.2.7:8443 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(v4.target.host, "192.0.2.7");
  EXPECT_TRUE(v4.target.ip.has_value());
  EXPECT_EQ(v4.target.port, 8443);

  const ProxyRequest v6 = parse_complete("CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(v6.target.host, "2001:db8::1");
  EXPECT_TRUE(v6.target.ip.has_value());
  EXPECT_EQ(v6.target.port, 443);
}

TEST(ProxyRequest, ParsesForwardRequest) {
  const std::string text = get_request("http://Example.COM/a/b?q=1#section", "Host: example.com\r\nAccept: */*\r\n");
  const ProxyRequest request = parse_complete(text);
  EXPECT_EQ(request.kind, ProxyRequest::Kind::kForward);
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.target.host, "example.com");
  EXPECT_EQ(request.target.port, 80);
  EXPECT_EQ(request.path, "/a/b?q=1");
  EXPECT_EQ(request.head_size, text.size());
}

TEST(ProxyRequest, ForwardTargetForms) {
  struct Case {
    std::string_view target;
    std::string_view host;
    std::uint16_t port;
    std::string_view path;
  };
  const Case cases[] = {
      {"http://example.com", "example.com", 80, "/"},
      {"http://example.com/", "example.com", 80, "/"},
      {"http://example.com?x=1", "example.com", 80, "/?x=1"},
      {"http://example.com#top", "example.com", 80, "/"},
      {"http://example.com/a#top?x", "example.com", 80, "/a"},
      {"http://example.com:8080/x", "example.com", 8080, "/x"},
      {"HTTP://example.com/upper-scheme", "example.com", 80, "/upper-scheme"},
      {"hTtP://example.com/mixed-scheme", "example.com", 80, "/mixed-scheme"},
      {"http://[2001:db8::1]:8080/v6", "2001:db8::1", 8080, "/v6"},
      {"http://example.com/%41%2f?a=%20", "example.com", 80, "/%41%2f?a=%20"},
  };
  for (const Case& c : cases) {
    const ProxyRequest request = parse_complete(get_request(c.target));
    EXPECT_EQ(request.target.host, c.host) << c.target;
    EXPECT_EQ(request.target.port, c.port) << c.target;
    EXPECT_EQ(request.path, c.path) << c.target;
  }
}

TEST(ProxyRequest, AcceptsHttp10AndOtherMethods) {
  const ProxyRequest old = parse_complete("GET http://example.com/ HTTP/1.0\r\n\r\n");
  EXPECT_EQ(old.version, "HTTP/1.0");

  const ProxyRequest post = parse_complete("POST http://example.com/upload HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
  EXPECT_EQ(post.method, "POST");
  EXPECT_EQ(post.kind, ProxyRequest::Kind::kForward);

  const ProxyRequest custom = parse_complete("PROPFIND http://example.com/dav HTTP/1.1\r\n\r\n");
  EXPECT_EQ(custom.method, "PROPFIND");
}

TEST(ProxyRequest, LeavesBytesAfterHead) {
  const std::string head = "POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\n";
  const std::string text = head + "hello";
  const ProxyRequest request = parse_complete(text);
  EXPECT_EQ(request.head_size, head.size());
  EXPECT_EQ(text.substr(request.head_size), "hello");

  // Bytes after the head are not the parser's: a NUL or bare LF in a body
  // does not reject the request.
  EXPECT_EQ(parse_complete(head + "\0\n\r"s).head_size, head.size());
}

TEST(ProxyRequest, IncrementalParsing) {
  const std::string requests[] = {
      "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
      "GET http://example.com/index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
      "GET http://example.com/ HTTP/1.0\r\n\r\n",
  };
  for (const std::string& text : requests) {
    for (std::size_t size = 0; size < text.size(); ++size) {
      auto parsed = parse_proxy_request(std::string_view(text).substr(0, size));
      ASSERT_TRUE(parsed.has_value()) << "prefix of " << size << " bytes: " << parsed.error().message;
      EXPECT_FALSE(parsed->has_value()) << "prefix of " << size << " bytes";
    }
    auto parsed = parse_proxy_request(text);
    ASSERT_TRUE(parsed.has_value());
    ASSERT_TRUE(parsed->has_value());
    EXPECT_EQ((*parsed)->head_size, text.size());
  }
}

TEST(ProxyRequest, RejectsBadPrefixEarly) {
  // These are rejected before the blank line arrives.
  EXPECT_EQ(rejection_status("GET http://example.com/ HTTP/1.1\r\nX: a\0"s), 400);
  EXPECT_EQ(rejection_status("GET http://example.com/ HTTP/1.1\n"), 400);
  EXPECT_EQ(rejection_status("GET http://example.com/ HTTP/1.1\rX"), 400);
  // A CR at the end of the buffer may still be followed by LF.
  auto parsed = parse_proxy_request("GET http://example.com/ HTTP/1.1\r");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_FALSE(parsed->has_value());
}

TEST(ProxyRequest, RejectsBadLineEnds) {
  EXPECT_EQ(rejection_status("GET http://example.com/ HTTP/1.1\nHost: example.com\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET http://example.com/ HTTP/1.1\r\nHost: example.com\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\n"), 400);
  EXPECT_EQ(rejection_status("GET http://example.com/ HTTP/1.1\n\n"), 400);
  EXPECT_EQ(rejection_status("GET http://example.com/ HTTP/1.1\rHost: example.com\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET http://example.com/ HTTP/1.1\r\nX: a\rb\r\n\r\n"), 400);
  EXPECT_EQ(rejection_status("GET http://example.com/ HTTP/1.1\r\n\r\r\n"), 400);
  EXPECT_NE(rejection_message("GET http://example.com/ HTTP/1.1\n\n").find("CRLF"), std::string::npos);
}

TEST(ProxyRequest, RejectsNul) {
  EXPECT_EQ(rejection_status("GET http://example.com/\0 HTTP/1.1\r\n\r\n"s), 400);
  EXPECT_EQ(rejection_status("\0GET http://example.com/ HTTP/1.1\r\n\r\n"s), 400);
  EXPECT_EQ(rejection_status("GET http://example.com/ HTTP/1.1\r\nX-A: a\0b\r\n\r\n"s), 400);
  EXPECT_EQ(rejection_status("GET http://example.com/ HTTP/1.1\r\nX\0: ab\r\n\r\n"s), 400);
  EXPECT_NE(rejection_message("\0"s).find("NUL"), std::string::npos);
}

TEST(ProxyRequest, RejectsBadRequestLines) {
  const char* lines[] = {
      "\r\n\r\n",                                      // empty request line
      "GET\r\n\r\n",                                   // no target
      "GET http://example.com/\r\n\r\n",               // no version
      "GET  http://example.com/ HTTP/1.1\r\n\r\n",     // two spaces
      "GET http://example.com/  HTTP/1.1\r\n\r\n",     // two spaces before the version
      "GET http://example.com/ HTTP/1.1 \r\n\r\n",     // trailing space
      " GET http://example.com/ HTTP/1.1\r\n\r\n",     // leading space
      "GET http://example.com/ x HTTP/1.1\r\n\r\n",    // space in the target
      "G(T http://example.com/ HTTP/1.1\r\n\r\n",      // method is not a token
      "G@T http://example.com/ HTTP/1.1\r\n\r\n",      // method is not a token
      "GET\thttp://example.com/ HTTP/1.1\r\n\r\n",     // tab is not a separator
      "GET http://example.com/\ta HTTP/1.1\r\n\r\n",   // control character in the target
      "GET http://example.com/\x7f HTTP/1.1\r\n\r\n",  // DEL in the target
      "GET http://example.com/ http/1.1\r\n\r\n",      // version name is case-sensitive
      "GET http://example.com/ HTTP/1.10\r\n\r\n",     // not DIGIT.DIGIT
      "GET http://example.com/ HTTP/11\r\n\r\n",
      "GET http://example.com/ HTTP/\r\n\r\n",
      "GET http://example.com/ FOO\r\n\r\n",
  };
  for (const char* line : lines) EXPECT_EQ(rejection_status(line), 400) << line;
}

TEST(ProxyRequest, RejectsOtherHttpVersions) {
  for (const char* version : {"HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"}) {
    const std::string text = "GET http://example.com/ "s + version + "\r\n\r\n";
    EXPECT_EQ(rejection_status(text), 505) << version;
  }
  EXPECT_EQ(rejection_status("CONNECT example.com:443 HTTP/2.0\r\n\r\n"), 505);
}

TEST(ProxyRequest, RejectsBadConnectTargets) {
  const char* targets[] = {
      "example.com",           // no port
      "[2001:db8::1]",         // no port
      "example.com:",          // empty port
      "example.com:0",         // port 0
      "example.com:65536",     // port out of range
      "example.com:https",     // port not a number
      "user@example.com:443",  // userinfo
      "http://example.com:443",
      "/",
      ":443",
  };
  for (const char* target : targets) {
    const std::string text = "CONNECT "s + target + " HTTP/1.1\r\n\r\n";
    EXPECT_EQ(rejection_status(text), 400) << target;
  }
  EXPECT_NE(rejection_message("CONNECT example.com HTTP/1.1\r\n\r\n").find("no port"), std::string::npos);
}

TEST(ProxyRequest, RejectsOtherSchemesWith405) {
  for (const char* target : {"https://example.com/", "HTTPS://example.com/", "ftp://example.com/", "ws://example.com/"}) {
    EXPECT_EQ(rejection_status(get_request(target)), 405) << target;
  }
  EXPECT_NE(rejection_message(get_request("https://example.com/")).find("CONNECT"), std::string::npos);
  EXPECT_NE(rejection_message(get_request("ftp://example.com/")).find("CONNECT"), std::string::npos);
}

TEST(ProxyRequest, RejectsOriginForm) {
  EXPECT_EQ(rejection_status(get_request("/index.html")), 400);
  EXPECT_EQ(rejection_status(get_request("/")), 400);
  EXPECT_EQ(rejection_status("OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n"), 400);
  EXPECT_NE(rejection_message(get_request("/index.html")).find("not a proxy request"), std::string::npos);
}

TEST(ProxyRequest, RejectsBadAbsoluteTargets) {
  const char* targets[] = {
      "example.com:80",                  // authority form on a method other than CONNECT
      "example.com/index.html",          // no scheme
      "http:/example.com/",              // one slash
      "http:example.com/",               // no slashes
      "1http://example.com/",            // invalid scheme
      "://example.com/",                 // empty scheme
      "http:///index.html",              // empty host
      "http://",                         // empty host
      "http://user:secret@example.com/", // userinfo
      "http://@example.com/",            // empty userinfo
      "http://example.com\\@other.example/",  // backslash in the authority
      "http://example.com:0/",           // port 0
      "http://example.com:99999/",       // port out of range
      "http://exa mple.com/",            // space (splits the request line)
      "http://example.com:80:80/",
  };
  for (const char* target : targets) EXPECT_EQ(rejection_status(get_request(target)), 400) << target;
}

TEST(ProxyRequest, RejectsBadHeaders) {
  const char* headers[] = {
      "X-Folded: a\r\n b\r\n",           // obs-fold with a space
      "X-Folded: a\r\n\tb\r\n",          // obs-fold with a tab
      " X-Leading: a\r\n",               // whitespace before the first header
      "Bad Name: x\r\n",                 // space in a name
      "Host : example.com\r\n",          // space before the colon
      "Host\t: example.com\r\n",         // tab before the colon
      ": value\r\n",                     // empty name
      "NoColon\r\n",                     // no colon
      "X(y): value\r\n",                 // separator in a name
      "X-Control: a\x01z\r\n",           // control character in a value
      "X-Delete: a\x7fz\r\n",            // DEL in a value
      "X-Escape: \x1b[31m\r\n",          // terminal escape in a value
  };
  for (const char* header : headers) {
    EXPECT_EQ(rejection_status(get_request("http://example.com/", header)), 400) << header;
  }
  EXPECT_NE(rejection_message(get_request("http://example.com/", "X: a\r\n b\r\n")).find("folding"), std::string::npos);
}

TEST(ProxyRequest, RejectsAmbiguousFraming) {
  EXPECT_EQ(rejection_status(get_request("http://example.com/", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n")), 400);
  EXPECT_EQ(rejection_status(get_request("http://example.com/", "Content-Length: 5\r\nContent-Length: 6\r\n")), 400);
  EXPECT_EQ(rejection_status(get_request("http://example.com/", "Content-Length: -1\r\n")), 400);
  EXPECT_EQ(rejection_status(get_request("http://example.com/", "Content-Length: 5, 5\r\n")), 400);
  EXPECT_EQ(rejection_status(get_request("http://example.com/", "Content-Length: \r\n")), 400);
  EXPECT_EQ(rejection_status(get_request("http://example.com/", "Content-Length: 99999999999999999999\r\n")), 400);
  // Repeating the same length is allowed (RFC 9112, section 6.3).
  EXPECT_EQ(rejection_status(get_request("http://example.com/", "Content-Length: 5\r\nContent-Length: 5\r\n")), 0);
  EXPECT_EQ(rejection_status(get_request("http://example.com/", "Transfer-Encoding: chunked\r\n")), 0);
}

std::string headers_of_count(std::size_t count) {
  std::string headers;
  for (std::size_t i = 0; i < count; ++i) headers += "X-Header-" + std::to_string(i) + ": value\r\n";
  return headers;
}

TEST(ProxyRequest, LimitsHeaderCount) {
  const ProxyRequest request = parse_complete(get_request("http://example.com/", headers_of_count(kMaxHeaders)));
  EXPECT_EQ(request.headers.size(), kMaxHeaders);

  EXPECT_EQ(rejection_status(get_request("http://example.com/", headers_of_count(kMaxHeaders + 1))), 431);
  // The count is checked as headers arrive, before the blank line.
  const std::string incomplete = "GET http://example.com/ HTTP/1.1\r\n" + headers_of_count(kMaxHeaders + 1);
  EXPECT_EQ(rejection_status(incomplete), 431);
}

TEST(ProxyRequest, LimitsHeadSize) {
  const std::string start = "GET http://example.com/ HTTP/1.1\r\nX-Large: ";
  const std::string end = "\r\n\r\n";

  // A head of exactly kMaxRequestHead bytes is accepted.
  const std::string largest = start + std::string(kMaxRequestHead - start.size() - end.size(), 'a') + end;
  ASSERT_EQ(largest.size(), kMaxRequestHead);
  EXPECT_EQ(parse_complete(largest).head_size, kMaxRequestHead);

  // One byte more is rejected, complete or not.
  const std::string too_large = start + std::string(kMaxRequestHead - start.size() - end.size() + 1, 'a') + end;
  EXPECT_EQ(rejection_status(too_large), 431);
  EXPECT_EQ(rejection_status(too_large.substr(0, kMaxRequestHead)), 431);
  EXPECT_EQ(rejection_status(std::string(kMaxRequestHead * 2, 'a')), 431);

  // Below the limit, an unfinished head waits for more.
  auto waiting = parse_proxy_request(too_large.substr(0, kMaxRequestHead - 1));
  ASSERT_TRUE(waiting.has_value());
  EXPECT_FALSE(waiting->has_value());
}

TEST(ProxyRequest, HandlesHeaders) {
  const std::string headers =
      "Host: example.com\r\n"
      "X-Trimmed: \t  a  b \t\r\n"
      "X-Empty:\r\n"
      "x-repeated: 1\r\n"
      "X-Repeated: 2\r\n"
      "X-Utf8: caf\xc3\xa9\r\n";
  const ProxyRequest request = parse_complete(get_request("http://example.com/", headers));
  ASSERT_EQ(request.headers.size(), 6u);
  EXPECT_EQ(request.headers[1].first, "X-Trimmed");
  EXPECT_EQ(request.headers[1].second, "a  b");
  EXPECT_EQ(request.headers[2].second, "");
  EXPECT_EQ(request.headers[3].first, "x-repeated");
  EXPECT_EQ(request.headers[4].first, "X-Repeated");

  EXPECT_EQ(find_header(request, "host"), "example.com");
  EXPECT_EQ(find_header(request, "X-REPEATED"), "1");
  EXPECT_EQ(find_header(request, "x-empty"), "");
  EXPECT_EQ(find_header(request, "X-Utf8"), "caf\xc3\xa9");
  EXPECT_EQ(find_header(request, "X-Missing"), std::nullopt);
  EXPECT_EQ(find_header(request, "X-Trimme"), std::nullopt);
}

std::optional<std::string> mismatch(std::string_view target, std::string_view headers) {
  return host_header_mismatch(parse_complete(get_request(target, headers)));
}

TEST(HostHeader, AcceptsSameHost) {
  EXPECT_EQ(mismatch("http://example.com/", "Host: example.com\r\n"), std::nullopt);
  EXPECT_EQ(mismatch("http://example.com/", "host: example.com\r\n"), std::nullopt);
  EXPECT_EQ(mismatch("http://example.com/", "Host: EXAMPLE.Com\r\n"), std::nullopt);
  EXPECT_EQ(mismatch("http://Example.com/", "Host: example.com\r\n"), std::nullopt);
  EXPECT_EQ(mismatch("http://example.com/", "Host: example.com.\r\n"), std::nullopt);
  EXPECT_EQ(mismatch("http://example.com./", "Host: example.com\r\n"), std::nullopt);
  EXPECT_EQ(mismatch("http://example.com/", "Host: example.com:80\r\n"), std::nullopt);
  EXPECT_EQ(mismatch("http://example.com:80/", "Host: example.com\r\n"), std::nullopt);
  EXPECT_EQ(mismatch("http://example.com:8080/", "Host: example.com:8080\r\n"), std::nullopt);
  EXPECT_EQ(mismatch("http://192.0.2.7/", "Host: 192.0.2.7\r\n"), std::nullopt);
  EXPECT_EQ(mismatch("http://[2001:db8::1]/", "Host: [2001:DB8::1]:80\r\n"), std::nullopt);
}

TEST(HostHeader, ReportsMismatch) {
  auto other_host = mismatch("http://example.com/", "Host: other.example\r\n");
  ASSERT_TRUE(other_host.has_value());
  EXPECT_NE(other_host->find("other.example"), std::string::npos) << *other_host;
  EXPECT_NE(other_host->find("example.com:80"), std::string::npos) << *other_host;

  EXPECT_TRUE(mismatch("http://example.com/", "Host: example.com:8080\r\n"));
  EXPECT_TRUE(mismatch("http://example.com:8080/", "Host: example.com\r\n"));
  EXPECT_TRUE(mismatch("http://example.com/", "Host: www.example.com\r\n"));
  EXPECT_TRUE(mismatch("http://www.example.com/", "Host: example.com\r\n"));
  EXPECT_TRUE(mismatch("http://example.com/", "Host: \r\n"));
  EXPECT_TRUE(mismatch("http://example.com/", "Host: user@example.com\r\n"));
  EXPECT_TRUE(mismatch("http://example.com/", "Host: example.com/\r\n"));
  EXPECT_TRUE(mismatch("http://example.com/", "Host: example.com:0\r\n"));
  EXPECT_TRUE(mismatch("http://192.0.2.7/", "Host: 192.0.2.8\r\n"));
}

TEST(HostHeader, ReportsMissingOrDuplicated) {
  auto missing = mismatch("http://example.com/", "Accept: */*\r\n");
  ASSERT_TRUE(missing.has_value());
  EXPECT_NE(missing->find("no Host header"), std::string::npos) << *missing;

  auto duplicated = mismatch("http://example.com/", "Host: example.com\r\nhost: example.com\r\n");
  ASSERT_TRUE(duplicated.has_value());
  EXPECT_NE(duplicated->find("2 Host headers"), std::string::npos) << *duplicated;

  EXPECT_TRUE(mismatch("http://example.com/", "Host: example.com\r\nHost: other.example\r\n"));
}

TEST(HostHeader, IgnoresConnect) {
  const ProxyRequest request = parse_complete("CONNECT example.com:443 HTTP/1.1\r\nHost: other.example\r\n\r\n");
  EXPECT_EQ(host_header_mismatch(request), std::nullopt);
}

TEST(ForwardHead, RewritesRequestLine) {
  const ProxyRequest request = parse_complete(get_request("http://example.com/a/b?q=1#frag"));
  EXPECT_EQ(forward_request_head(request), "GET /a/b?q=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");

  const ProxyRequest old = parse_complete("HEAD http://example.com HTTP/1.0\r\nHost: example.com\r\n\r\n");
  EXPECT_EQ(forward_request_head(old), "HEAD / HTTP/1.0\r\nHost: example.com\r\nConnection: close\r\n\r\n");
}

TEST(ForwardHead, DropsHopByHopHeaders) {
  const std::string headers =
      "Host: example.com\r\n"
      "Connection: keep-alive, X-Hop\r\n"
      "proxy-connection: keep-alive\r\n"
      "Proxy-Authorization: Basic c2VjcmV0\r\n"
      "Keep-Alive: timeout=5\r\n"
      "TE: trailers\r\n"
      "Trailer: X-Checksum\r\n"
      "Upgrade: websocket\r\n"
      "x-hop: dropped\r\n"
      "User-Agent: curl/8.5\r\n"
      "Accept:  */* \r\n";
  const ProxyRequest request = parse_complete(get_request("http://example.com/", headers));
  EXPECT_EQ(forward_request_head(request),
            "GET / HTTP/1.1\r\n"
            "Host: example.com\r\n"
            "User-Agent: curl/8.5\r\n"
            "Accept: */*\r\n"
            "Connection: close\r\n\r\n");
}

TEST(ForwardHead, KeepsHostAndFramingListedInConnection) {
  const std::string headers =
      "Host: example.com\r\n"
      "Content-Length: 5\r\n"
      "Connection: host, content-length ,X-A\r\n"
      "Connection: X-B\r\n"
      "X-A: 1\r\n"
      "X-B: 2\r\n"
      "X-C: 3\r\n";
  const ProxyRequest request = parse_complete(
      "POST http://example.com/upload HTTP/1.1\r\n" + headers + "\r\n");
  EXPECT_EQ(forward_request_head(request),
            "POST /upload HTTP/1.1\r\n"
            "Host: example.com\r\n"
            "Content-Length: 5\r\n"
            "X-C: 3\r\n"
            "Connection: close\r\n\r\n");
}

TEST(ErrorResponse, BuildsCompleteResponse) {
  const std::string message = "no rule allows example.com:443";
  EXPECT_EQ(error_response(403, message),
            "HTTP/1.1 403 Forbidden\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 31\r\n"
            "Connection: close\r\n"
            "\r\n"
            "no rule allows example.com:443\n");
}

TEST(ErrorResponse, UsesReasonPhrases) {
  const std::pair<int, std::string_view> statuses[] = {
      {400, "Bad Request"},
      {403, "Forbidden"},
      {405, "Method Not Allowed"},
      {407, "Proxy Authentication Required"},
      {431, "Request Header Fields Too Large"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
      {505, "HTTP Version Not Supported"},
  };
  for (const auto& [status, reason] : statuses) {
    const std::string response = error_response(status, "x");
    const std::string status_line = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
    EXPECT_TRUE(response.starts_with(status_line)) << response;
  }
  EXPECT_TRUE(error_response(418, "x").starts_with("HTTP/1.1 418 \r\n"));
}

TEST(ErrorResponse, ParserMessagesFitOneLine) {
  const std::string target = "http://example.com/" + std::string(10000, 'a') + "\x01";
  const std::string message = rejection_message(get_request(target));
  ASSERT_FALSE(message.empty());
  EXPECT_LT(message.size(), 400u);
  EXPECT_EQ(message.find('\x01'), std::string::npos);
  EXPECT_NE(message.find("..."), std::string::npos);
}

}  // namespace
}  // namespace zwrm::proxy
