// A deliberately dumb HTTPS/1.1 client for the HttpServer tests, on OpenSSL's C API: it sends
// exactly the bytes it is given (no path normalisation, unlike curl), can present any client
// certificate or none, can pin the TLS version, and reports precisely whether the handshake
// completed and whether any HTTP bytes came back.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coffer::api::testing {

struct RawResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::size_t count(std::string_view lower_name) const;
  const std::string* header(std::string_view lower_name) const;
};

struct ClientOptions {
  std::string ca_file;    // verifies the server
  std::string cert_file;  // client certificate; empty = send none
  std::string key_file;
  int max_version = 0;    // e.g. TLS1_2_VERSION; 0 = library default (TLS 1.3)
  int min_version = 0;
  std::string cipher_list;  // OpenSSL TLS 1.2 cipher string; empty = default
  int timeout_ms = 10000;   // per socket read/write; a server that neither answers nor closes
  std::shared_ptr<SSL_SESSION> resume;  // offer this session (TlsClient::session()) for resumption
};

class TlsClient {
 public:
  // Connects to 127.0.0.1:port and runs the handshake. nullptr only when TCP connect fails;
  // check handshake_ok() for the TLS result.
  static std::unique_ptr<TlsClient> connect(std::uint16_t port, const ClientOptions& options);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  bool handshake_ok() const { return handshake_ok_; }
  // The session, for ClientOptions::resume (in TLS 1.3 the ticket arrives after the handshake:
  // read a response first); null when the server issued none.
  std::shared_ptr<SSL_SESSION> session() const;
  bool session_reused() const { return ssl_ != nullptr && SSL_session_reused(ssl_) == 1; }
  bool send(std::string_view bytes);
  // One response (Content-Length or chunked framing; HEAD: headers only). nullopt when the
  // connection ends or fails before a complete response.
  std::optional<RawResponse> read_response(bool head = false);
  // Everything the server sends until it closes or errors (for "no HTTP response" checks).
  std::string read_until_close();

 private:
  TlsClient() = default;
  bool fill();  // reads more into buf_; false on EOF/error

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool handshake_ok_ = false;
  std::string buf_;
};

// One request on a fresh connection; nullopt if no HTTP response came back.
std::optional<RawResponse> request_once(std::uint16_t port, const ClientOptions& options,
                                        std::string_view raw_request, bool head = false);

}  // namespace coffer::api::testing
