// Tensor storage and shape helpers.
#include "autograd/tensor.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>

namespace mxqat::autograd {

int64_t numel_of(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    MXQAT_CHECK(d >= 0, "tensor shape ", shape_str(shape), " has a negative dimension");
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

Shape resolve_shape(const Shape& shape, int64_t numel) {
  Shape out = shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      MXQAT_CHECK(infer < 0, "shape ", shape_str(shape), " has more than one -1");
      infer = static_cast<int>(i);
    } else {
      known *= out[i];
    }
  }
  if (infer >= 0) {
    MXQAT_CHECK(known > 0 && numel % known == 0, "cannot reshape ", numel, " elements to ",
                shape_str(shape));
    out[static_cast<size_t>(infer)] = numel / known;
  }
  MXQAT_CHECK(numel_of(out) == numel, "cannot reshape ", numel, " elements to ", shape_str(shape));
  return out;
}

Tensor::Tensor(Shape shape, float fill) : shape_(std::move(shape)) {
  MXQAT_CHECK(shape_.size() <= 4, "tensors have at most 4 dimensions, got ", shape_str(shape_));
  data_.assign(static_cast<size_t>(numel_of(shape_)), fill);
}

Tensor Tensor::uninit(Shape shape) {
  Tensor t;
  MXQAT_CHECK(shape.size() <= 4, "tensors have at most 4 dimensions, got ", shape_str(shape));
  t.data_.resize(static_cast<size_t>(numel_of(shape)));
#ifdef MXQAT_POISON_UNINIT  // sanitizer builds: a read of an element nobody wrote shows as NaN
  std::fill(t.data_.begin(), t.data_.end(), std::numeric_limits<float>::quiet_NaN());
#endif
  t.shape_ = std::move(shape);
  return t;
}

Tensor::Tensor(Shape shape, std::vector<float> values) : shape_(std::move(shape)) {
  MXQAT_CHECK(shape_.size() <= 4, "tensors have at most 4 dimensions, got ", shape_str(shape_));
  MXQAT_CHECK(numel_of(shape_) == static_cast<int64_t>(values.size()), "shape ",
              shape_str(shape_), " needs ", numel_of(shape_), " values, got ", values.size());
  data_.assign(values.begin(), values.end());
}

int64_t Tensor::dim(int axis) const {
  int n = ndim();
  int a = axis < 0 ? axis + n : axis;
  MXQAT_CHECK(a >= 0 && a < n, "axis ", axis, " out of range for shape ", shape_str(shape_));
  return shape_[static_cast<size_t>(a)];
}

float Tensor::item() const {
  MXQAT_CHECK(size() == 1, "item() needs a one-element tensor, shape is ", shape_str(shape_));
  return data_[0];
}

MatMap Tensor::mat(int64_t r, int64_t c) {
  MXQAT_CHECK(r * c == size(), "cannot view ", shape_str(shape_), " as [", r, ", ", c, "]");
  return MatMap(data(), r, c);
}

ConstMatMap Tensor::mat(int64_t r, int64_t c) const {
  MXQAT_CHECK(r * c == size(), "cannot view ", shape_str(shape_), " as [", r, ", ", c, "]");
  return ConstMatMap(data(), r, c);
}

Tensor Tensor::reshaped(Shape shape) const {
  Tensor t = *this;
  t.reshape_inplace(std::move(shape));
  return t;
}

void Tensor::reshape_inplace(Shape shape) {
  Shape s = resolve_shape(shape, size());
  MXQAT_CHECK(s.size() <= 4, "tensors have at most 4 dimensions, got ", shape_str(s));
  shape_ = std::move(s);
}

void Tensor::fill(float v) { std::fill(data_.begin(), data_.end(), v); }

bool Tensor::same_bits(const Tensor& other) const {
  return shape_ == other.shape_ &&
         (data_.empty() || std::memcmp(data(), other.data(), data_.size() * sizeof(float)) == 0);
}

}  // namespace mxqat::autograd
