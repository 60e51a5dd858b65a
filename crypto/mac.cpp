#include "crypto/mac.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include <array>
#include <memory>

namespace coffer::crypto {

namespace {

// OpenSSL 3's one-shot HMAC() fetches the MAC and the digest by name on every call, which costs
// several microseconds (measured in bench/micro_bench: token lookup, audit append). Each thread
// keeps HMAC-SHA256 contexts with the digest set once, each keyed once for one of the last few
// keys it used: re-keying (hashing the padded key twice) costs more than hashing a short value,
// and an audit record HMACs every value with the same key. A context is found by comparing key
// bytes with a copy kept for that alone (wiped; locked like the key where the kernel allows),
// not by the key's address, which a later key could reuse. The contexts hold the keyed state
// between calls; the keys hashed here (token-hash, audit) live for the whole process anyway, in
// a process that cannot dump core.
struct MacCtxFree {
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, MacCtxFree>;

MacCtxPtr new_hmac_sha256_ctx() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  MacCtxPtr c(mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr);
  if (c) {
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(c.get(), params) != 1) c.reset();
  }
  return c;
}

struct KeyedMac {
  SecretBytes key;  // what `ctx` is keyed with; empty: not keyed
  MacCtxPtr ctx;
};

// A context of this thread, initialised for a new message under `key`; null on failure.
EVP_MAC_CTX* thread_hmac_ctx(const SecretBytes& key) {
  thread_local std::array<KeyedMac, 4> cache;  // coffer has two long-lived HMAC keys
  thread_local std::size_t next = 0;
  for (KeyedMac& e : cache) {
    if (e.ctx && !e.key.empty() && e.key.equals(key)) {
      // A null key restarts the MAC with the key already set (HMAC_Init_ex with no key).
      if (EVP_MAC_init(e.ctx.get(), nullptr, 0, nullptr) == 1) return e.ctx.get();
      e.key = SecretBytes();
      return nullptr;
    }
  }
  KeyedMac& e = cache[next];
  next = (next + 1) % cache.size();
  e.key = SecretBytes();  // wipes the evicted key's copy
  if (!e.ctx) e.ctx = new_hmac_sha256_ctx();
  if (!e.ctx || EVP_MAC_init(e.ctx.get(), key.data(reveal()), key.size(), nullptr) != 1) return nullptr;
  e.key = key.clone();
  return e.ctx.get();
}

}  // namespace

Result<Digest> hmac_sha256(const SecretBytes& key, ByteView message) {
  Digest out{};
  if (key.empty()) return Error(Code::internal, "HMAC-SHA256 failed");
  EVP_MAC_CTX* ctx = thread_hmac_ctx(key);
  std::size_t len = 0;
  if (ctx == nullptr || EVP_MAC_update(ctx, message.data(), message.size()) != 1 ||
      EVP_MAC_final(ctx, out.data(), &len, out.size()) != 1 || len != out.size()) {
    return Error(Code::internal, "HMAC-SHA256 failed");
  }
  return out;
}

Digest sha256(ByteView data) {
  // SHA256() one-shot fetches the digest by name on every call (EVP_Q_digest); the audit chain
  // hashes every record, so fetch once and keep one context per thread.
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  Digest out{};
  unsigned int len = 0;
  if (md == nullptr || !ctx || EVP_DigestInit_ex2(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1 || len != out.size()) {
    SHA256(data.data(), data.size(), out.data());  // the slow path cannot fail for lack of a context
  }
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
