// SwtpmFixture: one swtpm per test (tpm2-tss's own integration tests do the same). The child
// gets PR_SET_PDEATHSIG, so a test process that dies without destructors takes swtpm with it.
#include "tests/support/swtpm_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/support/softhsm_fixture.h"  // run_program

namespace coffer::testing {
namespace {

// Binds a loopback TCP socket to `port` (0: any); returns the socket, -1 on failure.
int bind_loopback(int port, int* bound) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(s);
    return -1;
  }
  *bound = ntohs(a.sin_port);
  return s;
}

// A port P with P+1 also free (the swtpm TCTI talks to the control channel on P+1): both were
// bound a moment ago, so they are free unless raced.
int free_port_pair() {
  for (int i = 0; i < 50; ++i) {
    int p = 0;
    int q = 0;
    const int a = bind_loopback(0, &p);
    if (a < 0) continue;
    const int b = p < 65535 ? bind_loopback(p + 1, &q) : -1;
    ::close(a);
    if (b >= 0) {
      ::close(b);
      return p;
    }
  }
  return -1;
}

bool accepts(int port) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(s);
  return ok;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int count_lines_starting(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) ++n;
  }
  return n;
}

}  // namespace

Result<std::unique_ptr<SwtpmFixture>> SwtpmFixture::create() {
  ::setenv("TSS2_LOG", "all+none", 1);
  std::unique_ptr<SwtpmFixture> f(new SwtpmFixture());
  char tmpl[] = "/tmp/coffer-swtpm-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    return Error(Code::internal, std::string("mkdtemp: ") + std::strerror(errno));
  }
  f->dir_ = tmpl;
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {  // a raced port makes swtpm exit: try another
    f->port_ = free_port_pair();
    if (f->port_ <= 0) return Error(Code::internal, "no free TCP port for swtpm");
    last = f->start();
    if (last.ok()) return f;
  }
  return last;
}

Status SwtpmFixture::start() {
  const std::string port = std::to_string(port_);
  const std::string log = dir_ + "/swtpm.log";
  std::vector<std::string> argv = {
      "swtpm", "socket", "--tpm2", "--flags", "not-need-init,startup-clear",
      "--server", "type=tcp,bindaddr=127.0.0.1,port=" + port,
      "--ctrl", "type=tcp,bindaddr=127.0.0.1,port=" + std::to_string(port_ + 1),
      "--tpmstate", "dir=" + dir_, "--log", "file=" + log + ",level=1"};
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  // Opened before fork: the child only calls async-signal-safe functions.
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (null_fd < 0 || log_fd < 0) {
    if (null_fd >= 0) ::close(null_fd);
    if (log_fd >= 0) ::close(log_fd);
    return Error(Code::internal, "cannot open /dev/null or " + log + ": " + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    // The simulator dies with the test process, even when that is killed (SIGPIPE, timeout).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execvp("swtpm", args.data());
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(null_fd);
  ::close(log_fd);
  if (pid_ < 0) {
    pid_ = -1;
    return Error(Code::internal, std::string("cannot fork for swtpm: ") + std::strerror(fork_errno));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Error(Code::internal, "swtpm exited at start: " + slurp(log));
    }
    if (accepts(port_)) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill();
  return Error(Code::internal, "swtpm did not accept connections within 10 s: " + slurp(log));
}

void SwtpmFixture::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  (void)::waitpid(pid_, &status, 0);
  pid_ = -1;
}

Status SwtpmFixture::restart() {
  kill();
  return start();
}

SwtpmFixture::~SwtpmFixture() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    bool gone = false;
    for (int i = 0; i < 200 && !gone; ++i) {
      gone = ::waitpid(pid_, &status, WNOHANG) == pid_;
      if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!gone) kill();
    pid_ = -1;
  }
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

std::string SwtpmFixture::tcti() const {
  return "swtpm:host=127.0.0.1,port=" + std::to_string(port_);
}

Status SwtpmFixture::extend_pcr(unsigned pcr) {
  auto r = run_program({"tpm2_pcrextend", "-T", tcti(),
                        std::to_string(pcr) + ":sha256=" + std::string(64, 'a')});
  return r.ok() ? Status::Ok() : r.status();
}

Status SwtpmFixture::reset_pcr(unsigned pcr) {
  auto r = run_program({"tpm2_pcrreset", "-T", tcti(), std::to_string(pcr)});
  return r.ok() ? Status::Ok() : r.status();
}

Result<int> SwtpmFixture::transient_objects() {
  COFFER_ASSIGN_OR_RETURN(auto out, run_program({"tpm2_getcap", "-T", tcti(), "handles-transient"}));
  return count_lines_starting(out, "- 0x80");
}

Result<int> SwtpmFixture::loaded_sessions() {
  COFFER_ASSIGN_OR_RETURN(auto out,
                          run_program({"tpm2_getcap", "-T", tcti(), "handles-loaded-session"}));
  return count_lines_starting(out, "- 0x");
}

}  // namespace coffer::testing
