// FileSink: the audit file (see sink.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "audit/sink.h"

namespace coffer::audit {
namespace {

Status os_error(const std::string& what, int err) {
  return Error(Code::unavailable, what + ": " + std::strerror(err));
}

}  // namespace

Result<std::unique_ptr<FileSink>> FileSink::open(const std::string& path, std::uint64_t rotate_bytes,
                                                 std::int64_t rotate_seconds) {
  std::unique_ptr<FileSink> sink(new FileSink(path));
  sink->rotate_bytes_ = rotate_bytes;
  sink->rotate_seconds_ = rotate_seconds;
  COFFER_RETURN_IF_ERROR(sink->open_fd());
  return sink;
}

FileSink::~FileSink() {
  if (fd_ >= 0) ::close(fd_);
}

Status FileSink::open_fd() {
  const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return os_error("cannot open audit file " + path_, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error(Code::unavailable, "audit file " + path_ + " is not a regular file");
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  size_ = static_cast<std::uint64_t>(st.st_size);
  opened_at_ = std::chrono::steady_clock::now();
  return Status::Ok();
}

bool FileSink::wants_rotation() const {
  if (rotate_bytes_ > 0 && size_ >= rotate_bytes_) return true;
  return rotate_seconds_ > 0 && size_ > 0 &&
         std::chrono::steady_clock::now() - opened_at_ >= std::chrono::seconds(rotate_seconds_);
}

Status FileSink::rotate() {
  COFFER_RETURN_IF_ERROR(check_identity());
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[96];
  std::snprintf(stamp, sizeof stamp, "%04d%02d%02dT%02d%02d%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long>(us % 1000000));
  const std::string rotated = path_ + "." + stamp;
  if (::fdatasync(fd_) != 0) return os_error("cannot fsync audit file " + path_ + " before rotation", errno);
  if (::rename(path_.c_str(), rotated.c_str()) != 0) return os_error("cannot rotate audit file " + path_, errno);
  return open_fd();
}

Status FileSink::check_identity() const {
  if (fd_ < 0) return Error(Code::unavailable, "audit file " + path_ + " is not open");
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return Error(Code::unavailable, "audit file " + path_ + " was deleted or moved (send SIGHUP to reopen)");
    }
    return os_error("cannot stat audit file " + path_, errno);
  }
  if (st.st_dev != dev_ || st.st_ino != ino_) {
    return Error(Code::unavailable, "audit file " + path_ + " was replaced by another file (send SIGHUP to reopen)");
  }
  return Status::Ok();
}

Status FileSink::append(std::string_view line) {
  COFFER_RETURN_IF_ERROR(check_identity());
  // One write(2) normally. A short write (the disk filling up) is continued until it fails, so
  // the real cause (ENOSPC, EFBIG) is reported, and the partial record is then cut back. (No
  // fstat before the write: O_APPEND put the partial bytes at the end, so the size to cut back
  // to is the size after the failure minus what was written; one syscall less per record.)
  std::size_t done = 0;
  int err = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  if (done == line.size()) {
    size_ += line.size();
    return Status::Ok();
  }
  if (done > 0) {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      return os_error("audit file " + path_ + ": partial record written and could not be removed", errno);
    }
    const off_t keep = st.st_size - static_cast<off_t>(done);
    if (keep < 0 || ::ftruncate(fd_, keep) != 0) {
      return os_error("audit file " + path_ + ": partial record written and could not be removed",
                      keep < 0 ? EIO : errno);
    }
    size_ = static_cast<std::uint64_t>(keep);
  }
  return os_error("cannot write audit file " + path_, err);
}

Status FileSink::sync() {
  if (fd_ < 0) return Error(Code::unavailable, "audit file " + path_ + " is not open");
  if (::fdatasync(fd_) != 0) return os_error("cannot fsync audit file " + path_, errno);
  return Status::Ok();
}

Status FileSink::reopen() { return open_fd(); }

Result<std::string> FileSink::last_line() {
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return os_error("cannot read audit file " + path_, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return os_error("cannot stat audit file " + path_, errno);
  }
  // Read backwards in chunks until the newline before the last line is found.
  std::string tail;
  off_t end = st.st_size;
  constexpr off_t kChunk = 64 * 1024;
  while (end > 0) {
    const off_t start = end > kChunk ? end - kChunk : 0;
    std::string chunk(static_cast<std::size_t>(end - start), '\0');
    if (::pread(fd, chunk.data(), chunk.size(), start) != static_cast<ssize_t>(chunk.size())) {
      ::close(fd);
      return os_error("cannot read audit file " + path_, errno);
    }
    tail = chunk + tail;
    end = start;
    if (tail.size() >= 2 && tail.find('\n', 0) < tail.size() - 1) break;
  }
  ::close(fd);
  if (tail.empty()) return std::string();
  if (tail.back() != '\n') {
    return Error(Code::data_loss, "audit file " + path_ + " ends in a partial record; move it aside and run "
                                  "cofferctl audit verify on it");
  }
  tail.pop_back();
  const auto nl = tail.rfind('\n');
  return nl == std::string::npos ? tail : tail.substr(nl + 1);
}

}  // namespace coffer::audit
