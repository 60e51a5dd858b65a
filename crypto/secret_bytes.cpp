#include "crypto/secret_bytes.h"

#include <openssl/crypto.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

namespace coffer::crypto {
namespace {

std::size_t page_round(std::size_t n) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return ((n + page - 1) / page) * page;
}

}  // namespace

SecretBytes::SecretBytes(std::size_t n) {
  if (n == 0) return;
  data_ = static_cast<std::uint8_t*>(std::calloc(n, 1));
  if (data_ == nullptr) throw std::bad_alloc();
  size_ = capacity_ = n;
}

SecretBytes::~SecretBytes() { release(); }

void SecretBytes::release() noexcept {
  if (data_ == nullptr) return;
  OPENSSL_cleanse(data_, capacity_);
  if (locked_) {
    const std::size_t len = page_round(capacity_);
    munlock(data_, len);
    munmap(data_, len);
  } else {
    std::free(data_);
  }
  data_ = nullptr;
  size_ = capacity_ = 0;
  locked_ = false;
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(other.data_), size_(other.size_), capacity_(other.capacity_), locked_(other.locked_) {
  other.data_ = nullptr;
  other.size_ = other.capacity_ = 0;
  other.locked_ = false;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    release();
    data_ = other.data_;
    size_ = other.size_;
    capacity_ = other.capacity_;
    locked_ = other.locked_;
    other.data_ = nullptr;
    other.size_ = other.capacity_ = 0;
    other.locked_ = false;
  }
  return *this;
}

SecretBytes SecretBytes::copy_of(ByteView bytes) {
  SecretBytes out(bytes.size());
  if (!bytes.empty()) std::memcpy(out.data_, bytes.data(), bytes.size());
  return out;
}

Result<SecretBytes> SecretBytes::create_locked(std::size_t n) {
  if (n == 0) return Error(Code::invalid_argument, "locked secret buffer of size 0");
  const std::size_t len = page_round(n);
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Error(Code::resource_exhausted, "mmap for locked key memory failed");
  if (mlock(p, len) != 0) {
    const int err = errno;
    munmap(p, len);
    return Error(Code::resource_exhausted,
                 std::string("cannot lock key memory (mlock: ") + std::strerror(err) +
                     "); raise LimitMEMLOCK / RLIMIT_MEMLOCK for the daemon");
  }
  // Best effort: a kernel without MADV_DONTDUMP still has PR_SET_DUMPABLE=0 and LimitCORE=0.
  (void)madvise(p, len, MADV_DONTDUMP);
  SecretBytes out;
  out.data_ = static_cast<std::uint8_t*>(p);
  out.size_ = n;
  out.capacity_ = n;
  out.locked_ = true;
  return out;
}

SecretBytes SecretBytes::clone() const {
  if (!locked_) return copy_of(ByteView(data_, size_));
  auto copy = create_locked(size_);
  if (!copy.ok()) return copy_of(ByteView(data_, size_));  // still wiped, just not locked
  std::memcpy(copy->data_, data_, size_);
  return std::move(copy).value();
}

void SecretBytes::reserve(std::size_t capacity) {
  if (capacity <= capacity_) return;
  if (locked_) throw std::bad_alloc();  // locked buffers are fixed-size key slots
  auto* fresh = static_cast<std::uint8_t*>(std::malloc(capacity));
  if (fresh == nullptr) throw std::bad_alloc();
  if (data_ != nullptr) {
    std::memcpy(fresh, data_, size_);
    OPENSSL_cleanse(data_, capacity_);
    std::free(data_);
  }
  data_ = fresh;
  capacity_ = capacity;
}

void SecretBytes::append(ByteView bytes) {
  if (bytes.empty()) return;
  if (size_ + bytes.size() > capacity_) {
    reserve(std::max(size_ + bytes.size(), capacity_ * 2 < 64 ? 64 : capacity_ * 2));
  }
  std::memcpy(data_ + size_, bytes.data(), bytes.size());
  size_ += bytes.size();
}

void SecretBytes::resize(std::size_t n) {
  if (n < size_) {
    OPENSSL_cleanse(data_ + n, size_ - n);
    size_ = n;
    return;
  }
  if (n > capacity_) reserve(n);
  if (n > size_) std::memset(data_ + size_, 0, n - size_);
  size_ = n;
}

bool SecretBytes::equals(ByteView other) const {
  if (other.size() != size_) return false;
  if (size_ == 0) return true;
  return CRYPTO_memcmp(data_, other.data(), size_) == 0;
}

bool SecretBytes::equals(const SecretBytes& other) const {
  return equals(ByteView(other.data_, other.size_));
}

}  // namespace coffer::crypto

namespace coffer::crypto {
void secure_wipe(void* p, std::size_t n) noexcept {
  if (p != nullptr && n != 0) OPENSSL_cleanse(p, n);
}
}  // namespace coffer::crypto
