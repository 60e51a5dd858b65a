// Test-only PKI: builds CA, intermediate and leaf certificates in memory with OpenSSL's C API
// (EC P-256 keys), so the auth tests need no committed certificate files. OpenSSL stays inside
// test_pki.cpp; callers see DER and PEM only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct evp_pkey_st;  // OpenSSL's EVP_PKEY, opaque here

namespace coffer::testing {

struct CertSpec {
  std::string cn{};
  std::vector<std::string> ous{};
  std::vector<std::string> dns{};
  std::vector<std::string> emails{};
  std::vector<std::string> uris{};
  bool ca = false;
  long not_before_offset = -3600;  // seconds from now
  long not_after_offset = 86400;
  long serial = 1;
};

struct TestCert {
  std::vector<std::uint8_t> der;
  std::string pem;
  std::string key_pem;  // the private key (PKCS#8 PEM), for tests that need one
  std::shared_ptr<evp_pkey_st> key;
};

// Self-signed when `issuer` is null. Aborts the test binary on OpenSSL failure (test fixture).
TestCert make_cert(const CertSpec& spec, const TestCert* issuer = nullptr);

}  // namespace coffer::testing
