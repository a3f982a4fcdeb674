// libFuzzer target for template files, which users write and share: the
// parser must reject any input with an error, never crash or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "host/images/template.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)zwrm::images::parse_template_text(text, "fuzz.toml");
  return 0;
}
