// An allocator whose resize() leaves new elements uninitialised (default-initialised: no zero
// fill for arithmetic types), for buffers that a kernel then writes in full: the zero fill would
// be a whole extra, serial pass over a large output. Header-only, no Eigen: the codec library
// (quant/codec) uses it too. `Base` supplies the memory (std::allocator, or Eigen's aligned one).
#pragma once
#include <memory>
#include <new>
#include <utility>

namespace mxqat {

template <class T, class Base = std::allocator<T>>
struct UninitAllocator : Base {
  template <class U>
  struct rebind {
    using other = UninitAllocator<U, typename std::allocator_traits<Base>::template rebind_alloc<U>>;
  };
  UninitAllocator() = default;
  template <class U, class B>
  UninitAllocator(const UninitAllocator<U, B>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

}  // namespace mxqat
