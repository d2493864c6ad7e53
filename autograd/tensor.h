// Tensor: a dense float32 array, row-major, 0-D to 4-D, with Eigen views onto its storage.
// Value semantics (copying copies the data). No autograd here: see var.h for Var.
// Eigen types reach the rest of mxqat only through the aliases below (STYLE.md §7).
#pragma once
#include <Eigen/Core>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "autograd/error.h"
#include "autograd/uninit_allocator.h"

namespace mxqat::autograd {

using Shape = std::vector<int64_t>;
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatMap = Eigen::Map<RowMat>;
using ConstMatMap = Eigen::Map<const RowMat>;
using VecMap = Eigen::Map<Eigen::VectorXf>;
using ConstVecMap = Eigen::Map<const Eigen::VectorXf>;
using ArrMap = Eigen::Map<Eigen::ArrayXf>;
using ConstArrMap = Eigen::Map<const Eigen::ArrayXf>;

int64_t numel_of(const Shape& shape);

// Eigen's aligned allocator, except that resize() leaves new floats uninitialised (for outputs
// that a kernel writes in full: no zero fill, which is a whole extra pass over a large output).
template <class T>
using TensorAllocator = mxqat::UninitAllocator<T, Eigen::aligned_allocator<T>>;
std::string shape_str(const Shape& shape);  // "[2, 3]"

class Tensor {
 public:
  Tensor() = default;                             // empty, shape [0]
  explicit Tensor(Shape shape, float fill = 0.f);  // filled
  Tensor(Shape shape, std::vector<float> values);  // values.size() must equal numel

  static Tensor zeros(Shape shape) { return Tensor(std::move(shape), 0.f); }
  static Tensor ones(Shape shape) { return Tensor(std::move(shape), 1.f); }
  static Tensor scalar(float v) { return Tensor(Shape{}, v); }
  static Tensor zeros_like(const Tensor& t) { return Tensor(t.shape(), 0.f); }
  // Values unspecified: only for an output that is then written in full (GEMM results, maps).
  static Tensor uninit(Shape shape);

  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t size() const { return static_cast<int64_t>(data_.size()); }
  bool empty() const { return data_.empty(); }
  int64_t dim(int axis) const;  // negative axis counts from the end
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  float& operator[](int64_t i) { return data_[static_cast<size_t>(i)]; }
  float operator[](int64_t i) const { return data_[static_cast<size_t>(i)]; }
  float item() const;  // the value of a one-element tensor

  // [rows, last dim] view; a 0-D/1-D tensor is one row.
  int64_t cols() const { return shape_.empty() ? 1 : shape_.back(); }
  int64_t rows() const { return cols() == 0 ? 0 : size() / cols(); }
  MatMap mat() { return MatMap(data(), rows(), cols()); }
  ConstMatMap mat() const { return ConstMatMap(data(), rows(), cols()); }
  MatMap mat(int64_t r, int64_t c);  // any view with r*c == size()
  ConstMatMap mat(int64_t r, int64_t c) const;
  VecMap vec() { return VecMap(data(), size()); }
  ConstVecMap vec() const { return ConstVecMap(data(), size()); }
  ArrMap arr() { return ArrMap(data(), size()); }
  ConstArrMap arr() const { return ConstArrMap(data(), size()); }

  Tensor reshaped(Shape shape) const;  // copy with a new shape of the same numel (one -1 allowed)
  void reshape_inplace(Shape shape);
  void fill(float v);
  bool same_bits(const Tensor& other) const;  // shape and every bit equal

 private:
  Shape shape_{0};
  std::vector<float, TensorAllocator<float>> data_;
};

Shape resolve_shape(const Shape& shape, int64_t numel);  // fills a single -1

}  // namespace mxqat::autograd
