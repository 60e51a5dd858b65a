#include "crypto/random.h"

#include <openssl/rand.h>

#include <cstdio>

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

Result<std::string> random_uuid() {
  std::uint8_t b[16];
  COFFER_RETURN_IF_ERROR(random_bytes(b));
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);
  char s[37];
  std::snprintf(s, sizeof s, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                b[13], b[14], b[15]);
  return std::string(s);
}

}  // namespace coffer::crypto
