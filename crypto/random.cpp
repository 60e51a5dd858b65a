#include "crypto/random.h"

#include <openssl/rand.h>
#include <pthread.h>

#include <atomic>

#include "crypto/wiping_allocator.h"

namespace coffer::crypto {

Status random_bytes(std::span<std::uint8_t> out) {
  if (out.empty()) return Status::Ok();
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    return Error(Code::internal, "the OpenSSL random generator failed");
  }
  return Status::Ok();
}

Result<SecretBytes> random_key(std::size_t n) {
  COFFER_ASSIGN_OR_RETURN(SecretBytes key, SecretBytes::create_locked(n));
  COFFER_RETURN_IF_ERROR(random_bytes(std::span<std::uint8_t>(key.data(reveal()), n)));
  return key;
}

Result<SecretBytes> random_base62(std::size_t length) {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  SecretBytes out;
  out.reserve(length);
  SecretBytes pool(64);
  while (out.size() < length) {
    COFFER_RETURN_IF_ERROR(random_bytes(std::span<std::uint8_t>(pool.data(reveal()), pool.size())));
    for (std::size_t i = 0; i < pool.size() && out.size() < length; ++i) {
      const std::uint8_t b = pool.data(reveal())[i];
      if (b >= 248) continue;  // 248 = 4 * 62: reject to stay uniform
      out.push_back(static_cast<std::uint8_t>(kAlphabet[b % 62]));
    }
  }
  return out;
}

namespace {

// 16 random bytes as an RFC 4122 version-4 UUID string.
std::string format_uuid(std::uint8_t b[16]) {
  static constexpr char kDigits[] = "0123456789abcdef";
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);
  std::string s(36, '-');
  std::size_t at = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) ++at;  // keep the '-'
    s[at++] = kDigits[b[i] >> 4];
    s[at++] = kDigits[b[i] & 0xf];
  }
  return s;
}

// Bumped in a forked child, so a per-thread buffer inherited from the parent is not reused.
std::atomic<unsigned> g_fork_generation{0};
void on_fork_child() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

Result<std::string> random_uuid() {
  std::uint8_t b[16];
  COFFER_RETURN_IF_ERROR(random_bytes(b));
  return format_uuid(b);
}

Result<std::string> random_request_id() {
  static const int registered = pthread_atfork(nullptr, nullptr, &on_fork_child);
  (void)registered;
  struct Pool {
    std::uint8_t bytes[512];
    std::size_t used = sizeof bytes;
    unsigned generation = 0;
  };
  thread_local Pool pool;
  const unsigned generation = g_fork_generation.load(std::memory_order_relaxed);
  if (pool.used + 16 > sizeof pool.bytes || pool.generation != generation) {
    COFFER_RETURN_IF_ERROR(random_bytes(pool.bytes));
    pool.used = 0;
    pool.generation = generation;
  }
  std::uint8_t* b = pool.bytes + pool.used;
  pool.used += 16;
  std::string id = format_uuid(b);
  secure_wipe(b, 16);  // handed out once only
  return id;
}

}  // namespace coffer::crypto
