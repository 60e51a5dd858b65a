#include "crypto/mac.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include <memory>

namespace coffer::crypto {

namespace {

// OpenSSL 3's one-shot HMAC() fetches the MAC and the digest by name on every call, which costs
// several microseconds (measured in bench/micro_bench: token lookup, audit append). Each thread
// keeps one HMAC-SHA256 context with the digest set once and only re-keys it per call. The context
// holds the key schedule between calls; the keys hashed here (token-hash, audit) live for the
// whole process anyway, in a process that cannot dump core.
struct MacCtxFree {
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};

EVP_MAC_CTX* thread_hmac_ctx() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  thread_local std::unique_ptr<EVP_MAC_CTX, MacCtxFree> ctx = [] {
    std::unique_ptr<EVP_MAC_CTX, MacCtxFree> c(mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr);
    if (c) {
      char digest[] = "SHA256";
      const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                   OSSL_PARAM_construct_end()};
      if (EVP_MAC_CTX_set_params(c.get(), params) != 1) c.reset();
    }
    return c;
  }();
  return ctx.get();
}

}  // namespace

Result<Digest> hmac_sha256(const SecretBytes& key, ByteView message) {
  Digest out{};
  EVP_MAC_CTX* ctx = thread_hmac_ctx();
  std::size_t len = 0;
  if (ctx == nullptr || key.empty() ||
      EVP_MAC_init(ctx, key.data(reveal()), key.size(), nullptr) != 1 ||
      EVP_MAC_update(ctx, message.data(), message.size()) != 1 ||
      EVP_MAC_final(ctx, out.data(), &len, out.size()) != 1 || len != out.size()) {
    return Error(Code::internal, "HMAC-SHA256 failed");
  }
  return out;
}

Digest sha256(ByteView data) {
  Digest out{};
  SHA256(data.data(), data.size(), out.data());
  return out;
}

Result<SecretBytes> hkdf_sha256(const SecretBytes& input_key, ByteView salt, std::string_view info,
                                std::size_t length) {
  COFFER_ASSIGN_OR_RETURN(SecretBytes out, SecretBytes::create_locked(length));
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(kdf ? EVP_KDF_CTX_new(kdf) : nullptr,
                                                                &EVP_KDF_CTX_free);
  EVP_KDF_free(kdf);
  if (!ctx) return Error(Code::internal, "OpenSSL has no HKDF");
  char digest[] = "SHA256";
  OSSL_PARAM params[5];
  int n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(input_key.data(reveal())), input_key.size());
  params[n++] = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size());
  if (!salt.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, const_cast<std::uint8_t*>(salt.data()), salt.size());
  }
  params[n] = OSSL_PARAM_construct_end();
  if (EVP_KDF_derive(ctx.get(), out.data(reveal()), length, params) != 1) {
    return Error(Code::internal, "HKDF-SHA256 failed");
  }
  return out;
}

bool constant_time_equal(ByteView a, ByteView b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace coffer::crypto
