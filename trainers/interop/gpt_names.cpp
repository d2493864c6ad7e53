// gpt parameter names -> another layout's names.
#include "trainers/interop/gpt_names.h"

#include <regex>

#include "autograd/error.h"

namespace mxqat::trainers {

std::string rename_gpt_param(const std::string& n, const GptNameTable& t) {
  static const char* const ours[9] = {"attn_norm", "attn.q", "attn.k", "attn.v", "attn.o",
                                      "mlp_norm",  "mlp.gate", "mlp.up", "mlp.down"};
  if (n == "tok_emb.weight") return t.tok_emb;
  if (n == "norm.weight") return t.norm;
  if (n == "head.weight") return t.head;
  static const std::regex block(R"(blocks\.(\d+)\.(.+)\.weight)");
  std::smatch m;
  if (std::regex_match(n, m, block))
    for (int i = 0; i < 9; ++i)
      if (m[2] == ours[i]) return t.block_prefix + m[1].str() + "." + t.block[i] + ".weight";
  MXQAT_FAIL("the gpt parameter '", n, "' has no place in ", t.layout);
}

}  // namespace mxqat::trainers
