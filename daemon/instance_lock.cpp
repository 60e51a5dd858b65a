// See instance_lock.h.
#include "daemon/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace coffer::daemon {

InstanceLock::InstanceLock(InstanceLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

InstanceLock& InstanceLock::operator=(InstanceLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

InstanceLock::~InstanceLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the only descriptor releases the flock
}

Result<InstanceLock> lock_database(const std::string& database_path) {
  const std::string path = database_path + ".lock";
  // O_NOFOLLOW: the lock file sits in the state directory; a symlink there is not ours to follow.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return Error(Code::failed_precondition,
                 "cannot open the lock file " + path + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Error(Code::unavailable,
                   "another cofferd is serving " + database_path + " (it holds " + path +
                       "); run one cofferd per database");
    }
    return Error(Code::failed_precondition, "cannot lock " + path + ": " + std::strerror(err));
  }
  return InstanceLock(fd, path);
}

}  // namespace coffer::daemon
