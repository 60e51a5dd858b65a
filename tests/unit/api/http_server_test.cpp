// HttpServer over real TLS: a test PKI from tests/support/make-pki.sh, the server on an
// ephemeral port with a recording echo handler, and a raw OpenSSL client (tls_test_client.h)
// that sends exactly the bytes each case needs.
#include "api/http_server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "crypto/encoding.h"
#include "crypto/mac.h"
#include "tests/unit/api/tls_test_client.h"

namespace coffer::api {
namespace {

using testing::ClientOptions;
using testing::RawResponse;
using testing::TlsClient;
namespace fs = std::filesystem;

// The PKI is made once per build tree (every test binary run shares it), under a file lock
// because ctest may run test processes in parallel.
const std::string& pki_dir() {
  static const std::string dir = [] {
    const std::string d = COFFER_TEST_PKI_DIR;
    fs::create_directories(d);
    const int lock = ::open((d + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (lock >= 0) ::flock(lock, LOCK_EX);
    bool complete = true;
    for (const char* f : {"ca.crt", "server.key", "unit-web.key", "foreign.key", "expired.key",
                          "revoked.key", "ca.crl", "ca-empty.crl", "other-ca.crl"}) {
      complete = complete && fs::exists(d + "/" + f);
    }
    const std::string cmd = std::string("bash '") + COFFER_SOURCE_DIR + "/tests/support/make-pki.sh' " +
                            (complete ? "" : "--force ") + "'" + d + "'";
    const int rc = std::system(cmd.c_str());
    if (lock >= 0) ::close(lock);
    if (rc != 0) ADD_FAILURE() << "make-pki.sh failed: " << cmd;
    return d;
  }();
  return dir;
}

std::string pki(const std::string& name) { return pki_dir() + "/" + name; }

ClientOptions client(const std::string& name, int max_version = 0) {
  ClientOptions o;
  o.ca_file = pki("ca.crt");
  if (!name.empty()) {
    o.cert_file = pki(name + ".crt");
    o.key_file = pki(name + ".key");
  }
  o.max_version = max_version;
  return o;
}

std::vector<std::uint8_t> cert_der(const std::string& pem_path) {
  std::vector<std::uint8_t> der;
  FILE* f = std::fopen(pem_path.c_str(), "rb");
  if (f == nullptr) return der;
  X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (x == nullptr) return der;
  unsigned char* buf = nullptr;
  const int len = i2d_X509(x, &buf);
  if (len > 0) der.assign(buf, buf + len);
  OPENSSL_free(buf);
  X509_free(x);
  return der;
}

struct Seen {
  std::string method, path, raw_path, body, remote_address;
  std::uint16_t remote_port = 0;
  std::vector<std::pair<std::string, std::string>> query, headers;
  PeerCertificate peer;
};

// An HttpServer with an echo handler that records every request it is given.
class HttpServerTest : public ::testing::Test {
 protected:
  HttpServerConfig base_config() {
    HttpServerConfig c;
    c.address = "127.0.0.1";
    c.port = 0;
    c.cert_file = pki("server.crt");
    c.key_file = pki("server.key");
    c.client_ca_file = pki("ca.crt");
    c.crl_file = pki("ca.crl");
    c.threads = 2;
    c.connection_timeout_seconds = 10;
    return c;
  }

  void start(const HttpServerConfig& c) {
    auto r = HttpServer::start(c, [this](HttpRequest& req) { return handle(req); });
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    server_ = std::move(r).value();
    ASSERT_NE(server_->port(), 0);
  }
  void start() { start(base_config()); }

  HttpResponse handle(HttpRequest& req) {
    Seen s;
    s.method = req.method;
    s.path = req.path;
    s.raw_path = req.raw_path;
    s.body = std::string(req.body.view(crypto::reveal()));
    s.remote_address = req.remote_address;
    s.remote_port = req.remote_port;
    s.query = req.query;
    for (const auto& [k, v] : req.headers) s.headers.emplace_back(k, std::string(v.data(), v.size()));
    s.peer = req.peer;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(s);
    }
    if (handler_delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(handler_delay_ms_));
    HttpResponse r;
    r.status = req.method == "HEAD" ? 200 : reply_status_;
    r.body = req.method == "HEAD" ? crypto::SecretBytes::copy_of("{\"head\":\"has a body\"}")
                                  : crypto::SecretBytes::copy_of(s.body);
    r.headers.emplace_back("X-Echo-Method", req.method);
    r.headers.emplace_back("Cache-Control", "public");  // must be ignored: no-store wins
    return r;
  }

  std::size_t seen_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_.size();
  }
  Seen last_seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_.empty() ? Seen{} : seen_.back();
  }

  std::optional<RawResponse> get(const std::string& target, const std::string& who = "unit-web") {
    return testing::request_once(server_->port(), client(who),
                                 "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  }

  // Expect the connection to deliver no HTTP bytes at all (refused at handshake or request).
  void expect_refused(const ClientOptions& who, bool expect_handshake_failure) {
    auto c = TlsClient::connect(server_->port(), who);
    ASSERT_NE(c, nullptr);
    if (expect_handshake_failure) {
      EXPECT_FALSE(c->handshake_ok());
    }
    if (c->handshake_ok()) {
      c->send("GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      EXPECT_EQ(c->read_until_close().find("HTTP/"), std::string::npos);
    }
    EXPECT_EQ(seen_count(), 0u);
  }

  std::unique_ptr<HttpServer> server_;
  std::mutex mu_;
  std::vector<Seen> seen_;
  int reply_status_ = 200;
  int handler_delay_ms_ = 0;
};

void expect_security_headers(const RawResponse& r) {
  ASSERT_NE(r.header("cache-control"), nullptr);
  EXPECT_EQ(*r.header("cache-control"), "no-store");
  EXPECT_EQ(r.count("cache-control"), 1u);
  ASSERT_NE(r.header("x-content-type-options"), nullptr);
  EXPECT_EQ(*r.header("x-content-type-options"), "nosniff");
  ASSERT_NE(r.header("content-security-policy"), nullptr);
  EXPECT_EQ(*r.header("content-security-policy"), "default-src 'none'; frame-ancestors 'none'");
  ASSERT_NE(r.header("strict-transport-security"), nullptr);
  EXPECT_EQ(*r.header("strict-transport-security"), "max-age=31536000; includeSubDomains");
  ASSERT_NE(r.header("x-frame-options"), nullptr);
  EXPECT_EQ(*r.header("x-frame-options"), "DENY");
  ASSERT_NE(r.header("referrer-policy"), nullptr);
  EXPECT_EQ(*r.header("referrer-policy"), "no-referrer");
}

void expect_json_error(const std::optional<RawResponse>& r, int status, const std::string& message) {
  ASSERT_TRUE(r.has_value()) << "no HTTP response";
  EXPECT_EQ(r->status, status);
  EXPECT_EQ(r->body, "{\"errors\":[\"" + message + "\"]}");
  ASSERT_NE(r->header("content-type"), nullptr);
  EXPECT_EQ(*r->header("content-type"), "application/json");
  expect_security_headers(*r);
}

class HttpServerVersionTest : public HttpServerTest, public ::testing::WithParamInterface<int> {};

TEST_P(HttpServerVersionTest, ValidClientCertificateGetsEchoAndSecurityHeaders) {
  start();
  auto r = testing::request_once(server_->port(), client("unit-web", GetParam()),
                                 "POST /v1/secret/app/db?list=true&x=%41b HTTP/1.1\r\n"
                                 "Host: 127.0.0.1\r\nX-Vault-Token: s.abc\r\n"
                                 "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
                                 "{\"k\":\"value\"}");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"k\":\"value\"}");
  expect_security_headers(*r);
  ASSERT_NE(r->header("content-type"), nullptr);
  EXPECT_EQ(*r->header("content-type"), "application/json");
  ASSERT_NE(r->header("x-echo-method"), nullptr);
  EXPECT_EQ(*r->header("x-echo-method"), "POST");

  const Seen s = last_seen();
  EXPECT_EQ(s.method, "POST");
  EXPECT_EQ(s.path, "/v1/secret/app/db");
  EXPECT_EQ(s.raw_path, "/v1/secret/app/db");
  ASSERT_EQ(s.query.size(), 2u);
  EXPECT_EQ(s.query[0], (std::pair<std::string, std::string>{"list", "true"}));
  EXPECT_EQ(s.query[1], (std::pair<std::string, std::string>{"x", "Ab"}));
  bool token_seen = false;
  for (const auto& [k, v] : s.headers) token_seen = token_seen || (k == "x-vault-token" && v == "s.abc");
  EXPECT_TRUE(token_seen) << "header names must arrive lower-cased";
  EXPECT_EQ(s.remote_address, "127.0.0.1");
  EXPECT_NE(s.remote_port, 0);

  // The peer is the client certificate: DER and SHA-256 fingerprint of exactly that file.
  const std::vector<std::uint8_t> der = cert_der(pki("unit-web.crt"));
  ASSERT_FALSE(der.empty());
  EXPECT_EQ(s.peer.leaf_der, der);
  EXPECT_EQ(s.peer.fingerprint_sha256_hex, crypto::to_hex(crypto::sha256(der)));
  EXPECT_EQ(s.peer.fingerprint_sha256_hex.size(), 64u);
  // OpenSSL clients complete the chain from their trust store (no SSL_MODE_NO_AUTO_CHAIN), so
  // the CA certificate arrives as the one "intermediate".
  ASSERT_EQ(s.peer.chain_der.size(), 1u);
  EXPECT_EQ(s.peer.chain_der[0], cert_der(pki("ca.crt")));
}

INSTANTIATE_TEST_SUITE_P(TlsVersions, HttpServerVersionTest,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         [](const auto& p) { return p.param == TLS1_2_VERSION ? "Tls12" : "Tls13"; });

// Refusals. With TLS 1.2 the client sees the handshake fail; with TLS 1.3 the client's side of the
// handshake ends before the server has judged its certificate, so the proof is "no HTTP bytes".
struct Refusal {
  const char* client;
  int version;
};
class HttpServerRefusalTest : public HttpServerTest, public ::testing::WithParamInterface<Refusal> {};

TEST_P(HttpServerRefusalTest, RefusedAtHandshake) {
  start();
  expect_refused(client(GetParam().client, GetParam().version), GetParam().version == TLS1_2_VERSION);
}

// The same clients with the handshake check switched off: the request-time check alone must
// close the connection without an HTTP response.
TEST_P(HttpServerRefusalTest, RefusedAtRequestWhenHandshakeCheckIsOff) {
  HttpServerConfig c = base_config();
  c.test_only_skip_handshake_verification = true;
  start(c);
  expect_refused(client(GetParam().client, GetParam().version), false);
}

INSTANTIATE_TEST_SUITE_P(
    Clients, HttpServerRefusalTest,
    ::testing::Values(Refusal{"", TLS1_2_VERSION}, Refusal{"", TLS1_3_VERSION},
                      Refusal{"foreign", TLS1_2_VERSION}, Refusal{"foreign", TLS1_3_VERSION},
                      Refusal{"expired", TLS1_2_VERSION}, Refusal{"expired", TLS1_3_VERSION},
                      Refusal{"revoked", TLS1_2_VERSION}, Refusal{"revoked", TLS1_3_VERSION},
                      Refusal{"server", TLS1_3_VERSION}),  // a serverAuth-only certificate
    [](const auto& p) {
      std::string name = p.param.client[0] != 0 ? p.param.client : "none";
      return name + (p.param.version == TLS1_2_VERSION ? "_Tls12" : "_Tls13");
    });

TEST_F(HttpServerTest, OnlyTls12And13WithAeadSuitesAreOffered) {
  start();
  auto weak = [&](int version, const char* ciphers) {
    ClientOptions o = client("unit-web", version);
    o.min_version = version;
    o.cipher_list = ciphers;
    auto c = TlsClient::connect(server_->port(), o);
    return c != nullptr && c->handshake_ok();
  };
  EXPECT_FALSE(weak(TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA"));  // CBC
  EXPECT_FALSE(weak(TLS1_2_VERSION, "AES128-GCM-SHA256"));       // no forward secrecy
  EXPECT_FALSE(weak(TLS1_1_VERSION, "DEFAULT:@SECLEVEL=0"));     // old protocol
  EXPECT_TRUE(weak(TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384"));
  EXPECT_TRUE(weak(TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305"));
}

TEST_F(HttpServerTest, ConnectionLimitIsEnforced) {
  HttpServerConfig c = base_config();
  c.threads = 1;  // MHD splits the limit across pool threads: one thread makes it exact
  c.max_connections = 2;
  start(c);
  auto a = TlsClient::connect(server_->port(), client("unit-web"));
  auto b = TlsClient::connect(server_->port(), client("unit-web"));
  ASSERT_TRUE(a && a->handshake_ok() && b && b->handshake_ok());
  // At the limit MHD stops accepting: the third connection waits in the kernel's backlog and
  // gets no TLS handshake.
  ClientOptions quick = client("unit-web");
  quick.timeout_ms = 1000;
  auto third = TlsClient::connect(server_->port(), quick);
  EXPECT_TRUE(third == nullptr || !third->handshake_ok());
  third.reset();
  a.reset();  // frees a slot
  std::optional<RawResponse> r;
  for (int i = 0; i < 20 && !r; ++i) {
    r = get("/v1/x");
    if (!r) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpServerTest, IdleConnectionsAreClosedAfterTheTimeout) {
  HttpServerConfig c = base_config();
  c.connection_timeout_seconds = 1;
  start(c);
  auto a = TlsClient::connect(server_->port(), client("unit-web"));
  ASSERT_TRUE(a && a->handshake_ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  a->send("GET /v1/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_EQ(a->read_until_close().find("HTTP/"), std::string::npos);
  EXPECT_EQ(seen_count(), 0u);
}

TEST_F(HttpServerTest, SkippingTheHandshakeCheckStillServesGoodClients) {
  HttpServerConfig c = base_config();
  c.test_only_skip_handshake_verification = true;
  start(c);
  auto r = get("/v1/sys/health");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpServerTest, BodyOverTheLimitWithContentLengthIs413BeforeReading) {
  HttpServerConfig c = base_config();
  c.max_request_bytes = 1024;
  start(c);
  const std::string body(2000, 'x');
  auto r = testing::request_once(server_->port(), client("unit-web"),
                                 "PUT /v1/secret/a HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 "Content-Length: 2000\r\n\r\n" + body);
  expect_json_error(r, 413, "request body too large");
  EXPECT_EQ(seen_count(), 0u);

  // Exactly at the limit is fine.
  r = testing::request_once(server_->port(), client("unit-web"),
                            "PUT /v1/secret/a HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Length: 1024\r\n\r\n" + std::string(1024, 'y'));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), 1024u);
}

TEST_F(HttpServerTest, ChunkedBodyOverTheLimitIs413) {
  HttpServerConfig c = base_config();
  c.max_request_bytes = 1024;
  start(c);
  std::string req = "PUT /v1/secret/a HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) req += "258\r\n" + std::string(600, 'z') + "\r\n";
  req += "0\r\n\r\n";
  auto r = testing::request_once(server_->port(), client("unit-web"), req);
  expect_json_error(r, 413, "request body too large");
  EXPECT_EQ(seen_count(), 0u);
}

TEST_F(HttpServerTest, ChunkedBodyFarOverTheLimitIsDroppedWithoutReadingItAll) {
  HttpServerConfig c = base_config();
  c.max_request_bytes = 1024;
  start(c);
  auto cl = TlsClient::connect(server_->port(), client("unit-web"));
  ASSERT_TRUE(cl && cl->handshake_ok());
  std::string req = "PUT /v1/secret/a HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 8; ++i) req += "400\r\n" + std::string(1024, 'z') + "\r\n";
  cl->send(req);  // no terminating chunk: the server must give up on its own
  EXPECT_EQ(cl->read_until_close().find("HTTP/1.1 200"), std::string::npos);
  EXPECT_EQ(seen_count(), 0u);
}

TEST_F(HttpServerTest, NulInPathIs400) {
  start();
  expect_json_error(get("/v1/secret/a%00b"), 400, "request path contains a NUL byte");
  expect_json_error(get("/v1/secret/a?x=1%00"), 400, "request query contains a NUL byte");
  EXPECT_EQ(seen_count(), 0u);
}

TEST_F(HttpServerTest, DotSegmentsAndEmptySegmentsAre400) {
  start();
  for (const char* target : {"/v1/secret/../sys/seal", "/v1/secret/%2e%2e/sys/seal",
                             "/v1/secret/%2E%2e/x", "/v1/./secret", "/v1/%2e/secret",
                             "/v1/secret/a/..", "/v1/secret/a/."}) {
    SCOPED_TRACE(target);
    expect_json_error(get(target), 400, "request path contains a dot segment");
  }
  for (const char* target : {"//v1/secret", "/v1//secret", "/v1/secret%2F%2Fx"}) {
    SCOPED_TRACE(target);
    expect_json_error(get(target), 400, "request path contains an empty segment");
  }
  expect_json_error(get("/v1/secret/a%0Ab"), 400, "request path contains control characters");
  expect_json_error(get("/v1/secret/a%7Fb"), 400, "request path contains control characters");
  EXPECT_EQ(seen_count(), 0u);

  // Dots inside a name are not segments.
  auto r = get("/v1/secret/a.b/..c/.d/e..");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(last_seen().path, "/v1/secret/a.b/..c/.d/e..");
}

TEST_F(HttpServerTest, LongPathIs414) {
  start();
  const std::string ok_path = "/v1/secret/" + std::string(1024 - 11, 'a');
  auto r = get(ok_path);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  expect_json_error(get(ok_path + "a"), 414, "request path too long");
  // The raw length counts: %61 is one byte decoded but three on the wire.
  expect_json_error(get("/v1/secret/" + std::string(1000, 'a') + "%61%61%61%61%61%61%61%61%61"), 414,
                    "request path too long");
  EXPECT_EQ(seen_count(), 1u);
}

TEST_F(HttpServerTest, OversizedHeadersAreRefused) {
  start();
  // Above max_header_bytes (16 KiB) but inside MHD's pool: our JSON 431.
  expect_json_error(testing::request_once(server_->port(), client("unit-web"),
                                          "GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " +
                                              std::string(20000, 'h') + "\r\n\r\n"),
                    431, "request headers too large");
  // Far above: MHD's own (HTML) refusal or a close; never the handler.
  auto r = testing::request_once(server_->port(), client("unit-web"),
                                 "GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " +
                                     std::string(100000, 'h') + "\r\n\r\n");
  if (r.has_value()) {
    EXPECT_GE(r->status, 400);
  }
  EXPECT_EQ(seen_count(), 0u);
}

TEST_F(HttpServerTest, ListAndUnknownMethodsReachTheHandler) {
  start();
  for (const char* method : {"LIST", "FROB", "DELETE", "PATCH", "OPTIONS"}) {
    SCOPED_TRACE(method);
    auto r = testing::request_once(server_->port(), client("unit-web"),
                                   std::string(method) + " /v1/secret/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(last_seen().method, method);
    expect_security_headers(*r);
  }
}

TEST_F(HttpServerTest, HeadHasNoBodyAndKeepsTheConnectionUsable) {
  start();
  auto c = TlsClient::connect(server_->port(), client("unit-web"));
  ASSERT_TRUE(c && c->handshake_ok());
  ASSERT_TRUE(c->send("HEAD /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  auto r = c->read_response(/*head=*/true);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  expect_security_headers(*r);
  // If any body byte had been sent it would now precede the next status line.
  ASSERT_TRUE(c->send("GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  r = c->read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(seen_count(), 2u);
}

TEST_F(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  start();
  auto c = TlsClient::connect(server_->port(), client("unit-admin"));
  ASSERT_TRUE(c && c->handshake_ok());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c->send("PUT /v1/secret/k" + std::to_string(i) +
                        " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\nv" + std::to_string(i)));
    auto r = c->read_response();
    ASSERT_TRUE(r.has_value()) << "request " << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "v" + std::to_string(i));
  }
  ASSERT_EQ(seen_count(), 2u);
  const std::vector<std::uint8_t> der = cert_der(pki("unit-admin.crt"));
  EXPECT_EQ(last_seen().peer.fingerprint_sha256_hex, crypto::to_hex(crypto::sha256(der)));
}

TEST_F(HttpServerTest, NoBodyStatusesSendNoBody) {
  reply_status_ = 204;
  start();
  auto c = TlsClient::connect(server_->port(), client("unit-web"));
  ASSERT_TRUE(c && c->handshake_ok());
  ASSERT_TRUE(c->send("DELETE /v1/secret/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc"));
  auto r = c->read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->header("content-type"), nullptr);
  expect_security_headers(*r);
  reply_status_ = 200;
  ASSERT_TRUE(c->send("GET /v1/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  r = c->read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

// Starts the server with a CRL file the test may replace (first: the CA's empty CRL); returns
// its path. The directory is removed at the end of the test.
class HttpServerCrlTest : public HttpServerTest {
 protected:
  std::string start_with_replaceable_crl() {
    dir_ = fs::temp_directory_path() / ("coffer-crl-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    const std::string crl = (dir_ / "crl.pem").string();
    fs::copy_file(pki("ca-empty.crl"), crl, fs::copy_options::overwrite_existing);
    HttpServerConfig c = base_config();
    c.crl_file = crl;
    start(c);
    return crl;
  }
  void TearDown() override {
    HttpServerTest::TearDown();
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

TEST_F(HttpServerCrlTest, CrlReloadAppliesToNewAndOpenConnections) {
  const std::string crl = start_with_replaceable_crl();

  // Not yet revoked: served, and the connection stays open.
  auto open = TlsClient::connect(server_->port(), client("revoked"));
  ASSERT_TRUE(open && open->handshake_ok());
  ASSERT_TRUE(open->send("GET /v1/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  auto r = open->read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);

  // A CRL from the wrong issuer is refused and the old one stays in force.
  fs::copy_file(pki("other-ca.crl"), crl, fs::copy_options::overwrite_existing);
  EXPECT_FALSE(server_->reload_crl().ok());
  r = get("/v1/a", "revoked");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);

  fs::copy_file(pki("ca.crl"), crl, fs::copy_options::overwrite_existing);
  ASSERT_TRUE(server_->reload_crl().ok());
  const std::size_t before = seen_count();
  ASSERT_TRUE(open->send("GET /v1/b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  EXPECT_EQ(open->read_until_close().find("HTTP/"), std::string::npos);
  EXPECT_FALSE(get("/v1/c", "revoked").has_value());
  EXPECT_EQ(seen_count(), before);
  r = get("/v1/d", "unit-web");  // others are unaffected
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

// TLS session resumption (session tickets): a unit that reconnects skips the full handshake,
// and its certificate is still checked against the current CRL before its first request.
std::shared_ptr<SSL_SESSION> first_session(std::uint16_t port, ClientOptions o, int& status) {
  auto c = TlsClient::connect(port, o);
  if (!c || !c->handshake_ok() || !c->send("GET /v1/first HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) return nullptr;
  auto r = c->read_response();
  status = r ? r->status : 0;
  return c->session();
}

TEST_F(HttpServerCrlTest, ResumedSessionsAreServedAndTheirCertificateIsRecheckedAgainstTheCrl) {
  const std::string crl = start_with_replaceable_crl();

  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SCOPED_TRACE(version == TLS1_2_VERSION ? "TLS 1.2" : "TLS 1.3");
    int status = 0;
    ClientOptions o = client("revoked", version);
    std::shared_ptr<SSL_SESSION> session = first_session(server_->port(), o, status);
    EXPECT_EQ(status, 200);
    ASSERT_NE(session, nullptr) << "no session ticket issued";
    const std::string fingerprint = last_seen().peer.fingerprint_sha256_hex;
    ASSERT_FALSE(fingerprint.empty());
    o.resume = session;
    auto resumed = TlsClient::connect(server_->port(), o);
    ASSERT_TRUE(resumed && resumed->handshake_ok());
    EXPECT_TRUE(resumed->session_reused());
    ASSERT_TRUE(resumed->send("GET /v1/again HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    auto r = resumed->read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(last_seen().peer.fingerprint_sha256_hex, fingerprint)
        << "the handler sees the resumed session's client certificate";
  }

  // The certificate is revoked: a resumed session (no certificate sent, no handshake check) is
  // refused before any request reaches the handler.
  int status = 0;
  ClientOptions o = client("revoked");
  std::shared_ptr<SSL_SESSION> session = first_session(server_->port(), o, status);
  ASSERT_NE(session, nullptr);
  fs::copy_file(pki("ca.crl"), crl, fs::copy_options::overwrite_existing);
  ASSERT_TRUE(server_->reload_crl().ok());
  const std::size_t before = seen_count();
  o.resume = session;
  auto resumed = TlsClient::connect(server_->port(), o);
  ASSERT_TRUE(resumed);
  if (resumed->handshake_ok()) {
    EXPECT_TRUE(resumed->session_reused());
    ASSERT_TRUE(resumed->send("GET /v1/revoked HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    EXPECT_EQ(resumed->read_until_close().find("HTTP/1.1 200"), std::string::npos);
  }
  EXPECT_EQ(seen_count(), before);
}

TEST_F(HttpServerTest, NoTicketsWhenResumptionIsOff) {
  HttpServerConfig c = base_config();
  c.tls_ticket_lifetime_seconds = 0;
  start(c);
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SCOPED_TRACE(version == TLS1_2_VERSION ? "TLS 1.2" : "TLS 1.3");
    int status = 0;
    ClientOptions o = client("unit-web", version);
    std::shared_ptr<SSL_SESSION> session = first_session(server_->port(), o, status);
    EXPECT_EQ(status, 200);
    if (version == TLS1_3_VERSION) {
      EXPECT_EQ(session, nullptr) << "a TLS 1.3 ticket was issued";
      continue;
    }
    // TLS 1.2 clients keep a session id even without a ticket; the server must not resume it.
    ASSERT_NE(session, nullptr);
    o.resume = session;
    auto again = TlsClient::connect(server_->port(), o);
    ASSERT_TRUE(again && again->handshake_ok());
    EXPECT_FALSE(again->session_reused());
  }
}

TEST_F(HttpServerTest, ConcurrentClientsWithASlowHandler) {
  handler_delay_ms_ = 20;
  start();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      auto c = TlsClient::connect(server_->port(), client(t % 2 ? "unit-web" : "unit-other"));
      if (!c || !c->handshake_ok()) return;
      for (int i = 0; i < 4; ++i) {
        if (!c->send("GET /v1/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) return;
        auto r = c->read_response();
        if (r && r->status == 200) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 24);
}

TEST_F(HttpServerTest, StopIsIdempotentAndClosesTheListener) {
  start();
  const std::uint16_t port = server_->port();
  server_->stop();
  server_->stop();
  auto c = TlsClient::connect(port, client("unit-web"));
  EXPECT_TRUE(c == nullptr || !c->handshake_ok());
  server_.reset();  // the destructor after stop() is fine too
}

TEST_F(HttpServerTest, StartRefusesBadConfiguration) {
  auto handler = [](HttpRequest&) { return HttpResponse{}; };
  auto expect_code = [&](const HttpServerConfig& c, Code code) {
    auto r = HttpServer::start(c, handler);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), code) << r.status().to_string();
  };
  HttpServerConfig c = base_config();
  c.client_ca_file.clear();
  expect_code(c, Code::invalid_argument);  // mTLS cannot be turned off
  c = base_config();
  c.key_file = pki("does-not-exist.key");
  expect_code(c, Code::invalid_argument);
  c = base_config();
  c.crl_file = pki("other-ca.crl");  // not issued by the client CA
  expect_code(c, Code::invalid_argument);
  c = base_config();
  c.crl_file = pki("ca.crt");  // not a CRL at all
  expect_code(c, Code::invalid_argument);
  c = base_config();
  c.address = "localhost";  // literals only
  expect_code(c, Code::invalid_argument);
  c = base_config();
  c.connection_timeout_seconds = 0;
  expect_code(c, Code::invalid_argument);
  c = base_config();
  c.tls_priorities = "NOT-A-PRIORITY:+BOGUS";
  expect_code(c, Code::invalid_argument);
  c = base_config();
  c.key_file = pki("unit-web.key");  // does not match server.crt
  expect_code(c, Code::invalid_argument);

  // A port already in use.
  start();
  c = base_config();
  c.port = server_->port();
  expect_code(c, Code::unavailable);
}

}  // namespace
}  // namespace coffer::api
