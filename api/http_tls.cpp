// TLS client identity for HttpServer: PEM loading, the trust list with CRLs, peer verification.
// See http_tls.h. GnuTLS facts relied on: gnutls_x509_trust_list_verify_crt2 returns 0 even for
// an untrusted chain (the verdict is in the status bits); gnutls_x509_trust_list_add_crls takes
// ownership of the CRLs; trust lists are only read during verification, so one list can be
// shared by all pool threads (as every GnuTLS server shares its credentials).
#include "api/http_tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "crypto/encoding.h"
#include "crypto/mac.h"

namespace coffer::api::tls {
namespace {

constexpr std::size_t kMaxPemBytes = 4 << 20;   // a CA bundle or CRL larger than this is a mistake
constexpr unsigned kMaxPeerChain = 8;           // client chains longer than this are refused

std::string gnutls_text(int rc) { return std::string(gnutls_strerror(rc)); }

std::string verify_status_text(unsigned status) {
  gnutls_datum_t out{};
  if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) < 0) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "verification status 0x%x", status);
    return buf;
  }
  std::string text(reinterpret_cast<const char*>(out.data), out.size);
  gnutls_free(out.data);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
  return text;
}

gnutls_datum_t datum_of(const crypto::SecretBytes& pem) {  // without the trailing NUL
  return gnutls_datum_t{const_cast<unsigned char*>(pem.data(crypto::reveal())),
                        static_cast<unsigned>(pem.size() - 1)};
}

}  // namespace

Result<crypto::SecretBytes> read_pem(const std::string& path, const char* what) {
  if (path.empty()) return Error(Code::invalid_argument, std::string(what) + ": no file configured");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Error(Code::invalid_argument,
                 std::string(what) + " " + path + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
      static_cast<std::size_t>(st.st_size) > kMaxPemBytes) {
    ::close(fd);
    return Error(Code::invalid_argument,
                 std::string(what) + " " + path + ": not a regular, non-empty file under 4 MiB");
  }
  crypto::SecretBytes buf(static_cast<std::size_t>(st.st_size) + 1);
  std::uint8_t* p = buf.data(crypto::reveal());
  std::size_t got = 0;
  while (got < static_cast<std::size_t>(st.st_size)) {
    const ssize_t n = ::read(fd, p + got, static_cast<std::size_t>(st.st_size) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (got != static_cast<std::size_t>(st.st_size)) {
    return Error(Code::invalid_argument, std::string(what) + " " + path + ": short read");
  }
  p[got] = 0;
  if (std::memchr(p, 0, got) != nullptr) {
    return Error(Code::invalid_argument, std::string(what) + " " + path + ": not a PEM text file");
  }
  return buf;
}

Result<std::shared_ptr<TrustStore>> load_trust(const crypto::SecretBytes& ca_pem,
                                               const std::string& ca_file,
                                               const std::string& crl_file,
                                               std::uint64_t generation) {
  auto store = std::make_shared<TrustStore>();
  store->generation = generation;
  gnutls_x509_crt_t* cas = nullptr;
  unsigned ncas = 0;
  gnutls_datum_t ca_datum = datum_of(ca_pem);
  int rc = gnutls_x509_crt_list_import2(&cas, &ncas, &ca_datum, GNUTLS_X509_FMT_PEM, 0);
  if (rc < 0 || ncas == 0) {
    return Error(Code::invalid_argument, "client CA " + ca_file + ": no PEM certificate parsed" +
                                             (rc < 0 ? ": " + gnutls_text(rc) : ""));
  }
  auto free_cas = [&] {
    for (unsigned i = 0; i < ncas; ++i) gnutls_x509_crt_deinit(cas[i]);
    gnutls_free(cas);
  };

  gnutls_x509_crl_t* crls = nullptr;
  unsigned ncrls = 0;
  if (!crl_file.empty()) {
    auto crl_pem = read_pem(crl_file, "CRL");
    if (!crl_pem.ok()) {
      free_cas();
      return crl_pem.status();
    }
    gnutls_datum_t crl_datum = datum_of(*crl_pem);
    rc = gnutls_x509_crl_list_import2(&crls, &ncrls, &crl_datum, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || ncrls == 0) {
      free_cas();
      return Error(Code::invalid_argument, "CRL " + crl_file + ": no PEM CRL parsed" +
                                               (rc < 0 ? ": " + gnutls_text(rc) : ""));
    }
    for (unsigned i = 0; i < ncrls; ++i) {
      unsigned status = 0;
      rc = gnutls_x509_crl_verify(crls[i], cas, ncas, 0, &status);
      if (rc < 0 || status != 0) {
        for (unsigned j = 0; j < ncrls; ++j) gnutls_x509_crl_deinit(crls[j]);
        gnutls_free(crls);
        free_cas();
        return Error(Code::invalid_argument,
                     "CRL " + crl_file + " #" + std::to_string(i + 1) +
                         " does not verify against the client CA: " +
                         (rc < 0 ? gnutls_text(rc) : verify_status_text(status)));
      }
    }
  }

  rc = gnutls_x509_trust_list_init(&store->list, 0);
  if (rc < 0) {
    free_cas();
    return Error(Code::internal, "gnutls_x509_trust_list_init: " + gnutls_text(rc));
  }
  // The list takes ownership of the certificates and CRLs (freed by deinit(list, 1)).
  rc = gnutls_x509_trust_list_add_cas(store->list, cas, ncas, 0);
  gnutls_free(cas);
  if (rc < 0) return Error(Code::invalid_argument, "client CA " + ca_file + ": " + gnutls_text(rc));
  if (ncrls > 0) {
    rc = gnutls_x509_trust_list_add_crls(store->list, crls, ncrls, 0, 0);
    gnutls_free(crls);
    if (rc < 0 || static_cast<unsigned>(rc) != ncrls) {
      return Error(Code::invalid_argument, "CRL " + crl_file + ": not all CRLs were accepted");
    }
  }
  return store;
}

Status check_server_settings(const crypto::SecretBytes& cert_pem, const crypto::SecretBytes& key_pem,
                             const std::string& cert_file, const std::string& key_file,
                             const std::string& priorities) {
  gnutls_priority_t prio = nullptr;
  const char* err_pos = nullptr;
  int rc = gnutls_priority_init(&prio, priorities.c_str(), &err_pos);
  if (rc < 0) {
    return Error(Code::invalid_argument, "TLS priority string invalid near '" +
                                             std::string(err_pos != nullptr ? err_pos : "") +
                                             "': " + gnutls_text(rc));
  }
  gnutls_priority_deinit(prio);
  gnutls_certificate_credentials_t cred = nullptr;
  rc = gnutls_certificate_allocate_credentials(&cred);
  if (rc < 0) return Error(Code::internal, "gnutls_certificate_allocate_credentials: " + gnutls_text(rc));
  const gnutls_datum_t cert = datum_of(cert_pem);
  const gnutls_datum_t key = datum_of(key_pem);
  rc = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM);
  gnutls_certificate_free_credentials(cred);
  if (rc < 0) {
    return Error(Code::invalid_argument,
                 "server certificate " + cert_file + " / key " + key_file + ": " + gnutls_text(rc));
  }
  return Status::Ok();
}

Result<PeerCertificate> verify_peer(gnutls_session_t session, const TrustStore& trust,
                                    std::int64_t& not_before, std::int64_t& not_after) {
  if (gnutls_certificate_type_get2(session, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_X509) {
    return Error(Code::permission_denied, "client did not use an X.509 certificate");
  }
  unsigned n = 0;
  const gnutls_datum_t* der = gnutls_certificate_get_peers(session, &n);
  if (der == nullptr || n == 0) return Error(Code::permission_denied, "no client certificate");
  if (n > kMaxPeerChain) return Error(Code::permission_denied, "client certificate chain too long");

  // Each certificate is parsed once, and the chain verified once: against our trust list, which
  // holds the same CA bundle MHD was given (MHD_OPTION_HTTPS_MEM_TRUST, used only to ask for a
  // client certificate) plus the CRLs. A second gnutls_certificate_verify_peers against MHD's
  // credentials would repeat the same signature checks without the CRLs (~0.2 ms a connection).
  struct Chain {
    gnutls_x509_crt_t crts[kMaxPeerChain] = {};
    unsigned count = 0;
    ~Chain() {
      for (unsigned i = 0; i < count; ++i) gnutls_x509_crt_deinit(crts[i]);
    }
  } chain;
  int rc = 0;
  for (unsigned i = 0; i < n; ++i) {
    if ((rc = gnutls_x509_crt_init(&chain.crts[i])) < 0) {
      return Error(Code::permission_denied, "unparsable client certificate: " + gnutls_text(rc));
    }
    chain.count = i + 1;
    if ((rc = gnutls_x509_crt_import(chain.crts[i], &der[i], GNUTLS_X509_FMT_DER)) < 0) {
      return Error(Code::permission_denied, "unparsable client certificate: " + gnutls_text(rc));
    }
  }

  gnutls_typed_vdata_st purpose{};
  purpose.type = GNUTLS_DT_KEY_PURPOSE_OID;
  purpose.data = reinterpret_cast<unsigned char*>(const_cast<char*>(GNUTLS_KP_TLS_WWW_CLIENT));
  unsigned status = 0;
  rc = gnutls_x509_trust_list_verify_crt2(trust.list, chain.crts, n, &purpose, 1, 0, &status, nullptr);
  if (rc < 0) return Error(Code::permission_denied, "verification failed: " + gnutls_text(rc));
  if (status != 0) return Error(Code::permission_denied, verify_status_text(status));

  const std::time_t now = std::time(nullptr);
  const std::time_t from = gnutls_x509_crt_get_activation_time(chain.crts[0]);
  const std::time_t until = gnutls_x509_crt_get_expiration_time(chain.crts[0]);
  if (from == static_cast<std::time_t>(-1) || until == static_cast<std::time_t>(-1) || now < from ||
      now > until) {
    return Error(Code::permission_denied, "client certificate outside its validity period");
  }
  not_before = static_cast<std::int64_t>(from);
  not_after = static_cast<std::int64_t>(until);

  PeerCertificate peer;
  peer.leaf_der.assign(der[0].data, der[0].data + der[0].size);
  for (unsigned i = 1; i < n; ++i) peer.chain_der.emplace_back(der[i].data, der[i].data + der[i].size);
  peer.fingerprint_sha256_hex = crypto::to_hex(crypto::sha256(peer.leaf_der));
  return peer;
}

}  // namespace coffer::api::tls
