// coffer_load: the HTTP/1.1 load client of the benchmark (issue 7). OpenSSL with a client
// certificate; N connections spread over M threads, each thread drives its connections with
// non-blocking sockets and epoll; fixed duration; latency histogram (p50/p99/p999); every
// unexpected status, reset or timeout is counted as an error.
//
//   coffer_load --port P --ca ca.crt --cert c.crt --key c.key --scenario S
//               [--connections 64] [--threads 2] [--duration 10] [--token T]
//               [--path /v1/secret/bench/app] [--role web] [--label text] [--count N]
//
// Scenarios:
//   read   GET --path with X-Vault-Token over keep-alive connections (expects 200)
//   fresh  one GET per new TCP + mTLS connection, no session resumption ("Connection: close")
//   resume as fresh, but each connection slot offers the TLS session (ticket) its previous
//          connection got: a unit reconnecting within the ticket lifetime; `resumed=` counts the
//          handshakes the server resumed
//   login  POST /v1/auth/cert/login {"name": role}, then GET --path with the new token, on a
//          keep-alive connection; one operation = both requests (expects 200, 200)
//   write  PUT /v1/secret/bench/w/<conn>-<n % 256> with a ~100 byte JSON body (expects 204)
//   mixed  95% read, 5% write
//   fill   PUT --count distinct secrets (secret/fill/<n/1000>/<n>, ~100 bytes each) once each,
//          then stop (--duration is the upper bound); for bench/rss.sh
//
// Output: a human summary, then one machine line starting with "RESULT " (key=value pairs)
// that bench/run.sh parses.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

enum class Scenario { read, fresh, resume, login, write, mixed, fill };

struct Options {
  std::string host = "127.0.0.1";
  unsigned port = 0;
  std::string ca, cert, key, token, label;
  std::string path = "/v1/secret/bench/app";
  std::string role = "web";
  Scenario scenario = Scenario::read;
  std::string scenario_name = "read";
  unsigned connections = 64;
  unsigned threads = 2;
  double duration = 10.0;
  std::uint64_t count = 100000;  // fill: how many secrets
};

// fill: the next secret number to write, shared by every connection of every thread.
std::atomic<std::uint64_t> g_fill_next{0};

// Log-linear latency histogram in microseconds: 32 sub-buckets per power of two (about 3%
// resolution), up to 2^31 us. Per thread, merged at the end.
class Histogram {
 public:
  static constexpr unsigned kSub = 32;
  static constexpr unsigned kExp = 32;
  void add(std::uint64_t us) {
    ++counts_[index(us)];
    ++total_;
  }
  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
  }
  std::uint64_t total() const { return total_; }
  // The upper bound of the bucket holding quantile q.
  double quantile(double q) const {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_));
    if (rank >= total_) rank = total_ - 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen > rank) return upper(i);
    }
    return upper(counts_.size() - 1);
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < kSub) return static_cast<std::size_t>(v);
    unsigned e = 63u - static_cast<unsigned>(__builtin_clzll(v));  // v in [2^e, 2^(e+1))
    if (e >= kExp) return kSub * kExp - 1;
    std::uint64_t sub = (v >> (e - 5)) & (kSub - 1);  // 5 = log2(kSub)
    return static_cast<std::size_t>((e - 4) * kSub + sub);
  }
  static double upper(std::size_t i) {
    if (i < kSub) return static_cast<double>(i);
    std::size_t e = i / kSub + 4;
    std::size_t sub = i % kSub;
    return static_cast<double>((std::uint64_t{1} << e) + ((sub + 1) << (e - 5)));
  }
  std::array<std::uint64_t, kSub * kExp> counts_{};
  std::uint64_t total_ = 0;
};

struct ThreadStats {
  Histogram hist;
  std::uint64_t ops = 0;        // completed operations (login+read counts as one)
  std::uint64_t requests = 0;   // HTTP requests answered as expected
  std::uint64_t errors = 0;
  std::uint64_t connects = 0;   // completed TLS handshakes
  std::uint64_t resumed = 0;    // of which the server resumed a session (resume scenario)
};

enum class State { connecting, handshaking, sending, receiving };

struct Conn {
  int fd = -1;
  SSL* ssl = nullptr;
  State state = State::connecting;
  unsigned id = 0;
  std::uint64_t seq = 0;
  std::string out;        // request being sent
  std::size_t out_off = 0;
  std::string in;         // response bytes so far
  int expect = 200;
  int step = 0;           // login scenario: 0 = login request, 1 = read with the new token
  bool close_after = false;
  std::string login_token;
  Clock::time_point op_start;
  bool done = false;      // fill: nothing left to write
  SSL_SESSION* session = nullptr;  // resume: the last connection's session, offered by the next
};

const char* kWriteBody =
    "{\"username\":\"svc-bench\",\"password\":\"c0ffee-0123456789abcdef0123456789abcdef\","
    "\"note\":\"benchmark write\"}";

class Worker {
 public:
  Worker(const Options& o, SSL_CTX* ctx, unsigned first_id, unsigned count, ThreadStats& stats,
         Clock::time_point deadline)
      : o_(o), ctx_(ctx), stats_(stats), deadline_(deadline), rng_(first_id * 7919u + 1u) {
    for (unsigned i = 0; i < count; ++i) {
      conns_.push_back(std::make_unique<Conn>());
      conns_.back()->id = first_id + i;
    }
  }
  ~Worker() {
    for (auto& c : conns_) {
      teardown(*c);
      if (c->session != nullptr) SSL_SESSION_free(c->session);
    }
    if (ep_ >= 0) close(ep_);
  }

  void run() {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
      ++stats_.errors;
      return;
    }
    for (auto& c : conns_) start_connect(*c);
    std::vector<epoll_event> events(conns_.size() + 1);
    while (Clock::now() < deadline_ && !all_done()) {
      int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 50);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < n; ++i) {
        auto* c = static_cast<Conn*>(events[static_cast<std::size_t>(i)].data.ptr);
        drive(*c);
      }
      // Connections that failed to (re)connect are retried here, bounded by the deadline.
      for (auto& c : conns_)
        if (c->fd < 0 && !c->done && Clock::now() < deadline_) start_connect(*c);
    }
  }

 private:
  bool all_done() const {
    return std::all_of(conns_.begin(), conns_.end(), [](const auto& c) { return c->done; });
  }

  void teardown(Conn& c) {
    if (c.ssl != nullptr) {
      // A copy: OpenSSL marks a session not resumable when its connection is freed without a
      // close_notify.
      SSL_SESSION* s = o_.scenario == Scenario::resume ? SSL_get0_session(c.ssl) : nullptr;
      if (s != nullptr && SSL_SESSION_is_resumable(s) == 1) {
        if (SSL_SESSION* copy = SSL_SESSION_dup(s)) {
          if (c.session != nullptr) SSL_SESSION_free(c.session);
          c.session = copy;
        }
      }
      SSL_free(c.ssl);
      c.ssl = nullptr;
    }
    if (c.fd >= 0) {
      close(c.fd);  // also removes it from the epoll set
      c.fd = -1;
    }
  }

  void fail(Conn& c) {
    ++stats_.errors;
    ERR_clear_error();
    teardown(c);
  }

  void start_connect(Conn& c) {
    teardown(c);
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      ++stats_.errors;
      return;
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(o_.port));
    inet_pton(AF_INET, o_.host.c_str(), &addr.sin_addr);
    // A fresh-connection operation is timed from the connect (handshake included).
    if (c.step == 0) c.op_start = Clock::now();
    int rc = connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (rc != 0 && errno != EINPROGRESS) {
      fail(c);
      return;
    }
    c.ssl = SSL_new(ctx_);
    SSL_set_fd(c.ssl, c.fd);
    if (c.session != nullptr) SSL_set_session(c.ssl, c.session);
    SSL_set_connect_state(c.ssl);
    c.state = State::handshaking;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.ptr = &c;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
      fail(c);
      return;
    }
    drive(c);
  }

  void build_request(Conn& c) {
    c.out.clear();
    c.out_off = 0;
    c.in.clear();
    c.close_after = false;
    const bool fresh = o_.scenario == Scenario::fresh || o_.scenario == Scenario::resume;
    bool write = o_.scenario == Scenario::write;
    if (o_.scenario == Scenario::mixed) write = (rng_() % 100) < 5;
    if (o_.scenario == Scenario::fill) {
      const std::uint64_t n = g_fill_next.fetch_add(1);
      if (n >= o_.count) {
        c.done = true;
        teardown(c);
        return;
      }
      std::string body = "{\"n\":" + std::to_string(n) + "," + (kWriteBody + 1);
      c.out = "PUT /v1/secret/fill/" + std::to_string(n / 1000) + "/" + std::to_string(n) +
              " HTTP/1.1\r\nHost: " + o_.host + "\r\nX-Vault-Token: " + o_.token +
              "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
              "\r\n\r\n" + body;
      c.expect = 204;
    } else if (o_.scenario == Scenario::login && c.step == 0) {
      std::string body = "{\"name\":\"" + o_.role + "\"}";
      c.out = "POST /v1/auth/cert/login HTTP/1.1\r\nHost: " + o_.host +
              "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
              "\r\n\r\n" + body;
      c.expect = 200;
    } else if (write) {
      std::string body = kWriteBody;
      c.out = "PUT /v1/secret/bench/w/" + std::to_string(c.id) + "-" + std::to_string(c.seq % 256) +
              " HTTP/1.1\r\nHost: " + o_.host + "\r\nX-Vault-Token: " + o_.token +
              "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
              "\r\n\r\n" + body;
      c.expect = 204;
    } else {
      const std::string& token = o_.scenario == Scenario::login ? c.login_token : o_.token;
      c.out = "GET " + o_.path + " HTTP/1.1\r\nHost: " + o_.host + "\r\n";
      if (!token.empty()) c.out += "X-Vault-Token: " + token + "\r\n";
      if (fresh) c.out += "Connection: close\r\n";
      c.out += "\r\n";
      c.expect = 200;
      c.close_after = fresh;
    }
    ++c.seq;
    if (!fresh && c.step == 0) c.op_start = Clock::now();
    c.state = State::sending;
  }

  // Advances one connection as far as it goes without blocking.
  void drive(Conn& c) {
    while (c.fd >= 0 && Clock::now() < deadline_) {
      if (c.state == State::handshaking) {
        int rc = SSL_do_handshake(c.ssl);
        if (rc == 1) {
          ++stats_.connects;
          if (SSL_session_reused(c.ssl) == 1) ++stats_.resumed;
          build_request(c);
          continue;  // (fill: build_request may have closed it; the loop checks c.fd)
        }
        if (!want(c, rc)) fail(c);
        return;
      }
      if (c.state == State::sending) {
        int rc = SSL_write(c.ssl, c.out.data() + c.out_off, static_cast<int>(c.out.size() - c.out_off));
        if (rc > 0) {
          c.out_off += static_cast<std::size_t>(rc);
          if (c.out_off == c.out.size()) c.state = State::receiving;
          continue;
        }
        if (!want(c, rc)) fail(c);
        return;
      }
      if (c.state == State::receiving) {
        char buf[16384];
        int rc = SSL_read(c.ssl, buf, sizeof buf);
        if (rc > 0) {
          c.in.append(buf, static_cast<std::size_t>(rc));
          if (!response_complete(c)) continue;
          if (!finish(c)) return;
          continue;
        }
        if (!want(c, rc)) fail(c);
        return;
      }
      return;
    }
  }

  bool want(Conn& c, int rc) {
    int err = SSL_get_error(c.ssl, rc);
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
  }

  // Whether c.in holds a whole response (headers + Content-Length bytes of body).
  static bool response_complete(const Conn& c) {
    std::size_t end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    return c.in.size() >= end + 4 + content_length(c.in, end);
  }

  static std::size_t content_length(const std::string& in, std::size_t header_end) {
    std::size_t pos = 0;
    while (pos < header_end) {
      std::size_t eol = in.find("\r\n", pos);
      if (eol == std::string::npos || eol > header_end) break;
      if (eol - pos > 15 && strncasecmp(in.c_str() + pos, "content-length:", 15) == 0)
        return static_cast<std::size_t>(std::strtoull(in.c_str() + pos + 15, nullptr, 10));
      pos = eol + 2;
    }
    return 0;
  }

  static int status_of(const std::string& in) {
    if (in.size() < 12 || in.compare(0, 5, "HTTP/") != 0) return 0;
    return std::atoi(in.c_str() + 9);
  }

  static bool server_closes(const std::string& in, std::size_t header_end) {
    std::string head = in.substr(0, header_end);
    for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return head.find("\r\nconnection: close") != std::string::npos;
  }

  // A response is complete: account for it and start the next request (or connection).
  // Returns false when the connection was torn down.
  bool finish(Conn& c) {
    const int status = status_of(c.in);
    const std::size_t header_end = c.in.find("\r\n\r\n");
    if (status != c.expect) {
      if (stats_.errors < 3) {
        std::cerr << "coffer_load: unexpected status " << status << " (wanted " << c.expect
                  << "): " << c.in.substr(0, std::min<std::size_t>(c.in.size(), 300)) << "\n";
      }
      c.step = 0;
      fail(c);
      return false;
    }
    ++stats_.requests;
    if (o_.scenario == Scenario::login && c.step == 0) {
      // Pull auth.client_token out of the login answer and read with it.
      std::size_t k = c.in.find("\"client_token\":\"", header_end);
      if (k == std::string::npos) {
        fail(c);
        return false;
      }
      k += 16;
      c.login_token = c.in.substr(k, c.in.find('"', k) - k);
      c.step = 1;
    } else {
      c.step = 0;
      stats_.hist.add(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - c.op_start).count()));
      ++stats_.ops;
    }
    if (c.close_after || server_closes(c.in, header_end)) {
      start_connect(c);
      return false;  // start_connect drove the new connection already
    }
    build_request(c);
    return c.fd >= 0;
  }

  const Options& o_;
  SSL_CTX* ctx_;
  ThreadStats& stats_;
  Clock::time_point deadline_;
  std::minstd_rand rng_;
  int ep_ = -1;
  std::vector<std::unique_ptr<Conn>> conns_;
};

void usage() {
  std::cerr << "usage: coffer_load --port P --ca ca.crt --cert c.crt --key c.key "
               "--scenario read|fresh|resume|login|write|mixed|fill [--connections N] [--threads M] "
               "[--duration S] [--token T] [--path /v1/...] [--role web] [--label text] [--count N]\n";
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return false;
    std::string v = argv[++i];
    if (a == "--host") o.host = v;
    else if (a == "--port") o.port = static_cast<unsigned>(std::strtoul(v.c_str(), nullptr, 10));
    else if (a == "--ca") o.ca = v;
    else if (a == "--cert") o.cert = v;
    else if (a == "--key") o.key = v;
    else if (a == "--token") o.token = v;
    else if (a == "--path") o.path = v;
    else if (a == "--role") o.role = v;
    else if (a == "--label") o.label = v;
    else if (a == "--connections") o.connections = static_cast<unsigned>(std::strtoul(v.c_str(), nullptr, 10));
    else if (a == "--threads") o.threads = static_cast<unsigned>(std::strtoul(v.c_str(), nullptr, 10));
    else if (a == "--duration") o.duration = std::strtod(v.c_str(), nullptr);
    else if (a == "--count") o.count = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--scenario") {
      o.scenario_name = v;
      if (v == "read") o.scenario = Scenario::read;
      else if (v == "fresh") o.scenario = Scenario::fresh;
      else if (v == "resume") o.scenario = Scenario::resume;
      else if (v == "login") o.scenario = Scenario::login;
      else if (v == "write") o.scenario = Scenario::write;
      else if (v == "mixed") o.scenario = Scenario::mixed;
      else if (v == "fill") o.scenario = Scenario::fill;
      else return false;
    } else {
      return false;
    }
  }
  if (o.label.empty()) o.label = o.scenario_name;
  return o.port > 0 && o.port < 65536 && !o.ca.empty() && !o.cert.empty() && !o.key.empty() &&
         o.connections > 0 && o.threads > 0 && o.duration > 0 && o.duration <= 600;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    usage();
    return 2;
  }
  if (o.threads > o.connections) o.threads = o.connections;

  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr || SSL_CTX_load_verify_locations(ctx, o.ca.c_str(), nullptr) != 1 ||
      SSL_CTX_use_certificate_chain_file(ctx, o.cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, o.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    std::cerr << "coffer_load: cannot load the CA / client certificate / key\n";
    ERR_print_errors_fp(stderr);
    return 1;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Every new connection is a full handshake (units restarting), never a resumption; except in
  // the resume scenario, where each connection slot keeps its own session (no shared cache).
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (o.scenario != Scenario::resume) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);

  const auto start = Clock::now();
  const auto deadline = start + std::chrono::microseconds(static_cast<std::int64_t>(o.duration * 1e6));
  std::vector<ThreadStats> stats(o.threads);
  std::vector<std::thread> threads;
  unsigned next = 0;
  for (unsigned t = 0; t < o.threads; ++t) {
    unsigned count = o.connections / o.threads + (t < o.connections % o.threads ? 1u : 0u);
    threads.emplace_back([&, t, first = next, count] {
      Worker w(o, ctx, first, count, stats[t], deadline);
      w.run();
    });
    next += count;
  }
  for (auto& th : threads) th.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  SSL_CTX_free(ctx);

  ThreadStats all;
  for (const auto& s : stats) {
    all.hist.merge(s.hist);
    all.ops += s.ops;
    all.requests += s.requests;
    all.errors += s.errors;
    all.connects += s.connects;
    all.resumed += s.resumed;
  }
  const double ops_per_s = static_cast<double>(all.ops) / seconds;
  std::printf("%s: %u connections / %u threads, %.1f s: %llu ops (%.0f/s), %llu requests, %llu "
              "handshakes, %llu errors; latency p50 %.0f us, p99 %.0f us, p999 %.0f us\n",
              o.label.c_str(), o.connections, o.threads, seconds,
              static_cast<unsigned long long>(all.ops), ops_per_s,
              static_cast<unsigned long long>(all.requests),
              static_cast<unsigned long long>(all.connects),
              static_cast<unsigned long long>(all.errors), all.hist.quantile(0.50),
              all.hist.quantile(0.99), all.hist.quantile(0.999));
  std::printf("RESULT label=%s scenario=%s connections=%u threads=%u seconds=%.3f ops=%llu "
              "requests=%llu handshakes=%llu errors=%llu ops_per_s=%.1f p50_us=%.0f p99_us=%.0f "
              "p999_us=%.0f resumed=%llu\n",
              o.label.c_str(), o.scenario_name.c_str(), o.connections, o.threads, seconds,
              static_cast<unsigned long long>(all.ops), static_cast<unsigned long long>(all.requests),
              static_cast<unsigned long long>(all.connects),
              static_cast<unsigned long long>(all.errors), ops_per_s, all.hist.quantile(0.50),
              all.hist.quantile(0.99), all.hist.quantile(0.999), static_cast<unsigned long long>(all.resumed));
  return 0;
}
