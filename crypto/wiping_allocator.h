// WipingAllocator: an allocator that wipes memory (OPENSSL_cleanse) before freeing it, and
// SecretString, a std::string that uses it. For library containers that must hold secrets
// (parsed JSON of a secret, request headers carrying tokens): every heap block they free is
// wiped, including the small-string buffer of strings that live inside wiped nodes.
#pragma once

#include <cstddef>
#include <new>
#include <string>

namespace coffer::crypto {

// Wipes with OPENSSL_cleanse (defined in secret_bytes.cpp so this header needs no OpenSSL).
void secure_wipe(void* p, std::size_t n) noexcept;

template <class T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() noexcept = default;
  template <class U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept {
    secure_wipe(static_cast<void*>(p), n * sizeof(T));
    ::operator delete(static_cast<void*>(p));
  }
  template <class U>
  bool operator==(const WipingAllocator<U>&) const noexcept { return true; }
};

// Note: a SecretString short enough for the small-string buffer keeps its bytes inside the
// string object itself; that object is wiped only if it lives in wiped memory (a SecretJson node,
// a vector with a WipingAllocator). Locals on the stack are not wiped.
using SecretString = std::basic_string<char, std::char_traits<char>, WipingAllocator<char>>;

}  // namespace coffer::crypto
