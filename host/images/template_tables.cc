#include <algorithm>
#include <array>

#include "common/printable.h"
#include "host/images/template_syntax.h"
#include "host/images/template_toml.h"
#include "host/proxy/policy.h"
#include "host/sys/units.h"

namespace zwrm::images {

namespace {

constexpr std::array<std::string_view, 5> kDefaultsKeys = {"cpus", "memory", "disk", "timeout", "idle_timeout"};
constexpr std::string_view kDefaultsKeyList = "cpus, memory, disk, timeout and idle_timeout";
constexpr std::array<std::string_view, 1> kPolicyKeys = {"allow"};

// The same bounds as `zwrm run --cpus`, without the host's CPU count, which
// a run checks.
constexpr std::int64_t kMaxCpus = 64;
// Below this a guest cannot hold the kernel, the init and a shell, and a
// volume is too small for ext4 with room to work.
constexpr std::uint64_t kMinMemoryBytes = 64ull << 20;
constexpr std::uint64_t kMinDiskBytes = 64ull << 20;

std::string in_defaults(const Entry& entry) { return "'" + printable(entry.key) + "' in [defaults]"; }

Result<unsigned> read_cpus(const Entry& entry, const std::string& source_path) {
  const std::optional<std::int64_t> value = entry.value->value<std::int64_t>();
  if (!entry.value->is_integer() || !value) {
    return fail_at(source_path, entry.line,
                   in_defaults(entry) + " must be an integer such as 2, not " +
                       std::string(type_name(entry.value->type())) + "; write the number without quotes");
  }
  if (*value < 1 || *value > kMaxCpus) {
    return fail_at(source_path, entry.line,
                   "invalid " + in_defaults(entry) + " " + std::to_string(*value) + "; use a number from 1 to 64");
  }
  return static_cast<unsigned>(*value);
}

Result<std::uint64_t> read_size(const Entry& entry, const std::string& source_path, std::uint64_t minimum) {
  Result<std::string> text = read_string(entry, source_path);
  if (!text) return tl::unexpected(text.error());
  Result<std::uint64_t> bytes = sys::parse_size(*text);
  if (!bytes) return fail_at(source_path, entry.line, "invalid " + in_defaults(entry) + ": " + bytes.error().message);
  if (*bytes < minimum) {
    return fail_at(source_path, entry.line,
                   "invalid " + in_defaults(entry) + " '" + printable(*text) + "'; use at least " +
                       sys::format_size(minimum) + ", such as \"2G\"");
  }
  return *bytes;
}

Result<std::chrono::milliseconds> read_duration(const Entry& entry, const std::string& source_path) {
  Result<std::string> text = read_string(entry, source_path);
  if (!text) return tl::unexpected(text.error());
  Result<std::chrono::milliseconds> duration = sys::parse_duration(*text);
  if (!duration) {
    return fail_at(source_path, entry.line, "invalid " + in_defaults(entry) + ": " + duration.error().message);
  }
  if (duration->count() <= 0) {
    return fail_at(source_path, entry.line,
                   "invalid " + in_defaults(entry) + " '" + printable(*text) +
                       "'; it must be longer than zero, such as \"30m\"; leave it out for no deadline");
  }
  return *duration;
}

Status read_default(const Entry& entry, const std::string& source_path, TemplateDefaults& defaults) {
  if (entry.key == "cpus") {
    Result<unsigned> cpus = read_cpus(entry, source_path);
    if (!cpus) return tl::unexpected(cpus.error());
    defaults.cpus = *cpus;
  } else if (entry.key == "memory" || entry.key == "disk") {
    Result<std::uint64_t> bytes = read_size(entry, source_path, entry.key == "memory" ? kMinMemoryBytes : kMinDiskBytes);
    if (!bytes) return tl::unexpected(bytes.error());
    (entry.key == "memory" ? defaults.memory_bytes : defaults.disk_bytes) = *bytes;
  } else if (entry.key == "timeout" || entry.key == "idle_timeout") {
    Result<std::chrono::milliseconds> duration = read_duration(entry, source_path);
    if (!duration) return tl::unexpected(duration.error());
    (entry.key == "timeout" ? defaults.timeout : defaults.idle_timeout) = *duration;
  } else {
    return fail_at(source_path, entry.line, describe_unknown_key(entry.key, kDefaultsKeys, " in [defaults]", kDefaultsKeyList));
  }
  return {};
}

}  // namespace

Result<std::vector<std::pair<std::string, std::string>>> read_env(const Entry& entry, const std::string& source_path) {
  const toml::table* table = entry.value->as_table();
  if (table == nullptr) {
    return fail_at(source_path, entry.line,
                   "'env' must be a table of strings such as [env] followed by LANG = \"C.UTF-8\", not " +
                       std::string(type_name(entry.value->type())));
  }
  std::vector<std::pair<std::string, std::string>> env;
  for (const Entry& variable : entries_in_file_order(*table)) {
    if (!is_shell_variable_name(variable.key)) {
      return fail_at(source_path, variable.line,
                     "invalid environment variable name '" + printable(variable.key) +
                         "' in [env]; use letters, digits and '_', not starting with a digit");
    }
    Result<std::string> value = read_string(variable, source_path);
    if (!value) return tl::unexpected(value.error());
    env.emplace_back(std::string(variable.key), std::move(*value));
  }
  return env;
}

Result<TemplateDefaults> read_defaults(const Entry& entry, const std::string& source_path) {
  const toml::table* table = entry.value->as_table();
  if (table == nullptr) {
    return fail_at(source_path, entry.line,
                   "'defaults' must be a table such as [defaults] followed by memory = \"2G\", not " +
                       std::string(type_name(entry.value->type())));
  }
  TemplateDefaults defaults;
  for (const Entry& setting : entries_in_file_order(*table)) {
    if (Status read = read_default(setting, source_path, defaults); !read) return tl::unexpected(read.error());
  }
  return defaults;
}

Result<std::vector<std::string>> read_policy(const Entry& entry, const std::string& source_path) {
  const toml::table* table = entry.value->as_table();
  if (table == nullptr) {
    return fail_at(source_path, entry.line,
                   "'policy' must be a table such as [policy] followed by allow = [\"api.example.com\"], not " +
                       std::string(type_name(entry.value->type())));
  }
  std::vector<std::string> rules;
  for (const Entry& key : entries_in_file_order(*table)) {
    if (key.key != "allow") {
      return fail_at(source_path, key.line, describe_unknown_key(key.key, kPolicyKeys, " in [policy]", "allow"));
    }
    std::vector<std::uint32_t> lines;
    Result<std::vector<std::string>> allow =
        read_string_array(key, source_path, "[\"api.example.com\", \"*.example.org:443\"]", &lines);
    if (!allow) return tl::unexpected(allow.error());
    for (std::size_t i = 0; i < allow->size(); ++i) {
      const std::string& text = (*allow)[i];
      auto rule = proxy::parse_rule(text);
      if (!rule) {
        return fail_at(source_path, lines[i],
                       "invalid egress rule '" + printable(text) + "' in [policy] allow: " + rule.error().message);
      }
      // Stored in canonical form, the form `zwrm policy ls` prints and
      // `zwrm policy deny` matches.
      if (std::find(rules.begin(), rules.end(), rule->text()) != rules.end()) {
        return fail_at(source_path, lines[i], "egress rule '" + printable(text) + "' is listed twice; remove one");
      }
      rules.push_back(rule->text());
    }
  }
  return rules;
}

}  // namespace zwrm::images
