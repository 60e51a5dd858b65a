// Test-only PKI (see test_pki.h).
#include "tests/unit/auth/test_pki.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>

namespace coffer::testing {
namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "test_pki: %s failed\n", what);
    std::abort();
  }
}

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(len));
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  check(X509_add_ext(cert, ext, -1) == 1, "X509_add_ext");
  X509_EXTENSION_free(ext);
}

}  // namespace

TestCert make_cert(const CertSpec& spec, const TestCert* issuer) {
  EVP_PKEY* pkey = EVP_EC_gen("P-256");
  check(pkey != nullptr, "EVP_EC_gen");
  TestCert out;
  out.key = std::shared_ptr<evp_pkey_st>(pkey, EVP_PKEY_free);

  X509* x = X509_new();
  check(x != nullptr, "X509_new");
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), spec.serial);
  X509_gmtime_adj(X509_getm_notBefore(x), spec.not_before_offset);
  X509_gmtime_adj(X509_getm_notAfter(x), spec.not_after_offset);
  X509_set_pubkey(x, pkey);

  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("Coffer Test"), -1, -1, 0);
  for (const auto& ou : spec.ous) {
    X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(ou.c_str()), -1, -1, 0);
  }
  if (!spec.cn.empty()) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  }

  X509* issuer_cert = nullptr;
  EVP_PKEY* issuer_key = pkey;
  if (issuer) {
    const unsigned char* p = issuer->der.data();
    issuer_cert = d2i_X509(nullptr, &p, static_cast<long>(issuer->der.size()));
    check(issuer_cert != nullptr, "d2i issuer");
    X509_set_issuer_name(x, X509_get_subject_name(issuer_cert));
    issuer_key = issuer->key.get();
  } else {
    X509_set_issuer_name(x, name);
  }
  X509* ext_issuer = issuer_cert ? issuer_cert : x;
  add_ext(x, ext_issuer, NID_basic_constraints, spec.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(x, ext_issuer, NID_key_usage,
          spec.ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  add_ext(x, ext_issuer, NID_subject_key_identifier, "hash");
  add_ext(x, ext_issuer, NID_authority_key_identifier, "keyid:always");
  std::string san;
  for (const auto& d : spec.dns) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
  for (const auto& e : spec.emails) san += (san.empty() ? "" : ",") + std::string("email:") + e;
  for (const auto& u : spec.uris) san += (san.empty() ? "" : ",") + std::string("URI:") + u;
  if (!san.empty()) add_ext(x, ext_issuer, NID_subject_alt_name, san);

  check(X509_sign(x, issuer_key, EVP_sha256()) > 0, "X509_sign");

  unsigned char* der = nullptr;
  const int len = i2d_X509(x, &der);
  check(len > 0, "i2d_X509");
  out.der.assign(der, der + len);
  OPENSSL_free(der);

  BIO* bio = BIO_new(BIO_s_mem());
  check(PEM_write_bio_X509(bio, x) == 1, "PEM_write_bio_X509");
  out.pem = bio_string(bio);
  BIO_free(bio);
  bio = BIO_new(BIO_s_mem());
  check(PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr) == 1, "PEM key");
  out.key_pem = bio_string(bio);
  BIO_free(bio);

  X509_free(issuer_cert);
  X509_free(x);
  return out;
}

}  // namespace coffer::testing
