// Credential files: open without following links, check what was opened (fstat on the open
// descriptor, so nothing can be swapped in between the check and the read), then read it into
// SecretBytes. The checks follow systemd's own reading of credentials (creds-util.c).
#include "keys/credential_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace coffer::keys {
namespace {

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Closes the descriptor on every path out of read_credential_file.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() { if (fd_ >= 0) ::close(fd_); }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status open_error(const std::string& path, int err) {
  const std::string what = "credential file '" + path + "'";
  switch (err) {
    case ENOENT:
      return Error(Code::not_found, what + " does not exist");
    case ELOOP:
      // O_NOFOLLOW reports a symlink in the last component as ELOOP.
      return Error(Code::permission_denied,
                   what + " is a symbolic link; refusing to follow it (point the setting at the "
                          "file itself)");
    case EACCES:
    case EPERM:
      return Error(Code::permission_denied,
                   what + " cannot be opened: " + std::strerror(err) +
                       " (the daemon's user must own it)");
    default:
      return Error(Code::internal, what + " cannot be opened: " + std::strerror(err));
  }
}

}  // namespace

Result<crypto::SecretBytes> read_credential_file(const std::string& path) {
  const std::string what = "credential file '" + path + "'";
  // O_NONBLOCK: opening a FIFO for reading would otherwise block until a writer appears; the
  // S_ISREG check below then refuses it. It has no effect on regular files.
  FdGuard fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) return open_error(path, errno);

  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return Error(Code::internal, what + ": fstat failed: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return Error(Code::invalid_argument, what + " is not a regular file");
  }
  if ((st.st_mode & 0077) != 0) {
    return Error(Code::permission_denied,
                 what + " has mode " + octal_mode(st.st_mode) +
                     ", which lets group or other users access it; run `chmod 600 " + path +
                     "` (systemd's LoadCredential= already provides mode 0400)");
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return Error(Code::permission_denied,
                 what + " is owned by uid " + std::to_string(st.st_uid) +
                     ", not by the daemon's user (uid " + std::to_string(::geteuid()) +
                     ") or root; chown it to the daemon's user");
  }
  if (st.st_nlink != 1) {
    // A second hard link is a second name for the secret that may sit somewhere less protected.
    return Error(Code::permission_denied,
                 what + " has " + std::to_string(st.st_nlink) +
                     " hard links; a credential must have exactly one");
  }
  if (st.st_size <= 0) return Error(Code::invalid_argument, what + " is empty");
  if (static_cast<std::size_t>(st.st_size) > kMaxCredentialSize) {
    return Error(Code::invalid_argument,
                 what + " is " + std::to_string(st.st_size) + " bytes; the limit is " +
                     std::to_string(kMaxCredentialSize));
  }

  // One byte more than the limit: a file that grew after fstat is caught by the size check.
  crypto::SecretBytes buf(kMaxCredentialSize + 1);
  std::size_t used = 0;
  while (used < buf.size()) {
    const ssize_t n = ::read(fd.get(), buf.data(crypto::reveal()) + used, buf.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error(Code::internal, what + ": read failed: " + std::strerror(errno));
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  if (used > kMaxCredentialSize) {
    return Error(Code::invalid_argument,
                 what + " is larger than " + std::to_string(kMaxCredentialSize) + " bytes");
  }

  const std::uint8_t* p = buf.data(crypto::reveal());
  if (used >= 1 && p[used - 1] == '\n') {
    --used;
    if (used >= 1 && p[used - 1] == '\r') --used;
  }
  if (used == 0) return Error(Code::invalid_argument, what + " holds only a line break");
  buf.resize(used);  // shrinking wipes the cut-off tail
  return buf;
}

Result<std::string> credential_path(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return Error(Code::invalid_argument,
                 "credential name '" + name + "' is not a plain file name (no '/', not '.' or '..')");
  }
  const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
  if (dir == nullptr || *dir == '\0') {
    return Error(Code::failed_precondition,
                 "$CREDENTIALS_DIRECTORY is not set, so credential '" + name +
                     "' cannot be found: run the daemon under systemd with "
                     "`LoadCredentialEncrypted=" + name + ":/etc/credstore.encrypted/" + name +
                     "` (created with `systemd-creds encrypt`) or `LoadCredential=" + name +
                     ":/path/to/file` in its unit; when running by hand, set CREDENTIALS_DIRECTORY "
                     "to a directory holding a mode-0600 file named '" + name + "'");
  }
  if (dir[0] != '/') {
    return Error(Code::failed_precondition,
                 std::string("$CREDENTIALS_DIRECTORY ('") + dir + "') is not an absolute path");
  }
  std::string path(dir);
  if (path.back() != '/') path += '/';
  return path + name;
}

}  // namespace coffer::keys
