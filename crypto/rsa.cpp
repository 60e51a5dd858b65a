#include "crypto/rsa.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>

namespace coffer::crypto {
namespace {

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

std::unique_ptr<BIO, decltype(&BIO_free)> mem_bio(std::string_view pem) {
  return {BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free};
}

std::vector<std::uint8_t> bn_param(const EVP_PKEY* key, const char* name, bool& ok) {
  BIGNUM* bn = nullptr;
  ok = EVP_PKEY_get_bn_param(key, name, &bn) == 1 && bn != nullptr;
  std::vector<std::uint8_t> out;
  if (ok) {
    out.resize(static_cast<std::size_t>(BN_num_bytes(bn)));
    BN_bn2bin(bn, out.data());
  }
  BN_free(bn);
  return out;
}

}  // namespace

Result<std::vector<std::uint8_t>> rsa2048_public_modulus_from_pem(std::string_view pem) {
  if (pem.size() > (1 << 20)) return Error(Code::invalid_argument, "public key PEM too large");
  auto bio = mem_bio(pem);
  if (!bio) return Error(Code::internal, "BIO_new_mem_buf failed");
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key) {
    return Error(Code::invalid_argument,
                 "not a PEM public key (expected \"-----BEGIN PUBLIC KEY-----\", as `openssl pkey -pubout` writes)");
  }
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) {
    return Error(Code::invalid_argument, "the public key is not an RSA key (RSA-2048 required)");
  }
  if (EVP_PKEY_get_bits(key.get()) != 2048) {
    return Error(Code::invalid_argument, "the RSA key has " + std::to_string(EVP_PKEY_get_bits(key.get())) +
                                             " bits (RSA-2048 required)");
  }
  bool ok = false;
  auto e = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_E, ok);
  if (!ok || e != std::vector<std::uint8_t>{0x01, 0x00, 0x01}) {
    return Error(Code::invalid_argument, "the RSA key's public exponent is not 65537");
  }
  auto n = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N, ok);
  if (!ok || n.size() != 256) return Error(Code::invalid_argument, "the RSA modulus is not 2048 bits");
  return n;
}

Result<std::vector<std::uint8_t>> rsa_pkcs1_sha256_sign(std::string_view private_key_pem,
                                                        ByteView message) {
  auto bio = mem_bio(private_key_pem);
  if (!bio) return Error(Code::internal, "BIO_new_mem_buf failed");
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key) return Error(Code::invalid_argument, "not an unencrypted PEM private key");
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) {
    return Error(Code::invalid_argument, "the private key is not an RSA key");
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    return Error(Code::internal, "RSA signing setup failed");
  }
  std::size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, message.data(), message.size()) != 1) {
    return Error(Code::internal, "RSA signing failed");
  }
  std::vector<std::uint8_t> sig(len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()) != 1) {
    return Error(Code::internal, "RSA signing failed");
  }
  sig.resize(len);
  return sig;
}

}  // namespace coffer::crypto
