// bare_mhd: the second reference server of the benchmark (issue 7). A libmicrohttpd TLS server
// that does nothing but answer every request with one fixed JSON body, configured the way
// cofferd's api/http_server.cpp configures MHD (thread pool + epoll, the same GnuTLS priority
// string, client certificate required at the handshake and checked again per request), so the
// gap between it and cofferd is coffer's own work per request.
//
//   bare_mhd --port P --cert server.crt --key server.key --ca ca.crt --body body.json
//            [--threads N (default: cores)]
//
// Prints "bare_mhd: listening on 127.0.0.1:P" when ready; stops on SIGTERM/SIGINT.
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

namespace {

const char kPriorities[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE";

struct Server {
  std::string body;
  MHD_Response* ok = nullptr;
  MHD_Response* forbidden = nullptr;
};

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

// Per connection: whether the request-time check already passed (cofferd caches it the same way,
// so the chain is verified once per connection, not once per request).
struct ConnState {
  bool verified = false;
};

// Require the client certificate at the handshake, as cofferd does (MHD only *requests* one).
void on_connection(void*, MHD_Connection* connection, void** socket_context,
                   MHD_ConnectionNotificationCode code) {
  if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    delete static_cast<ConnState*>(*socket_context);
    *socket_context = nullptr;
    return;
  }
  if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
  *socket_context = new ConnState();
  const MHD_ConnectionInfo* si = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (si == nullptr || si->tls_session == nullptr) return;
  gnutls_certificate_server_set_request(static_cast<gnutls_session_t>(si->tls_session), GNUTLS_CERT_REQUIRE);
}

MHD_Result on_access(void* cls, MHD_Connection* connection, const char*, const char*, const char*,
                     const char*, size_t* upload_data_size, void** req_cls) {
  auto* server = static_cast<Server*>(cls);
  if (*req_cls == nullptr) {  // first call: headers only
    *req_cls = server;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {  // consume any body
    *upload_data_size = 0;
    return MHD_YES;
  }
  // The request-time certificate check cofferd also does (the verdict is in the status bits),
  // once per connection.
  const MHD_ConnectionInfo* ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  auto* cs = ci != nullptr ? static_cast<ConnState*>(ci->socket_context) : nullptr;
  if (cs == nullptr) return MHD_queue_response(connection, MHD_HTTP_FORBIDDEN, server->forbidden);
  if (!cs->verified) {
    const MHD_ConnectionInfo* si = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    unsigned status = 1;
    if (si == nullptr || si->tls_session == nullptr ||
        gnutls_certificate_verify_peers2(static_cast<gnutls_session_t>(si->tls_session), &status) != 0 ||
        status != 0) {
      return MHD_queue_response(connection, MHD_HTTP_FORBIDDEN, server->forbidden);
    }
    cs->verified = true;
  }
  return MHD_queue_response(connection, MHD_HTTP_OK, server->ok);
}

void usage() {
  std::cerr << "usage: bare_mhd --port P --cert server.crt --key server.key --ca ca.crt "
               "--body body.json [--threads N]\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string cert_file, key_file, ca_file, body_file;
  unsigned port = 0;
  unsigned threads = std::thread::hardware_concurrency();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      usage();
      return 2;
    }
    std::string v = argv[++i];
    if (a == "--port") port = static_cast<unsigned>(std::strtoul(v.c_str(), nullptr, 10));
    else if (a == "--cert") cert_file = v;
    else if (a == "--key") key_file = v;
    else if (a == "--ca") ca_file = v;
    else if (a == "--body") body_file = v;
    else if (a == "--threads") threads = static_cast<unsigned>(std::strtoul(v.c_str(), nullptr, 10));
    else {
      usage();
      return 2;
    }
  }
  if (threads == 0) threads = 1;
  Server server;
  std::string cert, key, ca;
  if (port == 0 || port > 65535 || !read_file(cert_file, cert) || !read_file(key_file, key) ||
      !read_file(ca_file, ca) || !read_file(body_file, server.body)) {
    usage();
    return 2;
  }
  server.ok = MHD_create_response_from_buffer(server.body.size(), server.body.data(), MHD_RESPMEM_PERSISTENT);
  static const char kDenied[] = "{\"errors\":[\"permission denied\"]}";
  server.forbidden = MHD_create_response_from_buffer(sizeof(kDenied) - 1, const_cast<char*>(kDenied),
                                                     MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(server.ok, "Content-Type", "application/json");
  MHD_add_response_header(server.forbidden, "Content-Type", "application/json");

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  // Block the stop signals before MHD starts its threads so only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  MHD_Daemon* daemon = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TLS | MHD_USE_ERROR_LOG,
      static_cast<std::uint16_t>(port), nullptr, nullptr, &on_access, &server,
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<const sockaddr*>(&addr),
      MHD_OPTION_HTTPS_MEM_CERT, cert.c_str(),
      MHD_OPTION_HTTPS_MEM_KEY, key.c_str(),
      MHD_OPTION_HTTPS_MEM_TRUST, ca.c_str(),
      MHD_OPTION_HTTPS_PRIORITIES, kPriorities,
      MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_CONNECTION_LIMIT, 1024u,
      MHD_OPTION_CONNECTION_TIMEOUT, 30u,
      MHD_OPTION_NOTIFY_CONNECTION, &on_connection, nullptr,
      MHD_OPTION_END);
  if (daemon == nullptr) {
    std::cerr << "bare_mhd: cannot start on 127.0.0.1:" << port << "\n";
    return 1;
  }
  std::cout << "bare_mhd: listening on 127.0.0.1:" << port << " with " << threads << " threads"
            << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  MHD_stop_daemon(daemon);
  MHD_destroy_response(server.ok);
  MHD_destroy_response(server.forbidden);
  return 0;
}
