// SecretJson: nlohmann::json whose every allocation (strings, object nodes, arrays, and the
// parser's own token buffer) goes through a wiping allocator, so the parsed JSON of a secret
// leaves no plaintext behind in freed heap memory. Use it for secret values and for response
// bodies that carry tokens; plain nlohmann::json is fine for non-secret metadata.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "crypto/secret_bytes.h"

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

using SecretString = std::basic_string<char, std::char_traits<char>, WipingAllocator<char>>;
using SecretJson = nlohmann::basic_json<std::map, std::vector, SecretString, bool, std::int64_t,
                                        std::uint64_t, double, WipingAllocator>;

// Serialises into SecretBytes (the intermediate string is wiped too).
inline SecretBytes dump_secret(const SecretJson& j) {
  SecretString s = j.dump();
  return SecretBytes::copy_of(std::string_view(s.data(), s.size()));
}

}  // namespace coffer::crypto
