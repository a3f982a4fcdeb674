// Error values shared by the guest init and the host.
//
// Contract (docs/errors.md): a function that can fail on untrusted input or
// on the environment returns Result<T>. The Error's message is one or more
// full sentences that name the failed operation, the path or resource, and,
// where the user can act, what to do. errno is kept for callers that branch
// on it. Impossible states abort instead (see ZWRM_CHECK).
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace zwrm {

struct Error {
  std::string message;
  int errno_value = 0;
};

template <typename T>
using Result = tl::expected<T, Error>;

using Status = Result<void>;

inline tl::unexpected<Error> fail(std::string message, int errno_value = 0) {
  return tl::unexpected<Error>(Error{std::move(message), errno_value});
}

// Builds "WHAT: strerror(errno_value)" and keeps errno_value.
inline tl::unexpected<Error> fail_errno(std::string_view what, int errno_value = errno) {
  std::string message(what);
  message += ": ";
  message += std::strerror(errno_value);
  return tl::unexpected<Error>(Error{std::move(message), errno_value});
}

// Prefixes context to an error as it travels up: "CONTEXT: MESSAGE".
inline Error with_context(Error error, std::string_view context) {
  error.message = std::string(context) + ": " + error.message;
  return error;
}

}  // namespace zwrm

// Aborts with the failed condition when an internal invariant does not hold.
// Only for states that no input can produce; input errors return Error.
#define ZWRM_CHECK(condition)                                                   \
  do {                                                                          \
    if (!(condition)) {                                                         \
      std::fprintf(stderr, "zwrm: internal error: %s at %s:%d\n", #condition,   \
                   __FILE__, __LINE__);                                         \
      std::abort();                                                             \
    }                                                                           \
  } while (0)
