// X.509 for client-certificate authentication: parsing the fields cert auth roles match on, and
// verifying a presented chain against a role's trusted certificates (OpenSSL 3 X509_STORE).
// Trusted certificates are parsed once, when a role is loaded (TrustAnchors::from_pem), never
// per login. TrustAnchors is cheap to copy (shared, immutable) and safe to use from several
// threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "crypto/secret_bytes.h"

namespace coffer::crypto {

struct CertificateInfo {
  std::string common_name;                  // the subject's CN (the last one, as Go reads it)
  std::vector<std::string> dns_sans;
  std::vector<std::string> email_sans;
  std::vector<std::string> uri_sans;
  std::vector<std::string> organizational_units;  // subject OU values
  std::string serial_hex;                   // lowercase hex, no separators
  std::string serial_decimal;               // as Vault's cert auth puts it in token metadata
  std::string fingerprint_sha256_hex;       // lowercase hex SHA-256 of the DER
  std::string subject_key_id;               // "a1:b2:..." (Vault's metadata format), "" if absent
  std::string authority_key_id;             // likewise
  std::int64_t not_before = 0;              // unix seconds
  std::int64_t not_after = 0;
  std::string subject;                      // RFC 2253, e.g. "CN=web01,OU=ops,O=Example"
  bool is_ca = false;                       // basicConstraints CA:TRUE
};

// Errors: invalid_argument (not a DER certificate, or trailing bytes after it).
Result<CertificateInfo> parse_certificate_der(ByteView der);

// Every certificate in a PEM bundle, as DER, in order. Errors: invalid_argument (no certificate,
// or a malformed PEM block).
Result<std::vector<std::vector<std::uint8_t>>> certificates_from_pem(std::string_view pem);

class TrustAnchors {
 public:
  // Builds the trust store from one or more PEM certificates (CAs, or a self-signed leaf).
  // Any certificate in the bundle is an anchor: a chain is accepted once it reaches one of them
  // (X509_V_FLAG_PARTIAL_CHAIN), which is how Go's x509.Verify, and so Vault, treat roots.
  // Errors: invalid_argument (no certificate, malformed PEM), internal (OpenSSL failure).
  static Result<TrustAnchors> from_pem(std::string_view pem);

  // Verifies `leaf_der` up to an anchor, using `intermediates_der` as untrusted helpers, with
  // every certificate's validity period checked at the current time. Errors: invalid_argument
  // (unparseable certificate), permission_denied with OpenSSL's reason, e.g. "certificate has
  // expired", "unable to get local issuer certificate"; internal (OpenSSL failure).
  Status verify(ByteView leaf_der, const std::vector<std::vector<std::uint8_t>>& intermediates_der) const;
  // The same, at `at_unix_seconds` instead of now.
  Status verify_at(ByteView leaf_der, const std::vector<std::vector<std::uint8_t>>& intermediates_der,
                   std::int64_t at_unix_seconds) const;

  // SHA-256 fingerprints (lowercase hex) of the anchors, in bundle order.
  const std::vector<std::string>& fingerprints() const;

 private:
  struct Impl;
  explicit TrustAnchors(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  Status verify_impl(ByteView leaf_der, const std::vector<std::vector<std::uint8_t>>& intermediates_der,
                     const std::int64_t* at) const;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace coffer::crypto
