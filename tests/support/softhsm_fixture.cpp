// SoftHsmFixture: one private SoftHSMv2 token store per test (p11-kit's own test-softhsm2.sh
// does the same), plus run_program, a shell-free way to start the SoftHSM and OpenSC tools.
#include "tests/support/softhsm_fixture.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace coffer::testing {
namespace {

constexpr char kDefaultModule[] = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so";
constexpr char kModuleRegistration[] = "/usr/share/p11-kit/modules/softhsm2.module";

// Closes both ends of a pipe that are still open.
struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
};

}  // namespace

Result<std::string> run_program(const std::vector<std::string>& argv) {
  if (argv.empty()) return Error(Code::invalid_argument, "run_program: empty argv");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  Pipe out;
  if (::pipe2(out.fd, O_CLOEXEC) != 0) {
    return Error(Code::internal, std::string("pipe2: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears O_CLOEXEC on the duplicate, so the child keeps only these two.
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return Error(Code::internal, "cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  ::close(out.fd[1]);
  out.fd[1] = -1;

  std::string output;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(out.fd[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf, static_cast<std::size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Error(Code::internal, std::string("waitpid: ") + std::strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Error(Code::internal, argv[0] + " failed (status " + std::to_string(status) +
                                     "): " + output);
  }
  return output;
}

std::string SoftHsmFixture::module_path() {
  std::ifstream in(kModuleRegistration);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("module:", 0) != 0) continue;
    std::string path = line.substr(7);
    path.erase(0, path.find_first_not_of(" \t"));
    path.erase(path.find_last_not_of(" \t\r") + 1);
    if (!path.empty() && path.front() == '/') return path;
  }
  return kDefaultModule;
}

Result<std::unique_ptr<SoftHsmFixture>> SoftHsmFixture::create(const std::string& label) {
  std::unique_ptr<SoftHsmFixture> f(new SoftHsmFixture());
  f->label_ = label;

  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                      "/coffer-softhsm-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    return Error(Code::internal, "mkdtemp " + templ + ": " + std::strerror(errno));
  }
  f->dir_ = templ;
  std::error_code ec;
  std::filesystem::create_directory(f->dir_ + "/tokens", ec);
  if (ec) return Error(Code::internal, "mkdir tokens: " + ec.message());

  const std::string conf = f->dir_ + "/softhsm2.conf";
  {
    std::ofstream out(conf);
    out << "directories.tokendir = " << f->dir_ << "/tokens\n"
        << "objectstore.backend = file\n"
        << "log.level = ERROR\n";
    if (!out) return Error(Code::internal, "cannot write " + conf);
  }
  if (const char* prev = std::getenv("SOFTHSM2_CONF"); prev != nullptr) {
    f->had_previous_conf_ = true;
    f->previous_conf_ = prev;
  }
  if (::setenv("SOFTHSM2_CONF", conf.c_str(), 1) != 0) {
    return Error(Code::internal, std::string("setenv SOFTHSM2_CONF: ") + std::strerror(errno));
  }
  COFFER_RETURN_IF_ERROR(f->init_token(label));
  return f;
}

Status SoftHsmFixture::init_token(const std::string& label) {
  auto out = run_program({"softhsm2-util", "--init-token", "--free", "--label", label,
                          "--so-pin", so_pin_, "--pin", pin_});
  return out.ok() ? Status::Ok() : out.status();
}

Status SoftHsmFixture::delete_secret_key(const std::string& key_label,
                                         const std::string& token_label) {
  auto out = run_program({"pkcs11-tool", "--module", module_path(), "--token-label",
                          token_label.empty() ? label_ : token_label, "--login", "--pin", pin_,
                          "--delete-object", "--type", "secrkey", "--label", key_label});
  return out.ok() ? Status::Ok() : out.status();
}

SoftHsmFixture::~SoftHsmFixture() {
  if (had_previous_conf_) {
    ::setenv("SOFTHSM2_CONF", previous_conf_.c_str(), 1);
  } else {
    ::unsetenv("SOFTHSM2_CONF");
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

}  // namespace coffer::testing
