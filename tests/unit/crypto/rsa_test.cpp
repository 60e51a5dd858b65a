// crypto/rsa.h: the operator's policy public key and PKCS#1 v1.5 signing for signed PCR policies.
#include "crypto/rsa.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>
#include <string>

namespace coffer::crypto {
namespace {

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

PkeyPtr rsa_key(unsigned bits, unsigned exponent = 65537) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* key = nullptr;
  BIGNUM* e = BN_new();
  BN_set_word(e, exponent);
  EXPECT_EQ(EVP_PKEY_keygen_init(ctx.get()), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), static_cast<int>(bits)), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx.get(), e), 1);
  EXPECT_EQ(EVP_PKEY_keygen(ctx.get(), &key), 1);
  BN_free(e);
  return PkeyPtr(key, EVP_PKEY_free);
}

std::string pem(EVP_PKEY* key, bool priv) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (priv) {
    EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  } else {
    EXPECT_EQ(PEM_write_bio_PUBKEY(bio.get(), key), 1);
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

std::vector<std::uint8_t> modulus(EVP_PKEY* key) {
  BIGNUM* n = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
  std::vector<std::uint8_t> out(256);
  EXPECT_EQ(BN_bn2binpad(n, out.data(), 256), 256);
  BN_free(n);
  return out;
}

TEST(CryptoRsa, ModulusFromPublicKeyPem) {
  auto key = rsa_key(2048);
  auto n = rsa2048_public_modulus_from_pem(pem(key.get(), false));
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, modulus(key.get()));
}

TEST(CryptoRsa, RefusesOtherKeys) {
  EXPECT_EQ(rsa2048_public_modulus_from_pem("garbage").status().code(), Code::invalid_argument);
  auto big = rsa_key(3072);
  EXPECT_EQ(rsa2048_public_modulus_from_pem(pem(big.get(), false)).status().code(), Code::invalid_argument);
  auto e3 = rsa_key(2048, 3);
  EXPECT_EQ(rsa2048_public_modulus_from_pem(pem(e3.get(), false)).status().code(), Code::invalid_argument);
  PkeyPtr ec(EVP_EC_gen("P-256"), EVP_PKEY_free);
  EXPECT_EQ(rsa2048_public_modulus_from_pem(pem(ec.get(), false)).status().code(), Code::invalid_argument);
  auto key = rsa_key(2048);  // a private key PEM is not a public key PEM
  EXPECT_EQ(rsa2048_public_modulus_from_pem(pem(key.get(), true)).status().code(), Code::invalid_argument);
}

TEST(CryptoRsa, SignatureVerifiesAsPkcs1Sha256) {
  auto key = rsa_key(2048);
  const std::string message = "policy-digest||coffer-mk-1";
  auto sig = rsa_pkcs1_sha256_sign(pem(key.get(), true), as_bytes(message));
  ASSERT_TRUE(sig.ok()) << sig.status().message();
  ASSERT_EQ(sig->size(), 256u);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* pctx = nullptr;
  ASSERT_EQ(EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key.get()), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING), 1);
  const auto* m = reinterpret_cast<const unsigned char*>(message.data());
  EXPECT_EQ(EVP_DigestVerify(ctx.get(), sig->data(), sig->size(), m, message.size()), 1);
  std::vector<std::uint8_t> bad = *sig;
  bad[10] ^= 1;
  ASSERT_EQ(EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key.get()), 1);
  EXPECT_NE(EVP_DigestVerify(ctx.get(), bad.data(), bad.size(), m, message.size()), 1);
}

TEST(CryptoRsa, SignRefusesNonRsaOrGarbage) {
  EXPECT_EQ(rsa_pkcs1_sha256_sign("nope", as_bytes("x")).status().code(), Code::invalid_argument);
  PkeyPtr ec(EVP_EC_gen("P-256"), EVP_PKEY_free);
  EXPECT_EQ(rsa_pkcs1_sha256_sign(pem(ec.get(), true), as_bytes("x")).status().code(), Code::invalid_argument);
}

}  // namespace
}  // namespace coffer::crypto
