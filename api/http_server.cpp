// HttpServer: libmicrohttpd 0.9.75 + GnuTLS 3.7 glue for coffer's mutual-TLS front door.
//
// Upstream behaviour this file works around (checked on Debian 12, see platform-notes.md):
//  * MHD has no "require a client certificate" option: MHD_OPTION_HTTPS_MEM_TRUST only makes it
//    call gnutls_certificate_server_set_request(GNUTLS_CERT_REQUEST) and never verifies. We take
//    the session in MHD_CONNECTION_NOTIFY_STARTED (called before the handshake), switch it to
//    GNUTLS_CERT_REQUIRE and install our own verify function, so a bad client fails the handshake.
//  * MHD has no CRL option and does not expose its gnutls_certificate_credentials_t. We keep our
//    own trust list (client CA + CRLs) and verify against it in that verify function, and again
//    at the first request after the trust list changed (SIGHUP, new CRL).
//  * gnutls_certificate_verify_peers* and gnutls_x509_trust_list_verify_crt2 return 0 for an
//    untrusted chain: the verdict is in the status bits (MHD's own tutorial checks only the
//    return value and so accepts any CA).
//  * MHD hands the access handler a percent-decoded path that a %00 silently truncates; the raw
//    request target is only visible through MHD_OPTION_URI_LOG_CALLBACK, so we keep it from there.
//  * MHD_queue_response is accepted only before the body is read or after all of it: an oversized
//    body with a Content-Length is refused before reading; a chunked one is discarded (bounded)
//    and answered 413 at its end, or the connection is dropped past twice the limit.
//  * MHD's own error responses (malformed request line, header pool exhausted -> 431, absurd
//    Content-Length -> 413, missing Host) are fixed HTML bodies without our headers; we catch
//    the common cases ourselves first (header size, path length) with JSON errors.
//  * MHD's connection timeout defaults to "never" (its header calls it unsafe): always set.
// The X.509 side (PEM loading, trust list with CRLs, peer verification) is in http_tls.cpp.
#include "api/http_server.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <thread>

#include "api/http_tls.h"
#include "common/log.h"

namespace coffer::api {
namespace {

using tls::TrustStore;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return out;
}

// Per TCP connection (MHD socket_context): owned from NOTIFY_STARTED to NOTIFY_CLOSED, touched
// only by the pool thread that serves the connection.
struct ConnState {
  HttpServer::Impl* impl = nullptr;
  std::string remote_address;
  std::uint16_t remote_port = 0;
  bool verified = false;             // the request-time verification passed...
  std::uint64_t verified_generation = 0;  // ...against this trust store generation
  PeerCertificate peer;
  std::int64_t not_before = 0;  // leaf validity, Unix seconds
  std::int64_t not_after = 0;
};

// Per request (MHD req_cls): created by the URI log callback, freed in NOTIFY_COMPLETED.
struct RequestState {
  std::optional<std::string> raw_uri;  // request target as received, if MHD reported it
  bool started = false;
  bool too_large = false;
  std::size_t discarded = 0;
  HttpRequest request;
};

// Vault-style error body. Messages here are fixed strings (no request data echoed back).
HttpResponse json_error(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = crypto::SecretBytes::copy_of("{\"errors\":[\"" + std::string(message) + "\"]}");
  return r;
}

struct PathError {
  int status;
  const char* message;
};

// Path rules, applied before any handler sees the request. `decoded` is MHD's percent-decoded
// path; `raw_target` the request target as received (path and query), if known.
std::optional<PathError> check_path(std::string_view decoded, const std::optional<std::string>& raw_target,
                                    std::size_t max_path_bytes) {
  std::string_view raw_path;
  if (raw_target) raw_path = std::string_view(*raw_target).substr(0, raw_target->find('?'));
  if (std::max(raw_path.size(), decoded.size()) > max_path_bytes) {
    return PathError{414, "request path too long"};
  }
  if (raw_target) {
    // MHD decodes %00 into a NUL and the C string it passes us ends there ("a%00b" -> "a").
    const std::size_t nul = std::min(raw_target->find("%00"), raw_target->find('\0'));
    if (nul != std::string::npos) {
      return PathError{400, nul < raw_path.size() ? "request path contains a NUL byte"
                                                  : "request query contains a NUL byte"};
    }
    for (unsigned char ch : *raw_target) {
      if (ch < 0x20 || ch == 0x7f) return PathError{400, "request path contains control characters"};
    }
  }
  if (decoded.empty() || decoded.front() != '/') return PathError{400, "request path must start with /"};
  for (unsigned char ch : decoded) {
    if (ch < 0x20 || ch == 0x7f) return PathError{400, "request path contains control characters"};
  }
  if (decoded.find("//") != std::string_view::npos) {
    return PathError{400, "request path contains an empty segment"};
  }
  // Dot segments, also when sent as %2e (MHD decodes them, so checking `decoded` covers both).
  std::size_t start = 1;
  while (start <= decoded.size()) {
    std::size_t end = decoded.find('/', start);
    if (end == std::string_view::npos) end = decoded.size();
    const std::string_view seg = decoded.substr(start, end - start);
    if (seg == "." || seg == "..") return PathError{400, "request path contains a dot segment"};
    start = end + 1;
  }
  return std::nullopt;
}

bool is_reserved_header(std::string_view lower_name) {
  static constexpr std::string_view kReserved[] = {
      "cache-control", "x-content-type-options", "content-security-policy",
      "strict-transport-security", "x-frame-options", "referrer-policy", "content-type",
      "content-length", "transfer-encoding", "connection", "date", "keep-alive", "upgrade"};
  return std::find(std::begin(kReserved), std::end(kReserved), lower_name) != std::end(kReserved);
}

bool valid_header(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (unsigned char ch : name) {
    if (ch <= 0x20 || ch >= 0x7f || ch == ':') return false;
  }
  for (unsigned char ch : value) {
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return false;
  }
  return true;
}

void free_secret_body(void* cls) { delete static_cast<crypto::SecretBytes*>(cls); }

// Turns an HttpResponse into an MHD response with the security headers and queues it. The body
// buffer handed to MHD is our SecretBytes, freed (and so wiped) by MHD's free callback; MHD and
// GnuTLS make their own transient copies (socket/record buffers) that we cannot wipe.
MHD_Result queue(MHD_Connection* connection, HttpResponse&& r, bool head) {
  if (r.status < 100 || r.status > 599) {
    log_error("handler returned invalid HTTP status " + std::to_string(r.status) + "; sending 500");
    r = json_error(500, "internal error");
  }
  const bool had_body = !r.body.empty();
  const bool no_body_allowed = head || r.status < 200 || r.status == 204 || r.status == 304;
  if (no_body_allowed) r.body = crypto::SecretBytes();  // wipes

  MHD_Response* resp = nullptr;
  if (r.body.empty()) {
    resp = MHD_create_response_from_buffer(0, const_cast<char*>(""), MHD_RESPMEM_PERSISTENT);
  } else {
    auto* owned = new crypto::SecretBytes(std::move(r.body));
    resp = MHD_create_response_from_buffer_with_free_callback_cls(
        owned->size(), owned->data(crypto::reveal()), &free_secret_body, owned);
    if (resp == nullptr) delete owned;
  }
  if (resp == nullptr) return MHD_NO;

  static constexpr std::pair<const char*, const char*> kSecurityHeaders[] = {
      {"Cache-Control", "no-store"},
      {"X-Content-Type-Options", "nosniff"},
      {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
      {"Strict-Transport-Security", "max-age=31536000; includeSubDomains"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
  };
  bool ok = true;
  for (const auto& [name, value] : kSecurityHeaders) {
    ok = ok && MHD_add_response_header(resp, name, value) == MHD_YES;
  }
  if (had_body && r.status != 204 && r.status != 304 && r.content_type != nullptr && *r.content_type != '\0' &&
      valid_header("Content-Type", r.content_type)) {
    ok = ok && MHD_add_response_header(resp, "Content-Type", r.content_type) == MHD_YES;
  }
  for (const auto& [name, value] : r.headers) {
    if (is_reserved_header(lower(name))) continue;
    if (!valid_header(name, value) ||
        MHD_add_response_header(resp, name.c_str(), value.c_str()) != MHD_YES) {
      log_warning("dropped invalid response header '" + lower(name) + "'");
    }
  }
  if (!ok) {
    MHD_destroy_response(resp);
    return MHD_NO;  // no response without its security headers
  }
  const MHD_Result result = MHD_queue_response(connection, static_cast<unsigned>(r.status), resp);
  MHD_destroy_response(resp);  // MHD holds its own reference until sent
  return result;
}

std::string format_address(const sockaddr* sa, std::uint16_t& port) {
  char text[INET6_ADDRSTRLEN] = {};
  port = 0;
  if (sa == nullptr) return {};
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    port = ntohs(in6->sin6_port);
  }
  return text;
}

struct ValueSink {
  std::vector<std::pair<std::string, std::string>>* query = nullptr;  // one of these two is set
  decltype(HttpRequest::headers)* headers = nullptr;
  std::size_t bytes = 0;
  bool has_nul = false;
};

MHD_Result collect_value(void* cls, MHD_ValueKind, const char* key, std::size_t key_size,
                         const char* value, std::size_t value_size) {
  auto* sink = static_cast<ValueSink*>(cls);
  const std::string_view k(key != nullptr ? key : "", key != nullptr ? key_size : 0);
  const std::string_view v(value != nullptr ? value : "", value != nullptr ? value_size : 0);
  sink->bytes += k.size() + v.size() + 4;  // "name: value\r\n"
  if (k.find('\0') != std::string_view::npos || v.find('\0') != std::string_view::npos) sink->has_nul = true;
  if (sink->headers != nullptr) {
    sink->headers->emplace_back(lower(k), crypto::SecretString(v.begin(), v.end()));
  } else {
    sink->query->emplace_back(std::string(k), std::string(v));
  }
  return MHD_YES;
}

}  // namespace

struct HttpServer::Impl {
  HttpServerConfig config;
  RequestHandler handler;
  MHD_Daemon* daemon = nullptr;
  std::uint16_t port = 0;
  std::mutex stop_mutex;
  crypto::SecretBytes ca_pem;
  crypto::SecretBytes cert_pem;
  crypto::SecretBytes ticket_key;  // GnuTLS session-ticket master key; empty = no resumption
  mutable std::mutex trust_mutex;
  std::shared_ptr<TrustStore> trust;
  std::mutex startup_log_mutex;
  bool starting = true;
  std::string startup_log;  // MHD's messages during start, for the error message

  std::shared_ptr<TrustStore> current_trust() const {
    std::lock_guard<std::mutex> lock(trust_mutex);
    return trust;
  }

  // The request-time check: independent of whether the handshake callback ran.
  Status check_client(MHD_Connection* connection, ConnState*& out) {
    const MHD_ConnectionInfo* ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    auto* cs = ci != nullptr ? static_cast<ConnState*>(ci->socket_context) : nullptr;
    const MHD_ConnectionInfo* si = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    auto session = si != nullptr ? static_cast<gnutls_session_t>(si->tls_session) : nullptr;
    if (cs == nullptr || session == nullptr) {
      return Error(Code::permission_denied, "no TLS session state for the connection");
    }
    const std::shared_ptr<TrustStore> t = current_trust();
    if (!cs->verified || cs->verified_generation != t->generation) {
      cs->verified = false;
      COFFER_ASSIGN_OR_RETURN(cs->peer, tls::verify_peer(session, *t, cs->not_before, cs->not_after));
      cs->verified = true;
      cs->verified_generation = t->generation;
    }
    // Re-checked on every request: a keep-alive connection may outlive the certificate.
    const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
    if (now < cs->not_before || now > cs->not_after) {
      cs->verified = false;
      return Error(Code::permission_denied, "client certificate outside its validity period");
    }
    out = cs;
    return Status::Ok();
  }

  MHD_Result on_request(MHD_Connection* connection, const char* url, const char* method,
                        const char* upload_data, std::size_t* upload_data_size, void** req_cls);
};

namespace {

void mhd_log(void* cls, const char* fmt, va_list ap) {
  auto* impl = static_cast<HttpServer::Impl*>(cls);
  const auto format = [&] {
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    std::string msg(buf);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
    return msg;
  };
  {
    std::lock_guard<std::mutex> lock(impl->startup_log_mutex);
    if (impl->starting) {
      impl->startup_log += (impl->startup_log.empty() ? "" : "; ") + format();
      return;
    }
  }
  if (!log_enabled(LogLevel::debug)) return;  // not formatted only to be dropped
  const std::string msg = format();
  // MHD messages may name the request path, never headers or bodies. Handshake failures from
  // scanners are routine, so keep them at debug.
  log_debug("libmicrohttpd: " + msg);
}

// GnuTLS verify function installed per session: runs during the handshake once the client's
// Certificate (and, in TLS 1.3, CertificateVerify) arrived. Non-zero aborts the handshake with
// an alert. MHD sets the session pointer to its MHD_Connection (daemon.c,
// new_connection_prepare_); NOTIFY_STARTED checked that before installing this function.
int verify_at_handshake(gnutls_session_t session) {
  try {
    auto* connection = static_cast<MHD_Connection*>(gnutls_session_get_ptr(session));
    const MHD_ConnectionInfo* ci =
        connection != nullptr ? MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT)
                              : nullptr;
    auto* cs = ci != nullptr ? static_cast<ConnState*>(ci->socket_context) : nullptr;
    if (cs == nullptr) return GNUTLS_E_CERTIFICATE_ERROR;
    cs->verified = false;
    const std::shared_ptr<TrustStore> trust = cs->impl->current_trust();
    auto peer = tls::verify_peer(session, *trust, cs->not_before, cs->not_after);
    if (!peer.ok()) {
      log_warning("TLS client " + cs->remote_address + ":" + std::to_string(cs->remote_port) +
                  " refused at handshake: " + peer.status().message());
      return GNUTLS_E_CERTIFICATE_ERROR;
    }
    cs->peer = std::move(peer).value();
    // The first request on this connection need not verify the same chain against the same
    // trust store again (two signature checks per new connection saved); check_client re-verifies
    // when the trust store changes (SIGHUP, new CRL), and this function runs again on any new
    // handshake of the session.
    cs->verified = true;
    cs->verified_generation = trust->generation;
    return 0;
  } catch (...) {
    return GNUTLS_E_CERTIFICATE_ERROR;
  }
}

void on_connection(void* cls, MHD_Connection* connection, void** socket_context,
                   MHD_ConnectionNotificationCode code) {
  auto* impl = static_cast<HttpServer::Impl*>(cls);
  if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    delete static_cast<ConnState*>(*socket_context);
    *socket_context = nullptr;
    return;
  }
  if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
  auto* cs = new (std::nothrow) ConnState();
  if (cs == nullptr) return;  // no state: the request-time check refuses every request
  cs->impl = impl;
  const MHD_ConnectionInfo* ai = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  try {
    cs->remote_address = format_address(ai != nullptr ? ai->client_addr : nullptr, cs->remote_port);
  } catch (...) {
  }
  *socket_context = cs;
  if (impl->config.test_only_skip_handshake_verification) return;
  const MHD_ConnectionInfo* si = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  auto session = si != nullptr ? static_cast<gnutls_session_t>(si->tls_session) : nullptr;
  if (session == nullptr) {
    log_error("no GnuTLS session at connection start; requests on it will be refused");
    return;
  }
  gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
  if (!impl->ticket_key.empty()) {
    // Resumption skips the Certificate message and so verify_at_handshake: cs->verified stays
    // false and check_client verifies the resumed session's certificate before any request.
    const gnutls_datum_t key{impl->ticket_key.data(crypto::reveal()),
                             static_cast<unsigned>(impl->ticket_key.size())};
    if (gnutls_session_ticket_enable_server(session, &key) == 0) {
      gnutls_db_set_cache_expiration(session, static_cast<int>(impl->config.tls_ticket_lifetime_seconds));
    }
  }
  if (gnutls_session_get_ptr(session) == connection) {
    gnutls_session_set_verify_function(session, &verify_at_handshake);
  } else {
    // MHD changed how it uses the session pointer: fall back to GnuTLS's built-in verification
    // against MHD's trust (no CRL at the handshake; the request-time check still applies it).
    static std::once_flag warned;
    std::call_once(warned, [] {
      log_warning("libmicrohttpd no longer sets the TLS session pointer; CRL checked per request only");
    });
    gnutls_session_set_verify_cert(session, nullptr, 0);
  }
}

void* on_uri(void* cls, const char* uri, MHD_Connection*) {
  (void)cls;
  auto* rs = new (std::nothrow) RequestState();
  if (rs != nullptr && uri != nullptr) {
    try {
      rs->raw_uri = std::string(uri);
    } catch (...) {
    }
  }
  return rs;
}

void on_completed(void*, MHD_Connection*, void** req_cls, MHD_RequestTerminationCode) {
  delete static_cast<RequestState*>(*req_cls);
  *req_cls = nullptr;
}

MHD_Result on_access(void* cls, MHD_Connection* connection, const char* url, const char* method,
                     const char* /*version*/, const char* upload_data, std::size_t* upload_data_size,
                     void** req_cls) {
  try {
    return static_cast<HttpServer::Impl*>(cls)->on_request(connection, url, method, upload_data,
                                                           upload_data_size, req_cls);
  } catch (...) {
    log_error("request processing threw; connection closed");
    return MHD_NO;  // never let an exception unwind through libmicrohttpd's C frames
  }
}

}  // namespace

MHD_Result HttpServer::Impl::on_request(MHD_Connection* connection, const char* url,
                                        const char* method, const char* upload_data,
                                        std::size_t* upload_data_size, void** req_cls) {
  auto* rs = static_cast<RequestState*>(*req_cls);
  if (rs == nullptr) {  // the URI log callback did not run (or failed): raw target unknown
    rs = new RequestState();
    *req_cls = rs;
  }
  HttpRequest& req = rs->request;
  const bool head = method != nullptr && std::strcmp(method, "HEAD") == 0;

  if (!rs->started) {
    rs->started = true;
    ConnState* cs = nullptr;
    const Status st = check_client(connection, cs);
    if (!st.ok()) {
      const MHD_ConnectionInfo* ai = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
      std::uint16_t p = 0;
      const std::string addr = format_address(ai != nullptr ? ai->client_addr : nullptr, p);
      log_warning("TLS client " + addr + ":" + std::to_string(p) + " refused at request: " + st.message());
      return MHD_NO;  // close without an HTTP response
    }
    req.method = method != nullptr ? method : "";
    req.path = url != nullptr ? url : "";
    if (rs->raw_uri) req.raw_path.assign(*rs->raw_uri, 0, rs->raw_uri->find('?'));
    req.remote_address = cs->remote_address;
    req.remote_port = cs->remote_port;
    req.peer = cs->peer;

    ValueSink headers;
    headers.headers = &req.headers;
    // Room for a usual request's headers at once: growing a vector with the wiping allocator
    // copies and wipes every header it holds so far.
    req.headers.reserve(8);
    MHD_get_connection_values_n(connection, MHD_HEADER_KIND, &collect_value, &headers);
    ValueSink query;
    query.query = &req.query;
    MHD_get_connection_values_n(connection, MHD_GET_ARGUMENT_KIND, &collect_value, &query);

    if (headers.bytes > config.max_header_bytes) {
      return queue(connection, json_error(431, "request headers too large"), head);
    }
    if (auto err = check_path(req.path, rs->raw_uri, config.max_path_bytes)) {
      return queue(connection, json_error(err->status, err->message), head);
    }
    if (query.has_nul) return queue(connection, json_error(400, "request query contains a NUL byte"), head);
    if (const crypto::SecretString* cl = req.header("content-length")) {
      // MHD already refused a malformed Content-Length; this only compares the number.
      std::uint64_t declared = 0;
      const auto [end, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), declared);
      const bool over = ec == std::errc::result_out_of_range;
      if (over || (ec == std::errc() && declared > config.max_request_bytes)) {
        // Queued before the body is read: MHD then stops reading and closes after the reply.
        return queue(connection, json_error(413, "request body too large"), head);
      }
      // Reserve what is announced, but not more than 64 KiB on a client's word alone: a
      // thousand idle connections each claiming 1 MiB must not pin a gigabyte.
      if (ec == std::errc()) req.body.reserve(std::min<std::size_t>(declared, 64 * 1024));
    }
    return MHD_YES;  // MHD sends 100-continue if asked and delivers the body next
  }

  if (*upload_data_size != 0) {
    const std::size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (rs->too_large) {
      rs->discarded += n;  // counts the whole body so far, which is above the limit
      // Bounded discard: past twice the limit, drop the connection without an answer.
      return rs->discarded - config.max_request_bytes > config.max_request_bytes ? MHD_NO : MHD_YES;
    }
    if (n > config.max_request_bytes - req.body.size()) {
      rs->too_large = true;
      rs->discarded = req.body.size() + n;
      req.body = crypto::SecretBytes();  // wipe what we had
      return MHD_YES;
    }
    req.body.append(crypto::ByteView(reinterpret_cast<const std::uint8_t*>(upload_data), n));
    return MHD_YES;
  }

  // The whole request is in.
  if (rs->too_large) return queue(connection, json_error(413, "request body too large"), head);
  HttpResponse resp;
  try {
    resp = handler(req);
  } catch (...) {
    log_error("request handler threw; answering 500");
    resp = json_error(500, "internal error");
  }
  req.body = crypto::SecretBytes();  // the request body is no longer needed: wipe it now
  return queue(connection, std::move(resp), head);
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { stop(); }

std::uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mutex);
  if (impl_->daemon != nullptr) {
    MHD_stop_daemon(impl_->daemon);  // joins the pool threads; running handlers finish first
    impl_->daemon = nullptr;
  }
}

Status HttpServer::reload_crl() {
  std::uint64_t next = 0;
  {
    std::lock_guard<std::mutex> lock(impl_->trust_mutex);
    next = impl_->trust->generation + 1;
  }
  COFFER_ASSIGN_OR_RETURN(std::shared_ptr<TrustStore> fresh,
                          tls::load_trust(impl_->ca_pem, impl_->config.client_ca_file, impl_->config.crl_file, next));
  std::lock_guard<std::mutex> lock(impl_->trust_mutex);
  impl_->trust = std::move(fresh);
  return Status::Ok();
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpServerConfig& config,
                                                      RequestHandler handler) {
  if (!handler) return Error(Code::invalid_argument, "http server: no request handler");
  if (config.cert_file.empty() || config.key_file.empty() || config.client_ca_file.empty()) {
    return Error(Code::invalid_argument,
                 "http server: cert_file, key_file and client_ca_file are all required (mTLS is mandatory)");
  }
  if (config.connection_timeout_seconds == 0) {
    return Error(Code::invalid_argument, "http server: connection_timeout_seconds must be > 0");
  }
  if (config.max_connections == 0 || config.max_request_bytes == 0 || config.max_path_bytes == 0 ||
      config.max_header_bytes < 1024 || config.max_header_bytes > (64u << 20)) {
    return Error(Code::invalid_argument,
                 "http server: max_connections, max_request_bytes and max_path_bytes must be > 0, "
                 "max_header_bytes between 1 KiB and 64 MiB");
  }

  sockaddr_storage addr{};
  bool ipv6 = false;
  {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    if (inet_pton(AF_INET, config.address.c_str(), &in->sin_addr) == 1) {
      in->sin_family = AF_INET;
      in->sin_port = htons(config.port);
    } else if (inet_pton(AF_INET6, config.address.c_str(), &in6->sin6_addr) == 1) {
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(config.port);
      ipv6 = true;
    } else {
      return Error(Code::invalid_argument,
                   "http server: address '" + config.address + "' is not an IPv4 or IPv6 literal");
    }
  }

  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->handler = std::move(handler);
  COFFER_ASSIGN_OR_RETURN(impl->cert_pem, tls::read_pem(config.cert_file, "server certificate"));
  COFFER_ASSIGN_OR_RETURN(impl->ca_pem, tls::read_pem(config.client_ca_file, "client CA"));
  COFFER_ASSIGN_OR_RETURN(impl->trust, tls::load_trust(impl->ca_pem, config.client_ca_file, config.crl_file, 1));
  if (config.tls_ticket_lifetime_seconds > 0) {
    gnutls_datum_t key{};
    if (const int rc = gnutls_session_ticket_key_generate(&key); rc < 0) {
      return Error(Code::internal, std::string("http server: cannot generate a TLS ticket key: ") +
                                       gnutls_strerror(rc));
    }
    impl->ticket_key = crypto::SecretBytes(key.size);
    std::memcpy(impl->ticket_key.data(crypto::reveal()), key.data, key.size);
    gnutls_memset(key.data, 0, key.size);
    gnutls_free(key.data);
  }
  // The key copy we control lives only until MHD has loaded it into its GnuTLS credentials
  // (MHD_init_daemon_certificate reads it once at start); SecretBytes wipes it at scope exit.
  COFFER_ASSIGN_OR_RETURN(crypto::SecretBytes key_pem, tls::read_pem(config.key_file, "server key"));
  COFFER_RETURN_IF_ERROR(tls::check_server_settings(impl->cert_pem, key_pem, config.cert_file,
                                                    config.key_file, config.tls_priorities));

  unsigned threads = config.threads != 0 ? config.threads : std::thread::hardware_concurrency();
  if (threads == 0) threads = 1;
  // The per-connection pool holds the request line, the headers and the read/write buffers; MHD
  // answers 431 by itself (HTML) when it overflows, so leave room above max_header_bytes for our
  // own JSON 431 to be the one clients normally see.
  // At most 32 KiB MHD takes the pool from malloc; above it, mmap and munmap per connection
  // (a TLB shootdown on every core at each close).
  // With the default limits (16 KiB + 1 KiB) 15 KiB is left for the buffers.
  const std::size_t pool_bytes =
      std::max<std::size_t>(32 * 1024, config.max_header_bytes + config.max_path_bytes + 8192);

  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TLS | MHD_USE_ERROR_LOG;
  if (ipv6) flags |= MHD_USE_IPv6;
  Impl* raw = impl.get();
  impl->daemon = MHD_start_daemon(
      flags, config.port, nullptr, nullptr, &on_access, raw,
      MHD_OPTION_EXTERNAL_LOGGER, &mhd_log, raw,
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<const sockaddr*>(&addr),
      MHD_OPTION_HTTPS_MEM_CERT, reinterpret_cast<const char*>(impl->cert_pem.data(crypto::reveal())),
      MHD_OPTION_HTTPS_MEM_KEY, reinterpret_cast<const char*>(key_pem.data(crypto::reveal())),
      MHD_OPTION_HTTPS_MEM_TRUST, reinterpret_cast<const char*>(impl->ca_pem.data(crypto::reveal())),
      MHD_OPTION_HTTPS_PRIORITIES, config.tls_priorities.c_str(),
      MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_CONNECTION_LIMIT, config.max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, config.connection_timeout_seconds,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool_bytes,
      MHD_OPTION_STRICT_FOR_CLIENT, 1,
      MHD_OPTION_NOTIFY_CONNECTION, &on_connection, raw,
      MHD_OPTION_URI_LOG_CALLBACK, &on_uri, raw,
      MHD_OPTION_NOTIFY_COMPLETED, &on_completed, raw,
      MHD_OPTION_END);
  {
    std::lock_guard<std::mutex> lock(impl->startup_log_mutex);
    impl->starting = false;
  }
  if (impl->daemon == nullptr) {
    return Error(Code::unavailable,
                 "http server: cannot start on " + config.address + ":" + std::to_string(config.port) +
                     (impl->startup_log.empty() ? std::string() : ": " + impl->startup_log));
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(impl->daemon, MHD_DAEMON_INFO_BIND_PORT);
  impl->port = info != nullptr ? info->port : config.port;
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

}  // namespace coffer::api
