// SecretBytes: the only container coffer keeps key material and plaintext secrets in.
// Move-only; wiped with OPENSSL_cleanse when freed and when it grows; optionally locked
// (mlock + MADV_DONTDUMP) for long-lived keys. No stream output, no implicit conversion to
// std::string: reading the bytes needs a SecretAccess token, minted only by reveal(), so
// `grep -n 'reveal()'` lists every place plaintext leaves its box (Tink's idea).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/status.h"

namespace coffer::crypto {

using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(std::string_view s) {
  return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

// Proof that the caller means to look at secret bytes. Mint it with reveal() only.
class SecretAccess {
 private:
  SecretAccess() = default;
  friend SecretAccess reveal();
};
inline SecretAccess reveal() { return SecretAccess(); }

class SecretBytes {
 public:
  SecretBytes() = default;
  // n zero bytes on the (wiped) heap.
  explicit SecretBytes(std::size_t n);
  ~SecretBytes();

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  static SecretBytes copy_of(ByteView bytes);
  static SecretBytes copy_of(std::string_view bytes) { return copy_of(as_bytes(bytes)); }
  // n zero bytes in pages of their own, mlock'ed and excluded from core dumps. Fails (rather
  // than silently falling back to swappable memory) when the kernel refuses the lock.
  static Result<SecretBytes> create_locked(std::size_t n);
  // An explicit deep copy (the copy constructor is deleted so copies are always visible).
  SecretBytes clone() const;

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool locked() const { return locked_; }

  std::uint8_t* data(SecretAccess) { return data_; }
  const std::uint8_t* data(SecretAccess) const { return data_; }
  ByteView bytes(SecretAccess) const { return ByteView(data_, size_); }
  std::string_view view(SecretAccess) const {
    return std::string_view(reinterpret_cast<const char*>(data_), size_);
  }

  // Appends; on growth the old buffer is wiped before it is freed. Locked buffers cannot grow.
  void append(ByteView bytes);
  void append(std::string_view s) { append(as_bytes(s)); }
  void push_back(std::uint8_t b) { append(ByteView(&b, 1)); }
  void reserve(std::size_t capacity);
  // Shrinking wipes the cut-off tail.
  void resize(std::size_t n);
  void clear() { resize(0); }

  // Constant-time comparison of contents (lengths are not secret).
  bool equals(const SecretBytes& other) const;
  bool equals(ByteView other) const;

 private:
  void release() noexcept;

  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  bool locked_ = false;
};

}  // namespace coffer::crypto
