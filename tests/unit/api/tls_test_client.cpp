// The raw HTTPS test client (see tls_test_client.h).
#include "tests/unit/api/tls_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdlib>

namespace coffer::api::testing {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

std::size_t RawResponse::count(std::string_view lower_name) const {
  return static_cast<std::size_t>(std::count_if(headers.begin(), headers.end(),
                                                [&](const auto& h) { return h.first == lower_name; }));
}

const std::string* RawResponse::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

std::unique_ptr<TlsClient> TlsClient::connect(std::uint16_t port, const ClientOptions& options) {
  // OpenSSL writes with write(2): a server that already closed would kill the test with SIGPIPE.
  static const bool sigpipe_ignored = [] { return std::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
  (void)sigpipe_ignored;
  std::unique_ptr<TlsClient> c(new TlsClient());
  c->fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd_ < 0) return nullptr;
  timeval tv{options.timeout_ms / 1000, (options.timeout_ms % 1000) * 1000};
  setsockopt(c->fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(c->fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(c->fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return nullptr;

  c->ctx_ = SSL_CTX_new(TLS_client_method());
  if (c->ctx_ == nullptr) return c;
  SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(c->ctx_, options.ca_file.c_str(), nullptr) != 1) return c;
  if (options.max_version != 0) SSL_CTX_set_max_proto_version(c->ctx_, options.max_version);
  if (options.min_version != 0) SSL_CTX_set_min_proto_version(c->ctx_, options.min_version);
  if (!options.cipher_list.empty() && SSL_CTX_set_cipher_list(c->ctx_, options.cipher_list.c_str()) != 1) {
    return c;
  }
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(c->ctx_, options.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(c->ctx_, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return c;
    }
  }
  c->ssl_ = SSL_new(c->ctx_);
  if (c->ssl_ == nullptr) return c;
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl_), "127.0.0.1");
  SSL_set_fd(c->ssl_, c->fd_);
  if (options.resume) SSL_set_session(c->ssl_, options.resume.get());
  c->handshake_ok_ = SSL_connect(c->ssl_) == 1;
  ERR_clear_error();
  return c;
}

std::shared_ptr<SSL_SESSION> TlsClient::session() const {
  SSL_SESSION* s = ssl_ != nullptr ? SSL_get0_session(ssl_) : nullptr;
  if (s == nullptr || SSL_SESSION_is_resumable(s) != 1) return nullptr;
  // A copy: OpenSSL marks a connection's own session not resumable when the connection is freed
  // without a close_notify, as these tests do.
  SSL_SESSION* copy = SSL_SESSION_dup(s);
  if (copy == nullptr) return nullptr;
  return std::shared_ptr<SSL_SESSION>(copy, SSL_SESSION_free);
}

TlsClient::~TlsClient() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  if (fd_ >= 0) ::close(fd_);
}

bool TlsClient::send(std::string_view bytes) {
  if (!handshake_ok_) return false;
  std::size_t done = 0;
  while (done < bytes.size()) {
    std::size_t n = 0;
    if (SSL_write_ex(ssl_, bytes.data() + done, bytes.size() - done, &n) != 1) {
      ERR_clear_error();
      return false;
    }
    done += n;
  }
  return true;
}

bool TlsClient::fill() {
  if (!handshake_ok_) return false;
  char tmp[16384];
  std::size_t n = 0;
  if (SSL_read_ex(ssl_, tmp, sizeof tmp, &n) != 1) {
    ERR_clear_error();
    return false;
  }
  buf_.append(tmp, n);
  return true;
}

std::string TlsClient::read_until_close() {
  while (fill()) {
  }
  std::string out;
  out.swap(buf_);
  return out;
}

std::optional<RawResponse> TlsClient::read_response(bool head) {
  std::size_t end;
  while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) return std::nullopt;
  }
  const std::string head_text = buf_.substr(0, end);
  buf_.erase(0, end + 4);
  RawResponse r;
  std::size_t line_end = head_text.find("\r\n");
  const std::string status_line = head_text.substr(0, line_end);
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) return std::nullopt;
  r.status = std::atoi(status_line.c_str() + 9);
  while (line_end != std::string::npos) {
    const std::size_t start = line_end + 2;
    line_end = head_text.find("\r\n", start);
    const std::string line = head_text.substr(start, line_end == std::string::npos ? std::string::npos
                                                                                 : line_end - start);
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    r.headers.emplace_back(lower(line.substr(0, colon)), value);
  }
  if (head || r.status == 204 || r.status == 304) return r;
  if (const std::string* te = r.header("transfer-encoding"); te != nullptr && lower(*te) == "chunked") {
    for (;;) {
      std::size_t eol;
      while ((eol = buf_.find("\r\n")) == std::string::npos) {
        if (!fill()) return std::nullopt;
      }
      const std::size_t size = std::strtoul(buf_.substr(0, eol).c_str(), nullptr, 16);
      while (buf_.size() < eol + 2 + size + 2) {
        if (!fill()) return std::nullopt;
      }
      r.body.append(buf_, eol + 2, size);
      buf_.erase(0, eol + 2 + size + 2);
      if (size == 0) return r;
    }
  }
  if (const std::string* cl = r.header("content-length")) {
    const std::size_t size = std::strtoul(cl->c_str(), nullptr, 10);
    while (buf_.size() < size) {
      if (!fill()) return std::nullopt;
    }
    r.body = buf_.substr(0, size);
    buf_.erase(0, size);
    return r;
  }
  r.body = read_until_close();
  return r;
}

std::optional<RawResponse> request_once(std::uint16_t port, const ClientOptions& options,
                                        std::string_view raw_request, bool head) {
  auto client = TlsClient::connect(port, options);
  if (client == nullptr || !client->handshake_ok() || !client->send(raw_request)) return std::nullopt;
  return client->read_response(head);
}

}  // namespace coffer::api::testing
