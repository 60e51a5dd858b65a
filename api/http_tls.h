// TLS client identity for HttpServer (internal to api/): reading PEM files into wiped memory,
// the client-CA trust list with CRLs, and the verification of a GnuTLS session's peer that runs
// both at the handshake and before each request. Split out of http_server.cpp to keep the MHD
// glue and the X.509 logic apart; nothing outside api/http_server.cpp should include it.
#pragma once

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <cstdint>
#include <memory>
#include <string>

#include "api/http_types.h"
#include "common/status.h"
#include "crypto/secret_bytes.h"

namespace coffer::api::tls {

// The client CA plus CRLs, shared read-only by all pool threads (GnuTLS trust lists are only
// read during verification, which is how every GnuTLS server shares its credentials).
struct TrustStore {
  gnutls_x509_trust_list_t list = nullptr;
  std::uint64_t generation = 0;  // bumps on reload_crl so open connections re-verify
  TrustStore() = default;
  TrustStore(const TrustStore&) = delete;
  TrustStore& operator=(const TrustStore&) = delete;
  ~TrustStore() {
    if (list != nullptr) gnutls_x509_trust_list_deinit(list, 1);
  }
};

// Reads a whole PEM file (at most 4 MiB) into wiped memory with a trailing NUL (MHD's *_MEM_*
// options take C strings). Errors: invalid_argument naming `what` and the path.
Result<crypto::SecretBytes> read_pem(const std::string& path, const char* what);

// Loads the CA bundle (already read, NUL-terminated) and the CRL file (optional; empty path = no
// CRL). Every CRL must verify against one of the CAs (signature, not issued in the future,
// nextUpdate not passed): a CRL we cannot trust is a configuration error, not something to skip
// silently (GNUTLS_TL_VERIFY_CRL would just drop it). Errors: invalid_argument.
Result<std::shared_ptr<TrustStore>> load_trust(const crypto::SecretBytes& ca_pem,
                                               const std::string& ca_file,
                                               const std::string& crl_file,
                                               std::uint64_t generation);

// Checks what MHD would only report as "failed to start": that the priority string parses and
// that the server certificate and key load and match. Errors: invalid_argument.
Status check_server_settings(const crypto::SecretBytes& cert_pem, const crypto::SecretBytes& key_pem,
                             const std::string& cert_file, const std::string& key_file,
                             const std::string& priorities);

// Verifies the peer of `session` and returns it: an X.509 chain of sane length (each certificate
// parsed once) that verifies against `trust` (the client CA bundle plus CRLs) for the
// TLS-client-auth purpose, with a leaf inside its validity period, which is stored in
// not_before/not_after (Unix seconds). The PeerCertificate holds the chain's DER and the leaf's
// SHA-256 fingerprint. Errors: permission_denied with a reason fit for the log.
Result<PeerCertificate> verify_peer(gnutls_session_t session, const TrustStore& trust,
                                    std::int64_t& not_before, std::int64_t& not_after);

}  // namespace coffer::api::tls
