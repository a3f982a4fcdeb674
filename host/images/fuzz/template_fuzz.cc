// libFuzzer target for template files, which users write and share. Any
// input must give a definition or an Error; a crash, a sanitizer report or a
// hang fails the fuzz run.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "host/images/template.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)zwrm::images::parse_template_text(text, "fuzz.toml");
  return 0;
}
