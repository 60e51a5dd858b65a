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

Result<Digest> hmac_sha256(const SecretBytes& key, ByteView message) {
  Digest out{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(reveal()), static_cast<int>(key.size()), message.data(),
           message.size(), out.data(), &len) == nullptr ||
      len != out.size()) {
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
