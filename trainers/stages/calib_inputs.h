// The calibration forward passes of the ptq stage, data-parallel with the same bits for any number
// of processes. Every pass over the calibration batches (a GEMM's inputs for GPTQ's Hessian and
// the scoring of every method, the observers' activation ranges, the smoothing groups' inputs for
// SmoothQuant and AWQ) goes through for_each_calibration_input: batch i is run by one process,
// its captured input is gathered to every process, and every process hands the consumer the same
// tensors in the serial order (batch 0, 1, ...). The consumers are the serial code unchanged, so
// their statistics (double sums in row order, histograms, AWQ's search) are bitwise those of one
// process by construction; only the forward passes are split.
//
// Who runs what: round k covers batches [k n, k n + n); process r runs batch k n + r (if there is
// one), then one allgather (in pieces below MPI's int counts) gives every process the round's
// inputs. The bits do not depend on that assignment (a batch's forward pass is the same on any
// process); the rounds bound the memory to n batches' inputs, where gathering a whole layer's
// inputs at once would hold the calibration set's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.h"
#include "layers/module.h"
#include "quant/fake/qgemm.h"
#include "trainers/dist/dist.h"

namespace mxqat::trainers {

// The general form: compute(i) runs on the process that owns item i of m (round-robin in rounds
// of d.size(), as above); consume(i, t) runs on every process for i = 0, 1, ..., m - 1 with the
// tensor compute(i) returned there (same shape, same bits). `max_call_bytes` caps the bytes of
// one allgatherv (a test sets it small to exercise the pieces). Every process calls it with the
// same m; compute must return a tensor of at most 8 dimensions.
void for_each_in_order(int64_t m, const std::function<autograd::Tensor(int64_t)>& compute,
                       const std::function<void(int64_t, const autograd::Tensor&)>& consume, Dist& d,
                       size_t max_call_bytes = 0);

// Runs the calibration batches through `model` (no graph, this process's share only) and calls
// f(i, x) on every process for every batch i in order, x the input the GEMM of `q` received on
// batch i. `prepare`, if given, rewrites each captured input on the process that ran the batch
// (e.g. the GEMM's rotation and input codec, so that x is what the GEMM sees).
void for_each_calibration_input(layers::Module& model, quant::QuantGemm& q,
                                const std::vector<autograd::Tensor>& calib,
                                const std::function<void(autograd::Tensor&)>& prepare,
                                const std::function<void(int64_t, const autograd::Tensor&)>& f,
                                Dist& d = dist());

// A string from rank 0 to every process (the others' `text` is replaced).
void broadcast_text(std::string& text, Dist& d = dist());

}  // namespace mxqat::trainers
