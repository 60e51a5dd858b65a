// HttpServer: coffer's HTTPS front door. libmicrohttpd (thread pool, epoll) with TLS through
// GnuTLS and *mandatory* mutual TLS: a client without a certificate from the configured client
// CA (or with an expired or revoked one) never completes the handshake, and a second,
// independent check runs before every request reaches the handler. It also enforces the
// transport limits (body, header and path size, connection count and idle timeout), rejects
// malformed paths (NUL, dot segments, "//", control characters) with Vault-style JSON errors, and
// puts the security headers on every response it builds. See http_server.cpp for the upstream
// behaviour each piece works around.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "api/http_types.h"
#include "common/status.h"

namespace coffer::api {

struct HttpServerConfig {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal
  std::uint16_t port = 8200;          // 0 = ephemeral; HttpServer::port() reports the bound one
  std::string cert_file;              // PEM server certificate (chain)
  std::string key_file;               // PEM private key (unencrypted)
  std::string client_ca_file;         // PEM bundle of CAs whose client certificates are accepted
  std::string crl_file;               // optional PEM CRL(s) issued by those CAs
  unsigned threads = 0;               // 0 = number of cores
  unsigned max_connections = 1024;
  unsigned connection_timeout_seconds = 30;  // idle timeout; 0 is refused (MHD means "never")
  std::size_t max_request_bytes = 1 << 20;   // body limit -> 413
  std::size_t max_header_bytes = 16384;      // sum of header lines -> 431
  std::size_t max_path_bytes = 1024;         // raw request path -> 414
  // TLS session resumption (session tickets, TLS 1.2 and 1.3): how long a ticket is accepted;
  // 0 = none issued. The ticket key is random per process (a restart ends every ticket). A
  // resumed connection's client certificate is verified again, against the current trust list
  // and CRLs, before its first request.
  unsigned tls_ticket_lifetime_seconds = 3600;
  // GnuTLS priority string: TLS 1.2 and 1.3 only, ECDHE with AEAD ciphers only.
  std::string tls_priorities =
      "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"
      "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE";
  // Tests only: leave the handshake to MHD's default (client certificate requested but not
  // verified) so the request-time check can be exercised on its own. Never set in cofferd.
  bool test_only_skip_handshake_verification = false;
};

class HttpServer {
 public:
  // Reads the certificate, key, client CA and CRL files, starts listening and returns once the
  // socket is bound. Errors: invalid_argument (bad config value, unreadable or unparsable PEM,
  // a CRL not signed by a configured CA, a bad priority string, a key that does not match the
  // certificate), unavailable (the address/port cannot be bound or MHD refused to start).
  static Result<std::unique_ptr<HttpServer>> start(const HttpServerConfig& config,
                                                   RequestHandler handler);

  // Re-reads crl_file (SIGHUP). New handshakes use it at once; connections already open are
  // checked against it at their next request. Errors as start() for the CRL; on error the old
  // list stays in force.
  Status reload_crl();

  std::uint16_t port() const;
  // Stops accepting, closes every connection and waits for running handlers. Idempotent.
  void stop();
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  struct Impl;  // public only so the C callbacks in http_server.cpp can name it

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coffer::api
