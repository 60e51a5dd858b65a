// One cofferd per database. cofferd keeps state that is only right while it is the database's
// only writer: the token lookup cache (auth/token_cache.h, told of every token change made
// through its own storage, not of another process's), the rate limits and the login lockout.
// The lock is flock(2) on "<database>.lock" next to the database (created mode 0600), held for
// the life of the process; the kernel drops it however the process ends, so there is nothing
// stale to clean up. cofferctl takes no lock: it reads, and writes only when initialising a
// database that does not exist yet.
#pragma once

#include <string>

#include "common/status.h"

namespace coffer::daemon {

class InstanceLock {
 public:
  InstanceLock() = default;
  explicit InstanceLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  InstanceLock(InstanceLock&& other) noexcept;
  InstanceLock& operator=(InstanceLock&& other) noexcept;
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;
  ~InstanceLock();

  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// Takes the lock for `database_path` without waiting. Errors: unavailable when another process
// holds it ("another cofferd is serving <db> ..."), failed_precondition when the lock file
// cannot be created or opened (naming it and the reason).
Result<InstanceLock> lock_database(const std::string& database_path);

}  // namespace coffer::daemon
