#include "crypto/aead.h"

#include <openssl/evp.h>

#include <memory>

#include "crypto/random.h"

namespace coffer::crypto {
namespace {

// Fetched once per process: EVP_get_cipherbyname per call costs a lock and a lookup.
const EVP_CIPHER* aes256gcm() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

}  // namespace

Result<std::vector<std::uint8_t>> aead_seal(const SecretBytes& key, ByteView plaintext,
                                            ByteView associated_data) {
  if (key.size() != kAeadKeySize) return Error(Code::invalid_argument, "AEAD key must be 32 bytes");
  if (aes256gcm() == nullptr) return Error(Code::internal, "OpenSSL has no AES-256-GCM");
  std::vector<std::uint8_t> out(kAeadNonceSize + plaintext.size() + kAeadTagSize);
  COFFER_RETURN_IF_ERROR(random_bytes(std::span<std::uint8_t>(out.data(), kAeadNonceSize)));

  CtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx ||
      EVP_EncryptInit_ex2(ctx.get(), aes256gcm(), key.data(reveal()), out.data(), nullptr) != 1 ||
      (!associated_data.empty() &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &len, associated_data.data(),
                         static_cast<int>(associated_data.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), out.data() + kAeadNonceSize, &len, plaintext.data(),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + kAeadNonceSize + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kAeadTagSize),
                          out.data() + kAeadNonceSize + plaintext.size()) != 1) {
    return Error(Code::internal, "AES-256-GCM encryption failed");
  }
  return out;
}

Result<SecretBytes> aead_open(const SecretBytes& key, ByteView sealed, ByteView associated_data) {
  if (key.size() != kAeadKeySize) return Error(Code::invalid_argument, "AEAD key must be 32 bytes");
  if (sealed.size() < kAeadOverhead) return Error(Code::data_loss, "ciphertext failed authentication");
  if (aes256gcm() == nullptr) return Error(Code::internal, "OpenSSL has no AES-256-GCM");
  const std::size_t ct_len = sealed.size() - kAeadOverhead;
  SecretBytes plain(ct_len);
  CtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  // GCM's tag ctrl takes a non-const pointer but only reads it.
  auto* tag = const_cast<std::uint8_t*>(sealed.data() + kAeadNonceSize + ct_len);
  const bool ok =
      ctx &&
      EVP_DecryptInit_ex2(ctx.get(), aes256gcm(), key.data(reveal()), sealed.data(), nullptr) == 1 &&
      (associated_data.empty() ||
       EVP_DecryptUpdate(ctx.get(), nullptr, &len, associated_data.data(),
                         static_cast<int>(associated_data.size())) == 1) &&
      EVP_DecryptUpdate(ctx.get(), plain.data(reveal()), &len, sealed.data() + kAeadNonceSize,
                        static_cast<int>(ct_len)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kAeadTagSize), tag) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), plain.data(reveal()) + len, &len) == 1;
  if (!ok) return Error(Code::data_loss, "ciphertext failed authentication");
  return plain;
}

}  // namespace coffer::crypto
