// The shell script that installs a Debian template's npm packages and runs
// its build commands, for rootfs_build.cc. Internal to zwrm_images.
//
// mmdebstrap runs the script as a customize hook, as root on the host, with
// the staged root tree as $1. Each step runs chrooted into the tree with a
// fixed environment, in a PID namespace of its own so that no process it
// starts outlives it. The chroot keeps paths apart but does not confine
// root: npm install scripts and `run` commands can reach the host. Building
// a template is as trusted as running a script from its author as root.
//
// The host's CA bundle reaches the steps as a file in a temporary directory
// of the tree (kBuildDirectory), named by NODE_EXTRA_CA_CERTS, npm's cafile
// and the variables of curl, git, OpenSSL, pip and requests, and the script
// deletes that directory, with npm's cache in it, when it exits.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "host/images/template.h"

namespace zwrm::images {

// Prefixes of the lines the script prints: one per step, and one naming
// the step that failed and its exit status.
inline constexpr std::string_view kStepMarker = "zwrm-step: ";
inline constexpr std::string_view kFailureMarker = "zwrm-failed: ";

// The temporary directory inside the staged root, gone when the script ends.
inline constexpr std::string_view kBuildDirectory = "/tmp/zwrm-build";

// Environment variables of the script itself.
inline constexpr std::string_view kBuildCaVariable = "ZWRM_BUILD_CA";  // host path of the CA bundle

struct BuildScriptOptions {
  // Whether $ZWRM_BUILD_CA names a CA bundle to give to the steps.
  bool with_build_ca = false;
  // KEY=VALUE entries passed to every step, such as the host's proxy
  // variables.
  std::vector<std::string> extra_env;
};

// Returns whether definition needs the script: it has npm packages or run
// commands.
bool needs_build_script(const TemplateDefinition& definition);

// Returns the script for definition. Every value from the definition is
// single-quoted, so only the run commands are ever interpreted by a shell.
std::string build_script(const TemplateDefinition& definition, const BuildScriptOptions& options);

// Returns the host's proxy variables (http_proxy, https_proxy, no_proxy and
// their upper-case forms) that are set, as KEY=VALUE.
std::vector<std::string> proxy_environment();

// Returns text in single quotes for a POSIX shell.
std::string shell_quote(std::string_view text);

// Returns the first line of a run command, cut to 72 characters with
// control characters escaped, to name it in progress lines and errors.
std::string summarize_command(std::string_view command);

}  // namespace zwrm::images
