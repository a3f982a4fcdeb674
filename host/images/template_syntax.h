// Syntax checks for the values in a template definition: Debian package and
// suite names, shell variable names, npm package specs and egress rules.
// Internal to zwrm_images; template.cc turns a failed check into a
// "FILE:LINE: ..." error.
//
// These values reach a package manager, a build script or the egress proxy,
// so each check accepts only a narrow form and nothing a shell would
// interpret.
#pragma once

#include <string>
#include <string_view>

namespace zwrm::images {

// A Debian package name: at least two characters, lowercase letters,
// digits, '+', '-' and '.', starting with a letter or digit.
bool is_debian_package_name(std::string_view name);

// A suite or codename as it appears in a Debian archive's dists/ directory.
bool is_debian_suite_name(std::string_view suite);

// Letters, digits and '_', not starting with a digit.
bool is_shell_variable_name(std::string_view name);

// Checks an npm package spec: NAME or NAME@VERSION, where NAME is a
// registry package name, optionally scoped (@scope/name), of lowercase
// letters, digits, '-', '.' and '_', and VERSION is a version, range or tag
// of letters, digits and . + - _ ^ ~ =. URLs, paths, tarballs, git specs,
// GitHub shorthands (user/repo) and aliases (npm:) are rejected. Returns an
// empty string when spec is valid, else the reason and what to write instead.
std::string check_npm_spec(std::string_view spec);

// Returns the package name of a spec that check_npm_spec accepted, without
// its version: "@openai/codex@0.1.2" gives "@openai/codex".
std::string npm_package_name(std::string_view spec);

}  // namespace zwrm::images
