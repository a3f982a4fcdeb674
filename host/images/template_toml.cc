#include "host/images/template_toml.h"

#include <algorithm>

#include "common/printable.h"

namespace zwrm::images {

namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> previous(b.size() + 1);
  std::vector<std::size_t> current(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

}  // namespace

tl::unexpected<Error> fail_at(const std::string& source_path, std::uint32_t line, const std::string& message) {
  return fail(source_path + ":" + std::to_string(line) + ": " + message);
}

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::vector<Entry> entries_in_file_order(const toml::table& table) {
  std::vector<Entry> entries;
  for (const auto& [key, value] : table) entries.push_back({key.str(), key.source().begin.line, &value});
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.line < b.line; });
  return entries;
}

std::string describe_unknown_key(std::string_view key, std::span<const std::string_view> known,
                                 std::string_view where, std::string_view known_list) {
  std::string message = "unknown key '" + printable(key) + "'" + std::string(where) + "; ";
  for (std::string_view candidate : known) {
    if (edit_distance(key, candidate) <= 2) return message + "did you mean '" + std::string(candidate) + "'?";
  }
  return message + "remove it, because the only keys" + std::string(where) + " are " + std::string(known_list);
}

Result<std::string> read_string(const Entry& entry, const std::string& source_path) {
  const std::optional<std::string> value = entry.value->value<std::string>();
  if (!entry.value->is_string() || !value) {
    return fail_at(source_path, entry.value->source().begin.line,
                   "'" + printable(entry.key) + "' must be a string, not " +
                       std::string(type_name(entry.value->type())) + "; put the value in double quotes");
  }
  if (value->find('\0') != std::string::npos) {
    return fail_at(source_path, entry.line,
                   "'" + printable(entry.key) + "' contains a NUL character; remove it");
  }
  return *value;
}

Result<std::vector<std::string>> read_string_array(const Entry& entry, const std::string& source_path,
                                                   std::string_view example,
                                                   std::vector<std::uint32_t>* element_lines) {
  const std::string expected = "'" + printable(entry.key) + "' must be an array of strings such as " +
                               std::string(example);
  const toml::array* array = entry.value->as_array();
  if (array == nullptr) {
    return fail_at(source_path, entry.value->source().begin.line,
                   expected + ", not " + std::string(type_name(entry.value->type())));
  }
  std::vector<std::string> items;
  for (const toml::node& element : *array) {
    const Entry item{entry.key, element.source().begin.line, &element};
    if (!element.is_string()) {
      return fail_at(source_path, item.line,
                     expected + ", but one element is " + std::string(type_name(element.type())));
    }
    Result<std::string> value = read_string(item, source_path);
    if (!value) return tl::unexpected(value.error());
    items.push_back(std::move(*value));
    if (element_lines != nullptr) element_lines->push_back(item.line);
  }
  return items;
}

}  // namespace zwrm::images
