// "Did you mean" hints for unknown names: command-line flags, subcommands, recipe keys.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace mxqat::trainers {

// Levenshtein distance (insertions, deletions and substitutions cost 1).
size_t edit_distance(const std::string& a, const std::string& b);
// The candidate nearest to `word` (the first of equals); "" when there is none.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace mxqat::trainers
