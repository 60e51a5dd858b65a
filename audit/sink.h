// Where audit lines go. AuditLog owns one AuditSink; FileSink is the real one, tests inject
// faults with their own implementation. Sinks are chosen in the config file only, never through
// the API (CVE-2025-6000: an API-configured file sink let an operator write arbitrary files).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace coffer::audit {

class AuditSink {
 public:
  virtual ~AuditSink() = default;
  // Appends one complete line (ending in '\n') with one write(2): when this returns ok the bytes
  // are in the kernel. On failure no partial line is left behind when the sink can help it.
  // Errors: unavailable (disk full, file deleted or replaced, I/O error), naming the cause.
  virtual Status append(std::string_view line) = 0;
  // Makes appended lines durable (fsync). Errors: unavailable.
  virtual Status sync() = 0;
  // Closes and opens the destination again (SIGHUP, after the operator moved the file aside).
  virtual Status reopen() = 0;
  // The last complete line already in the destination (without '\n'), empty if none; used to
  // continue the chain across restarts. Errors: unavailable (cannot read), data_loss (the file
  // ends in a partial line).
  virtual Result<std::string> last_line() = 0;
  virtual std::string describe() const = 0;
  // Size rotation: true when the destination has reached its size limit. rotate() closes it
  // under another name and starts a new, empty one. Sinks without rotation keep the defaults.
  virtual bool wants_rotation() const { return false; }
  virtual Status rotate() { return Status::Ok(); }
  // A descriptor the group-commit thread may dup() and fdatasync() without holding the log's
  // lock (so requests are not blocked behind a disk flush); -1 = use sync() under the lock.
  virtual int sync_fd() const { return -1; }
};

// An append-only regular file, mode 0600, opened with O_APPEND|O_NOFOLLOW. Before every append
// it checks that the path still names the open file (same device and inode), so a file deleted,
// moved or replaced under the daemon is noticed instead of writing into an unlinked inode
// (hashicorp/vault#31718). A short write (disk full) is cut back with ftruncate. With
// `rotate_bytes` > 0 a full file is renamed to "<path>.<UTC time>" (names sort in write order);
// with `rotate_seconds` > 0 so is a non-empty file that has been the current one that long (the
// clock starts when the file is opened, so a restart starts it again; an idle log is not rotated
// into empty files: rotation happens at the first record after the interval).
class FileSink final : public AuditSink {
 public:
  // Errors: unavailable (cannot create/open), invalid_argument (not a regular file).
  static Result<std::unique_ptr<FileSink>> open(const std::string& path, std::uint64_t rotate_bytes = 0,
                                                std::int64_t rotate_seconds = 0);
  ~FileSink() override;
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  Status append(std::string_view line) override;
  Status sync() override;
  Status reopen() override;
  Result<std::string> last_line() override;
  std::string describe() const override { return path_; }
  int sync_fd() const override { return fd_; }
  bool wants_rotation() const override;
  // Errors: unavailable (rename or open failed; the old file stays in use).
  Status rotate() override;

 private:
  explicit FileSink(std::string path) : path_(std::move(path)) {}
  Status open_fd();
  Status check_identity() const;

  std::string path_;
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::uint64_t rotate_bytes_ = 0;
  std::int64_t rotate_seconds_ = 0;
  std::chrono::steady_clock::time_point opened_at_;
  std::uint64_t size_ = 0;
};

}  // namespace coffer::audit
