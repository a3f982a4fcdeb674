#include "host/images/template_syntax.h"


#include <algorithm>
#include <array>
#include <cstdint>

#include "common/printable.h"

namespace zwrm::images {

namespace {

// npm's package.json documentation: a name, scope included, has at most 214
// characters.
constexpr std::size_t kMaxNpmNameLength = 214;
constexpr std::size_t kMaxNpmVersionLength = 64;
constexpr std::string_view kNpmExample = "such as \"@openai/codex\" or \"is-number@7.0.0\"";

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool is_npm_name_character(char c) { return is_lower_alnum(c) || c == '-' || c == '.' || c == '_'; }

bool is_npm_version_character(char c) {
  return is_letter(c) || is_digit(c) || c == '.' || c == '+' || c == '-' || c == '_' || c == '^' || c == '~' ||
         c == '=';
}

std::string quoted(std::string_view text) { return "'" + printable(text) + "'"; }

// Names the first character of text that no spec may contain, or returns an
// empty string.
std::string describe_foreign_character(std::string_view text) {
  for (char c : text) {
    if (is_npm_name_character(c) || is_npm_version_character(c) || c == '@' || c == '/') continue;
    if (c == ' ' || c == '\t') return "it contains a space; give one package per array element";
    return "it contains " + quoted(std::string_view(&c, 1)) + ", which no npm package name or version contains";
  }
  return "";
}

// Checks one part of a package name: the scope without '@', or the name.
std::string check_npm_name_part(std::string_view part, std::string_view what) {
  if (part.empty()) return "its " + std::string(what) + " is empty; give a name " + std::string(kNpmExample);
  for (char c : part) {
    if (c >= 'A' && c <= 'Z') return "npm package names are lowercase; write it in lowercase";
    if (!is_npm_name_character(c)) {
      return "its " + std::string(what) + " contains " + quoted(std::string_view(&c, 1)) +
             "; use lowercase letters, digits, '-', '.' and '_'";
    }
  }
  if (!is_lower_alnum(part.front())) {
    return "its " + std::string(what) + " must start with a lowercase letter or digit";
  }
  return "";
}

std::string check_npm_version(std::string_view version) {
  const std::string hint = "; give a version such as 1.2.3, a range such as ^1.2 or a tag such as latest";
  if (version.empty()) return "nothing follows its '@'" + hint;
  if (version.size() > kMaxNpmVersionLength) return "its version is longer than 64 characters" + hint;
  if (!std::all_of(version.begin(), version.end(), is_npm_version_character)) {
    return "invalid version or tag " + quoted(version) + hint;
  }
  return "";
}

// Splits "name@version" (or "@scope/name@version") at the '@' that starts
// the version; the version is empty when there is none.
std::pair<std::string_view, std::string_view> split_npm_spec(std::string_view spec) {
  const std::size_t search_from = spec.starts_with('@') ? 1 : 0;
  const std::size_t at = spec.find('@', search_from);
  if (at == std::string_view::npos) return {spec, {}};
  return {spec.substr(0, at), spec.substr(at + 1)};
}

std::string check_npm_spec_form(std::string_view spec) {
  const std::string registry_only = "zwrm installs packages from the npm registry only, so give a name " +
                                    std::string(kNpmExample);
  if (spec.find("://") != std::string_view::npos) return "it is a URL; " + registry_only;
  if (spec.starts_with('.') || spec.starts_with('/') || spec.starts_with('~')) {
    return "it is a file path; " + registry_only;
  }
  if (spec.find(':') != std::string_view::npos) {
    return "it names a source such as git:, github:, file: or an npm: alias; " + registry_only;
  }
  for (std::string_view suffix : {".tgz", ".tar", ".tar.gz"}) {
    if (spec.ends_with(suffix)) return "it is a tarball; " + registry_only;
  }
  if (std::string reason = describe_foreign_character(spec); !reason.empty()) return reason;
  if (!spec.starts_with('@') && split_npm_spec(spec).first.find('/') != std::string_view::npos) {
    return "it is a GitHub shorthand (user/repo); " + registry_only;
  }
  return "";
}

}  // namespace

bool is_debian_package_name(std::string_view name) {
  if (name.size() < 2 || !is_lower_alnum(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_lower_alnum(c) || c == '+' || c == '-' || c == '.'; });
}

bool is_debian_suite_name(std::string_view suite) {
  if (suite.empty() || suite.size() > 64 || !is_lower_alnum(suite.front())) return false;
  return std::all_of(suite.begin(), suite.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
}

bool is_shell_variable_name(std::string_view name) {
  if (name.empty() || !(is_letter(name.front()) || name.front() == '_')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return is_letter(c) || is_digit(c) || c == '_'; });
}

std::string check_npm_spec(std::string_view spec) {
  if (spec.empty()) return "it is empty; give a package " + std::string(kNpmExample);
  if (std::string reason = check_npm_spec_form(spec); !reason.empty()) return reason;

  const auto [name, version] = split_npm_spec(spec);
  if (name.size() > kMaxNpmNameLength) return "the package name is longer than 214 characters";
  if (name.starts_with('@')) {
    const std::size_t slash = name.find('/');
    if (slash == std::string_view::npos) {
      return "a scoped package name needs a '/', such as \"@openai/codex\"";
    }
    if (std::string reason = check_npm_name_part(name.substr(1, slash - 1), "scope"); !reason.empty()) return reason;
    if (std::string reason = check_npm_name_part(name.substr(slash + 1), "name"); !reason.empty()) return reason;
  } else if (std::string reason = check_npm_name_part(name, "name"); !reason.empty()) {
    return reason;
  }
  if (spec.size() > name.size()) return check_npm_version(version);
  return "";
}

std::string npm_package_name(std::string_view spec) { return std::string(split_npm_spec(spec).first); }

}  // namespace zwrm::images
