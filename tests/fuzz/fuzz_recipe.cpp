// Fuzz target: the recipe parser (YAML text -> Recipe, with the schema's checks), then the
// recipe's own YAML parsed again (it must reproduce the recipe).
#include <cstdint>
#include <string>

#include "autograd/error.h"
#include "trainers/recipe/recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mxqat::trainers;
  if (size > 65536) return -1;  // recipes are short; longer inputs only slow the search
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const Recipe r = parse_recipe(text, "<fuzz>");
    const Recipe again = parse_recipe(r.text, "<fuzz:again>");
    if (!(again == r)) __builtin_trap();  // the effective YAML must reproduce the recipe
  } catch (const mxqat::Error&) {
  }
  return 0;
}
