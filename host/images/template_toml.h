// Reading typed values out of a template file's parsed TOML, for
// template.cc and template_tables.cc. Internal to zwrm_images.
//
// Every failure is an Error whose message starts with "SOURCE_PATH:LINE: "
// and says what to write instead, as template.h promises.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "common/error.h"
#include "host/images/template.h"

namespace zwrm::images {

// One key of a table with the line it is on.
struct Entry {
  std::string_view key;
  std::uint32_t line;
  const toml::node* value;
};

tl::unexpected<Error> fail_at(const std::string& source_path, std::uint32_t line, const std::string& message);

// Returns "a string", "an integer", ... for messages.
std::string_view type_name(toml::node_type type);

// Returns a table's entries in the order of the file, so that the first
// error reported is the first one a reader meets.
std::vector<Entry> entries_in_file_order(const toml::table& table);

// Describes an unknown key: a suggestion when a known key is close, else the
// list of known keys. `where` names the table (" in [defaults]"), or is
// empty for the top level.
std::string describe_unknown_key(std::string_view key, std::span<const std::string_view> known,
                                 std::string_view where, std::string_view known_list);

// Reads one string value. A NUL byte cannot travel in argv or the
// environment, so it is rejected here rather than truncated later.
Result<std::string> read_string(const Entry& entry, const std::string& source_path);

// Reads an array of strings and, when element_lines is given, the line of
// each element for later messages.
Result<std::vector<std::string>> read_string_array(const Entry& entry, const std::string& source_path,
                                                   std::string_view example,
                                                   std::vector<std::uint32_t>* element_lines = nullptr);

// Readers of the tables [env], [defaults] and [policy], in template_tables.cc.
Result<std::vector<std::pair<std::string, std::string>>> read_env(const Entry& entry, const std::string& source_path);
Result<TemplateDefaults> read_defaults(const Entry& entry, const std::string& source_path);
Result<std::vector<std::string>> read_policy(const Entry& entry, const std::string& source_path);

}  // namespace zwrm::images
