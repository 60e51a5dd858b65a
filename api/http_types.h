// Plain data passed between the HTTPS front door (api/http_server) and whatever answers requests
// (the Vault router). No libmicrohttpd or GnuTLS types leak through here: a handler sees one
// fully received, already checked request (mutual TLS verified, path sane, body within limits)
// and returns one response. Request and response bodies live in SecretBytes because they carry
// secrets (KV values, tokens, secret IDs) and must be wiped when dropped.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crypto/secret_bytes.h"
#include "crypto/wiping_allocator.h"

namespace coffer::api {

// The client certificate the TLS layer verified (chains to the client CA, not revoked, inside
// its validity period, usable for TLS client authentication).
struct PeerCertificate {
  std::vector<std::uint8_t> leaf_der;
  std::vector<std::vector<std::uint8_t>> chain_der;  // intermediates as the client sent them
  std::string fingerprint_sha256_hex;                // lower-case hex of SHA-256(leaf_der)
  // Subject, SANs, serial etc.: parse leaf_der with crypto/x509.h (one parser for cert auth).

};

struct HttpRequest {
  std::string method;    // as sent (GET, PUT, LIST, ...); never rejected here
  std::string path;      // as libmicrohttpd gives it: percent-decoded, query removed
  std::string raw_path;  // the path as on the wire (percent-encoded), empty if not obtainable
  std::vector<std::pair<std::string, std::string>> query;    // decoded, in order; "?a" gives {"a",""}
  // Names lower-cased, in order. Values are SecretStrings in wiped storage: X-Vault-Token and
  // Authorization carry credentials.
  using Header = std::pair<std::string, crypto::SecretString>;
  std::vector<Header, crypto::WipingAllocator<Header>> headers;
  crypto::SecretBytes body;
  std::string remote_address;  // textual IPv4/IPv6 address of the TCP peer
  std::uint16_t remote_port = 0;
  PeerCertificate peer;

  // First header with this (lower-case) name, or nullptr.
  const crypto::SecretString* header(std::string_view lower_name) const {
    for (const auto& [name, value] : headers) {
      if (name == lower_name) return &value;
    }
    return nullptr;
  }
  // First query parameter with this name, or nullptr.
  const std::string* query_param(std::string_view name) const {
    for (const auto& [key, value] : query) {
      if (key == name) return &value;
    }
    return nullptr;
  }
};

struct HttpResponse {
  int status = 200;
  crypto::SecretBytes body;
  // Sent only when the body is not empty. A string with static storage (a literal): a
  // std::string here cost every response a heap block, "application/json" being one byte past
  // the small-string buffer.
  const char* content_type = "application/json";
  // Extra headers. The server always sets the security headers itself (Cache-Control,
  // X-Content-Type-Options, Content-Security-Policy, Strict-Transport-Security, X-Frame-Options,
  // Referrer-Policy) and the framing headers; entries here with those names are ignored.
  std::vector<std::pair<std::string, std::string>> headers;
};

// Called once per complete request, on one of the server's pool threads (several at once).
// It may block (sqlite fsync, HSM calls). It must not throw: a throw becomes a 500.
using RequestHandler = std::function<HttpResponse(HttpRequest&)>;

}  // namespace coffer::api
