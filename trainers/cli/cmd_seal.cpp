// `mxqat seal FILE [--out NEW]`: the way forward for HDF5 files written before the integrity
// block (checkpoints, exports, quantize outputs). The old file is parsed only in a child process
// (run_isolated), validated in full by the same loaders that read sealed files (CRC-32s,
// SHA-256s, structure, shapes, finite weights), and written again, sealed and atomically, by that
// child; a file HDF5 cannot survive ends only the child, and becomes an error.
#include <functional>
#include <iostream>

#include "autograd/error.h"
#include "trainers/cli/cli_args.h"
#include "trainers/cli/commands.h"
#include "trainers/io/ckpt.h"
#include "trainers/io/ckpt_quant.h"
#include "trainers/io/export.h"
#include "trainers/util/files.h"
#include "trainers/io/h5file.h"
#include "trainers/io/integrity.h"

namespace mxqat::trainers {

namespace {

constexpr int kSealTimeoutS = 600;

// The spec §9 groups of a quantize output: every group with a "codec" attribute (depth-limited).
void find_groups(const H5Reader& r, const std::string& group, int depth,
                 std::vector<std::string>& out) {
  MXQAT_CHECK(depth < 16, "'", r.file_path(), "': groups nested over 16 deep under '", group,
              "'; not a file mxqat wrote");
  for (const std::string& name : r.list(group)) {
    const std::string child = group == "/" ? "/" + name : group + "/" + name;
    if (!r.is_group(child)) continue;
    if (r.has_attr(child, "codec")) out.push_back(child);
    else find_groups(r, child, depth + 1, out);
  }
}

// In the child: reads `in` with the ordinary loaders (which now accept it unsealed), writes `out`
// sealed, and says what it was.
std::string reseal(const std::string& in, const std::string& out) {
  H5Reader::accept_unsealed_in_this_process();
  const std::string format = mxqat_format_of(in);
  if (format == "checkpoint") {
    const Checkpoint c = load_checkpoint(in);
    for (const auto& [name, t] : c.params) check_finite(in, name, t, "seal");
    save_checkpoint(out, c);
    return "checkpoint at step " + std::to_string(c.step) + ", " +
           std::to_string(c.params.size()) + " parameters";
  }
  if (format == "export") {
    const ExportModel m = read_export(in);
    for (const ExportTensor& t : m.tensors) check_finite(in, t.name, t.decoded(), "seal");
    write_export(out, m);
    return "export of " + std::to_string(m.tensors.size()) + " tensors";
  }
  MXQAT_CHECK(format.empty(), "'", in, "' has mxqat_format '", format, "', which this mxqat "
              "does not know; seal it with the mxqat that wrote it");
  const H5Reader r = H5Reader::open(in);
  std::vector<std::string> groups;
  find_groups(r, "/", 0, groups);
  MXQAT_CHECK(!groups.empty(), "'", in, "' is neither a checkpoint, an export nor a quantize "
              "output (no mxqat_format attribute and no spec §9 group); nothing to seal");
  H5Writer w = H5Writer::create(out);
  for (const std::string& g : groups) {
    Shape shape;
    const quant::EncodedTensor e = read_quantized(r, g, &shape);
    write_quantized(w, g, e, shape);
  }
  w.commit();
  return "quantize output of " + std::to_string(groups.size()) + " tensor(s)";
}

}  // namespace

int cmd_seal(const std::vector<std::string>& argv) {
  Args a("seal", argv, {{"--out", true}}, 1, 1);
  const std::string in = a.positional()[0], out = a.get_or("--out", in);
  regular_file_size(in, "file");
  if (H5Reader::is_sealed(in)) {
    H5Reader::open(in);  // checks the block: a damaged sealed file is an error, not resealed
    if (out != in) copy_file_atomic(in, out);
    std::cout << in << ": already sealed (integrity block valid)"
              << (out != in ? " -> copied to " + out : std::string()) << "\n";
    return 0;
  }
  const std::string what =
      run_isolated("'" + in + "' (to seal it)", kSealTimeoutS, [&] { return reseal(in, out); });
  std::cout << in << ": " << what << ", validated and sealed -> " << out << "\n";
  return 0;
}

}  // namespace mxqat::trainers
